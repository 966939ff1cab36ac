"""LLaMA in TensorFlow: transformers' LlamaForCausalLM restated as pure functions of the official-named
variables.

Follows transformers `models/llama/modeling_llama.py`: RMSNorm in float32, rotate-half RoPE with the
spec's rope_theta, grouped-query attention (K/V heads not repeated), SwiGLU MLP, tied or separate
lm_head. No deviations. The decoder layers are a Python loop, so tracing unrolls them into one graph.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow.common import Model, Params, build_model, device, forward_step, function, to_device, training_step
from arena.frameworks.tensorflow.layers import apply_rope, attention, cross_entropy, dense, embedding, linear, llama_mlp, rms_norm, rope_cos_sin

KVCache = list[tuple[tf.Tensor, tf.Tensor]]  # per layer: keys, values [batch, positions, kv_heads, head_dim]


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def decoder_layer(p: Params, i: int, config: Config, x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, past: tuple[tf.Tensor, tf.Tensor] | None):
    """LlamaDecoderLayer: x + attn(norm(x)), then + mlp(norm(x)). Returns the output and this layer's K/V."""
    prefix, (b, t, _), d = f"model.layers.{i}", x.shape, config.kv_dim_per_head
    h = rms_norm(x, p[f"{prefix}.input_layernorm.weight"], config.rms_norm_eps)
    q = apply_rope(tf.reshape(linear(p, f"{prefix}.self_attn.q_proj", h), [b, t, -1, d]), cos, sin)
    k = apply_rope(tf.reshape(linear(p, f"{prefix}.self_attn.k_proj", h), [b, t, -1, d]), cos, sin)
    v = tf.reshape(linear(p, f"{prefix}.self_attn.v_proj", h), [b, t, -1, d])
    if past is not None:  # a decode step: the new token's K/V join the cached ones
        k, v = tf.concat([past[0], k], axis=1), tf.concat([past[1], v], axis=1)
    x = x + linear(p, f"{prefix}.self_attn.o_proj", attention(q, k, v, causal=True))
    h = rms_norm(x, p[f"{prefix}.post_attention_layernorm.weight"], config.rms_norm_eps)
    return x + llama_mlp(p, f"{prefix}.mlp", h), (k, v)


def forward(p: Params, config: Config, ids: tf.Tensor, start: int = 0, cache: KVCache | None = None) -> tuple[tf.Tensor, KVCache]:
    """Logits [batch, tokens, vocab] for `ids` at positions start.. (a Python int: static), after `cache`
    if given; and the K/V of every layer including the new tokens."""
    table = p["model.embed_tokens.weight"]
    x = embedding(table, ids)
    b, t = ids.shape
    positions = tf.broadcast_to(start + tf.range(t)[None, :], [b, t])
    cos, sin = rope_cos_sin(positions, config.kv_dim_per_head, config.rope_theta, x.dtype)
    new_cache = []
    for i in range(config.num_hidden_layers):
        x, kv = decoder_layer(p, i, config, x, cos, sin, cache[i] if cache else None)
        new_cache.append(kv)
    x = rms_norm(x, p["model.norm.weight"], config.rms_norm_eps)
    head = table if config.tie_word_embeddings else p["lm_head.weight"]
    return dense(x, head), new_cache


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    ids = to_device(inputs, model.ctx)["input_ids"]
    return forward_step(model, lambda p, ids: {"logits": forward(p, model.config, ids)[0]}, ids)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt. The prompt's cache is filled once (untimed); every timed call
    decodes the next token against that same cache (tensors are immutable: nothing to crop)."""
    tensors = to_device(inputs, model.ctx)
    prompt_len = tensors["input_ids"].shape[1]
    with tf.device(device(model.ctx)):
        _, cache = function(model.ctx, lambda ids: forward(model.params, model.config, ids))(tensors["input_ids"])

    def decode(p: Params, cache: KVCache, token: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": forward(p, model.config, token, prompt_len, cache)[0]}

    return forward_step(model, decode, cache, tensors["next_input_ids"])


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Causal-LM cross-entropy: logits[:, t] predicts input_ids[:, t + 1] (labels shifted once)."""
    ids = to_device(inputs, model.ctx)["input_ids"]

    def loss(p: Params, ids: tf.Tensor) -> tf.Tensor:
        logits, _ = forward(p, model.config, ids)
        return cross_entropy(logits[:, :-1], ids[:, 1:])

    return training_step(model, loss, ids)
