"""LLaMA, written once for JAX, TensorFlow and tinygrad: transformers' LlamaForCausalLM restated as pure
functions of the official-named parameters; `nn` is the framework's layers module (`layers.Layers`).

Follows transformers `models/llama/modeling_llama.py`: RMSNorm in float32, rotate-half RoPE with the
spec's rope_theta, grouped-query attention (K/V heads not repeated: each framework's `attention` groups
the query heads per K/V head), SwiGLU MLP, tied or separate lm_head. No deviations.

Shapes the frameworks agree on here: positions are int32 [1, tokens], so cos/sin are [1, tokens,
head_dim] and broadcast over the batch (int32, not a float32 arange: tinygrad fuses that into RoPE's
kernels differently, an ulp off); K/V are in the framework's attention layout (`nn.split_heads`) and a
cache grows along its positions (`nn.append_positions`). The decoder layers are a Python loop, so a
traced or captured call unrolls them.
"""

from __future__ import annotations

from arena.families.llama import Config
from arena.functional.layers import Layers, Params, Tensor

KVCache = list[tuple[Tensor, Tensor]]  # per layer: keys, values in the framework's attention layout


def decoder_layer(nn: Layers, p: Params, prefix: str, config: Config, x: Tensor, cos: Tensor, sin: Tensor, past: tuple[Tensor, Tensor] | None):
    """LlamaDecoderLayer: x + attn(norm(x)), then + mlp(norm(x)). Returns the output and this layer's K/V."""
    d, eps = config.kv_dim_per_head, config.rms_norm_eps
    h = nn.rms_norm(x, p[f"{prefix}.input_layernorm.weight"], eps)
    q = nn.apply_rope(nn.split_heads(nn.linear(p, f"{prefix}.self_attn.q_proj", h), d), cos, sin)
    k = nn.apply_rope(nn.split_heads(nn.linear(p, f"{prefix}.self_attn.k_proj", h), d), cos, sin)
    v = nn.split_heads(nn.linear(p, f"{prefix}.self_attn.v_proj", h), d)
    if past is not None:  # a decode step: the new token's K/V join the cached ones
        k, v = nn.append_positions(past[0], k), nn.append_positions(past[1], v)
    x = x + nn.linear(p, f"{prefix}.self_attn.o_proj", nn.attention(q, k, v, causal=True))
    h = nn.rms_norm(x, p[f"{prefix}.post_attention_layernorm.weight"], eps)
    return x + nn.llama_mlp(p, f"{prefix}.mlp", h), (k, v)


def forward(nn: Layers, p: Params, config: Config, ids: Tensor, start: int | Tensor = 0, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
    """Logits [batch, tokens, vocab] for `ids` [batch, tokens] at positions start.., after `cache` if
    given; and the K/V of every layer including the new tokens."""
    table = p["model.embed_tokens.weight"]
    x = nn.embedding(table, ids)
    tokens = ids.shape[1]
    positions = nn.reshape(nn.arange(tokens, nn.INT32) + start, (1, tokens))
    cos, sin = nn.rope_cos_sin(positions, config.kv_dim_per_head, config.rope_theta, x.dtype)
    new_cache = []
    for i in range(config.num_hidden_layers):
        x, kv = decoder_layer(nn, p, f"model.layers.{i}", config, x, cos, sin, cache[i] if cache else None)
        new_cache.append(kv)
    x = nn.rms_norm(x, p["model.norm.weight"], config.rms_norm_eps)
    head = table if config.tie_word_embeddings else p["lm_head.weight"]
    return nn.unembed(x, head), new_cache


def loss(nn: Layers, p: Params, config: Config, ids: Tensor) -> Tensor:
    """Causal-LM cross-entropy: logits[:, t] predicts input_ids[:, t + 1] (labels shifted once)."""
    logits, _ = forward(nn, p, config, ids)
    return nn.cross_entropy(logits[:, :-1], ids[:, 1:])
