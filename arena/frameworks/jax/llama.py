"""LLaMA in JAX: transformers' LlamaForCausalLM restated as pure functions of the official-named
parameters.

Follows transformers `models/llama/modeling_llama.py`: RMSNorm in float32, rotate-half RoPE with the
spec's rope_theta, grouped-query attention (K/V heads not repeated: XLA's dot_product_attention takes
them grouped), SwiGLU MLP, tied or separate lm_head. No deviations. The decoder layers are a Python loop,
so jit unrolls them (XLA compiles one program for the whole model; the compile time is in `prepare`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.jax.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.frameworks.jax.layers import apply_rope, attention, cross_entropy, embedding, linear, rms_norm, rope_cos_sin, llama_mlp

KVCache = list[tuple[jax.Array, jax.Array]]  # per layer: keys, values [batch, positions, kv_heads, head_dim]


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def decoder_layer(p: Params, i: int, config: Config, x: jax.Array, cos: jax.Array, sin: jax.Array, past: tuple[jax.Array, jax.Array] | None):
    """LlamaDecoderLayer: x + attn(norm(x)), then + mlp(norm(x)). Returns the output and this layer's K/V."""
    prefix, (b, t, _), d = f"model.layers.{i}", x.shape, config.kv_dim_per_head
    h = rms_norm(x, p[f"{prefix}.input_layernorm.weight"], config.rms_norm_eps)
    q = apply_rope(linear(p, f"{prefix}.self_attn.q_proj", h).reshape(b, t, -1, d), cos, sin)
    k = apply_rope(linear(p, f"{prefix}.self_attn.k_proj", h).reshape(b, t, -1, d), cos, sin)
    v = linear(p, f"{prefix}.self_attn.v_proj", h).reshape(b, t, -1, d)
    if past is not None:  # a decode step: the new token's K/V join the cached ones
        k, v = jnp.concatenate([past[0], k], axis=1), jnp.concatenate([past[1], v], axis=1)
    x = x + linear(p, f"{prefix}.self_attn.o_proj", attention(q, k, v, causal=True))
    h = rms_norm(x, p[f"{prefix}.post_attention_layernorm.weight"], config.rms_norm_eps)
    return x + llama_mlp(p, f"{prefix}.mlp", h), (k, v)


def forward(p: Params, config: Config, ids: jax.Array, start: int | jax.Array = 0, cache: KVCache | None = None) -> tuple[jax.Array, KVCache]:
    """Logits [batch, tokens, vocab] for `ids` at positions start.., after `cache` if given; and the K/V of
    every layer including the new tokens."""
    table = p["model.embed_tokens.weight"]
    x = embedding(table, ids)
    positions = start + jnp.arange(ids.shape[1])[None, :].repeat(ids.shape[0], axis=0)
    cos, sin = rope_cos_sin(positions, config.kv_dim_per_head, config.rope_theta, x.dtype)
    new_cache = []
    for i in range(config.num_hidden_layers):
        x, kv = decoder_layer(p, i, config, x, cos, sin, cache[i] if cache else None)
        new_cache.append(kv)
    x = rms_norm(x, p["model.norm.weight"], config.rms_norm_eps)
    head = table if config.tie_word_embeddings else p["lm_head.weight"]
    return x @ head.T, new_cache


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    ids = to_device(inputs, model.dtype)["input_ids"]
    return forward_step(lambda p, ids: {"logits": forward(p, model.config, ids)[0]}, model.params, ids)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt. The prompt's cache is filled once (untimed); every timed call
    decodes the next token against that same cache (JAX arrays are immutable, so nothing to crop)."""
    tensors = to_device(inputs, model.dtype)
    prompt_len = tensors["input_ids"].shape[1]
    _, cache = jax.jit(partial(forward, config=model.config))(model.params, ids=tensors["input_ids"])
    jax.block_until_ready(cache)

    def decode(p: Params, cache: KVCache, token: jax.Array) -> dict[str, jax.Array]:
        return {"logits": forward(p, model.config, token, prompt_len, cache)[0]}

    return forward_step(decode, model.params, cache, tensors["next_input_ids"])


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Causal-LM cross-entropy: logits[:, t] predicts input_ids[:, t + 1] (labels shifted once)."""
    ids = to_device(inputs, model.dtype)["input_ids"]

    def loss(p: Params, ids: jax.Array) -> jax.Array:
        logits, _ = forward(p, model.config, ids)
        return cross_entropy(logits[:, :-1], ids[:, 1:])

    return training_step(model, loss, ids)
