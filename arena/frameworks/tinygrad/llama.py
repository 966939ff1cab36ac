"""LLaMA in tinygrad: transformers' LlamaForCausalLM restated as pure functions of the official-named
weights (the JAX package's llama.py, line for line).

Follows transformers `models/llama/modeling_llama.py`: RMSNorm in float32, rotate-half RoPE with the
spec's rope_theta, grouped-query attention (K/V heads broadcast over their query heads, not repeated),
SwiGLU MLP, tied or separate lm_head. No deviations. The decoder layers are a Python loop, so TinyJit
captures the kernels of the whole model as one replayable list.
"""

from __future__ import annotations

import numpy as np
from tinygrad import Tensor

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.frameworks.tinygrad.layers import apply_rope, attention, cross_entropy, embedding, linear, llama_mlp, rms_norm, rope_cos_sin, split_heads

KVCache = list[tuple[Tensor, Tensor]]  # per layer: keys, values [batch, kv_heads, positions, head_dim]


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def decoder_layer(p: Params, i: int, config: Config, x: Tensor, cos: Tensor, sin: Tensor, past: tuple[Tensor, Tensor] | None):
    """LlamaDecoderLayer: x + attn(norm(x)), then + mlp(norm(x)). Returns the output and this layer's K/V."""
    prefix, d = f"model.layers.{i}", config.kv_dim_per_head
    h = rms_norm(x, p[f"{prefix}.input_layernorm.weight"], config.rms_norm_eps)
    q = apply_rope(split_heads(linear(p, f"{prefix}.self_attn.q_proj", h), d), cos, sin)
    k = apply_rope(split_heads(linear(p, f"{prefix}.self_attn.k_proj", h), d), cos, sin)
    v = split_heads(linear(p, f"{prefix}.self_attn.v_proj", h), d)
    if past is not None:  # a decode step: the new token's K/V join the cached ones
        k, v = past[0].cat(k, dim=2), past[1].cat(v, dim=2)
    x = x + linear(p, f"{prefix}.self_attn.o_proj", attention(q, k, v, causal=True))
    h = rms_norm(x, p[f"{prefix}.post_attention_layernorm.weight"], config.rms_norm_eps)
    return x + llama_mlp(p, f"{prefix}.mlp", h), (k, v)


def forward(p: Params, config: Config, ids: Tensor, start: int = 0, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
    """Logits [batch, tokens, vocab] for `ids` at positions start.., after `cache` if given; and the K/V of
    every layer including the new tokens."""
    table = p["model.embed_tokens.weight"]
    x = embedding(table, ids)
    positions = (Tensor.arange(ids.shape[1]) + start).unsqueeze(0).expand(ids.shape[0], -1)
    cos, sin = rope_cos_sin(positions, config.kv_dim_per_head, config.rope_theta, x.dtype)
    new_cache = []
    for i in range(config.num_hidden_layers):
        x, kv = decoder_layer(p, i, config, x, cos, sin, cache[i] if cache else None)
        new_cache.append(kv)
    x = rms_norm(x, p["model.norm.weight"], config.rms_norm_eps)
    head = table if config.tie_word_embeddings else p["lm_head.weight"]
    return x @ head.T, new_cache


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    ids = to_device(inputs, model.ctx)["input_ids"]
    return forward_step(lambda ids: {"logits": forward(model.params, model.config, ids)[0]}, model, ids)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt. The prompt's cache is filled once (untimed, realised); every
    timed call decodes the next token against that same cache (the step never writes into it)."""
    tensors = to_device(inputs, model.ctx)
    prompt_len = tensors["input_ids"].shape[1]
    _, cache = forward(model.params, model.config, tensors["input_ids"])
    Tensor.realize(*(t for kv in cache for t in kv))

    def decode(token: Tensor) -> dict[str, Tensor]:
        return {"logits": forward(model.params, model.config, token, prompt_len, cache)[0]}

    return forward_step(decode, model, tensors["next_input_ids"])


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Causal-LM cross-entropy: logits[:, t] predicts input_ids[:, t + 1] (labels shifted once)."""
    ids = to_device(inputs, model.ctx)["input_ids"]

    def loss(ids: Tensor) -> Tensor:
        logits, _ = forward(model.params, model.config, ids)
        return cross_entropy(logits[:, :-1], ids[:, 1:])

    return training_step(model, loss, ids)
