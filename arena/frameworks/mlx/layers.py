"""The pieces the MLX families share beyond `mlx.nn` (which already has Linear, Embedding, RMSNorm,
LayerNorm, GroupNorm(pytorch_compatible=True), BatchNorm, Conv1d/Conv2d, RoPE and exact GELU).

Activations inside attention are [batch, heads, time, head_dim]; everything else is channels-last.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn


def split_heads(x: mx.array, heads: int) -> mx.array:
    """[B, T, heads * D] -> [B, heads, T, D]."""
    b, t, _ = x.shape
    return x.reshape(b, t, heads, -1).transpose(0, 2, 1, 3)


def attention(q: mx.array, k: mx.array, v: mx.array, mask: mx.array | str | None = None, scale: float | None = None) -> mx.array:
    """Scaled dot-product attention with grouped-query heads: q [B, H, Tq, D], k/v [B, KVH, Tk, D]
    (KVH divides H; not repeated), mask "causal" (last query aligned with the last key) or a boolean
    array broadcastable to [B, H, Tq, Tk], True = attend. Softmax in float32. Returns [B, Tq, H * D]."""
    b, h, tq, d = q.shape
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    out = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)
    return out.transpose(0, 2, 1, 3).reshape(b, tq, h * d)


class LlamaMLP(nn.Module):
    """transformers' LlamaMLP (SwiGLU, no biases): down_proj(silu(gate_proj(x)) * up_proj(x))."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        return self.down_proj(nn.silu(self.gate_proj(x)) * self.up_proj(x))


def cross_entropy(logits: mx.array, labels: mx.array) -> mx.array:
    """Mean cross-entropy (F.cross_entropy), computed in float32."""
    return nn.losses.cross_entropy(logits.astype(mx.float32), labels, reduction="mean")
