"""The layers the JAX families share, as pure functions of a flat official-named parameter dict `p`.

Linear weights are PyTorch's [out, in] (XLA contracts either axis without a copy); convolutions are
channels-last, XLA's own layout: activations NHWC / NLC and kernels HWIO / WIO, converted once at build
by `arena.frameworks.layouts`. Inside attention: [batch, time, heads, head_dim]. Norms compute in
float32 (at least) as the official modules do, then return the input dtype.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]

# ---- layout, dtypes and array operations (the `arena.functional.layers.Layers` contract) ----

CHANNEL_AXIS = -1  # channels-last
FLOAT32 = jnp.float32
INT32 = jnp.int32
cast = jnp.astype
reshape = jnp.reshape
concat = jnp.concatenate
sin, cos, exp = jnp.sin, jnp.cos, jnp.exp
silu, relu = jax.nn.silu, jax.nn.relu


def chunk(x: jax.Array, parts: int) -> tuple[jax.Array, ...]:
    return tuple(jnp.split(x, parts, axis=-1))


def arange(n: int, dtype: jnp.dtype) -> jax.Array:
    return jnp.arange(n, dtype=dtype)


def pixels_to_tokens(x: jax.Array) -> jax.Array:
    """NHWC / NLC -> [B, pixels, C] (row-major pixels, as PyTorch's flatten of NCHW after a permute)."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def tokens_to_pixels(h: jax.Array, like: jax.Array) -> jax.Array:
    return h.reshape(like.shape)


def per_channel(v: jax.Array) -> jax.Array:
    """[B, C] -> [B, 1, 1, C], against NHWC."""
    return v[:, None, None, :]


def split_heads(x: jax.Array, head_dim: int) -> jax.Array:
    """[B, T, heads * head_dim] -> [B, T, heads, head_dim] (XLA's attention layout)."""
    return x.reshape(*x.shape[:2], -1, head_dim)


def append_positions(past: jax.Array, new: jax.Array) -> jax.Array:
    return jnp.concatenate([past, new], axis=1)


def unembed(x: jax.Array, table: jax.Array) -> jax.Array:
    return x @ table.T


def linear(p: Params, name: str, x: jax.Array) -> jax.Array:
    """nn.Linear `name` (weight [out, in], bias optional)."""
    y = x @ p[f"{name}.weight"].T
    bias = p.get(f"{name}.bias")
    return y if bias is None else y + bias


def llama_mlp(p: Params, name: str, x: jax.Array) -> jax.Array:
    """transformers' LlamaMLP `name` (no biases): down_proj(silu(gate_proj(x)) * up_proj(x))."""
    gated = jax.nn.silu(linear(p, f"{name}.gate_proj", x)) * linear(p, f"{name}.up_proj", x)
    return linear(p, f"{name}.down_proj", gated)


def embedding(table: jax.Array, ids: jax.Array) -> jax.Array:
    return jnp.take(table, ids, axis=0)


def upcast(x: jax.Array) -> jax.Array:
    """float32 for half types; float32 (or wider) stays."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    """LlamaRMSNorm: normalise in float32, cast back, then scale."""
    x32 = upcast(x)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return weight * normed.astype(x.dtype)


def layer_norm(p: Params, name: str, x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """nn.LayerNorm over the last axis (biased variance)."""
    x32 = upcast(x)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    normed = ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)
    return normed * p[f"{name}.weight"] + p[f"{name}.bias"]


def group_norm(p: Params, name: str, x: jax.Array, groups: int, eps: float) -> jax.Array:
    """nn.GroupNorm on channels-last x [N, ..., C] (biased variance over each group's channels and pixels)."""
    n, c = x.shape[0], x.shape[-1]
    x32 = upcast(x).reshape(n, -1, groups, c // groups)
    mean = jnp.mean(x32, axis=(1, 3), keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=(1, 3), keepdims=True)
    normed = ((x32 - mean) * jax.lax.rsqrt(var + eps)).reshape(x.shape).astype(x.dtype)
    return normed * p[f"{name}.weight"] + p[f"{name}.bias"]


def batch_norm(p: Params, name: str, x: jax.Array, moved: Params | None, eps: float = 1e-5, momentum: float = 0.1) -> jax.Array:
    """nn.BatchNorm2d on NHWC, as the contract's `batch_norm` says (eval mode with `moved` None;
    train mode fills `moved` with the moved running statistics)."""
    if moved is None:
        mean, var = p[f"{name}.running_mean"], p[f"{name}.running_var"]
    else:
        x32 = upcast(x)
        mean = jnp.mean(x32, axis=(0, 1, 2))
        var = jnp.mean(jnp.square(x32 - mean), axis=(0, 1, 2))
        count = x.size // x.shape[-1]  # values per channel
        for stat, batch in (("running_mean", mean), ("running_var", var * count / (count - 1))):
            loaded = p[f"{name}.{stat}"]
            moved[f"{name}.{stat}"] = ((1 - momentum) * loaded + momentum * batch).astype(loaded.dtype)
    scale = p[f"{name}.weight"] * jax.lax.rsqrt(var + eps)
    shift = p[f"{name}.bias"] - mean * scale
    return x * scale.astype(x.dtype) + shift.astype(x.dtype)


def conv(p: Params, name: str, x: jax.Array, stride: int = 1, padding: int = 0, groups: int = 1) -> jax.Array:
    """nn.Conv1d / nn.Conv2d, channels-last: x NLC / NHWC, kernel WIO / HWIO ([*k, in/groups, out])."""
    kernel = p[f"{name}.weight"]
    spatial = kernel.ndim - 2
    dims = ("NWC", "WIO", "NWC") if spatial == 1 else ("NHWC", "HWIO", "NHWC")
    y = jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride,) * spatial, padding=[(padding, padding)] * spatial,
        dimension_numbers=dims, feature_group_count=groups,
    )  # fmt: skip
    bias = p.get(f"{name}.bias")
    return y if bias is None else y + bias


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, as nn.GELU() and HF's "gelu"."""
    return jax.nn.gelu(x, approximate=False)


def rope_cos_sin(positions: jax.Array, head_dim: int, theta: float, dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
    """HF LlamaRotaryEmbedding (default rope type): inv_freq = theta^(-2i/d), angles in float32,
    duplicated halves; cos/sin [batch, seq, head_dim] in the activations' dtype."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    emb = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(emb).astype(dtype), jnp.sin(emb).astype(dtype)


def rotate_half(x: jax.Array) -> jax.Array:
    half = x.shape[-1] // 2
    return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate-half RoPE of x [batch, seq, heads, head_dim] with cos/sin [batch, seq, head_dim]."""
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    return x * cos + rotate_half(x) * sin


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None, causal: bool = False, scale: float | None = None) -> jax.Array:
    """Scaled dot-product attention with grouped-query heads. q [B, Tq, H, D], k/v [B, Tk, KVH, D]
    (KVH divides H; K/V are not repeated); mask broadcastable to [B, H, Tq, Tk], True = attend;
    `causal` aligns the last query with the last key (so a decode step with a cache sees everything).
    Returns [B, Tq, H * D]. jax.nn.dot_product_attention is XLA's fused form (cuDNN on GPUs)."""
    b, tq, h, d = q.shape
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    if causal:
        tk = k.shape[1]
        keep = jnp.arange(tk)[None, :] <= jnp.arange(tq)[:, None] + (tk - tq)
        mask = keep[None, None] if mask is None else mask & keep[None, None]
    out = jax.nn.dot_product_attention(q, k, v, mask=mask, scale=scale)
    return out.reshape(b, tq, h * d)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy (F.cross_entropy), log-softmax in float32."""
    logp = jax.nn.log_softmax(upcast(logits), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1))


# ---- for resnet ----


def max_pool(x: jax.Array, kernel_size: int, stride: int, padding: int) -> jax.Array:
    """nn.MaxPool2d on NHWC: the padding is -inf, so it never wins a window. The init value is a Python
    constant: JAX recognises (max, -inf) as the max-pool reduction, which it can differentiate, only when
    the value is concrete (not a traced jnp.array)."""
    return jax.lax.reduce_window(
        x, -jnp.inf, jax.lax.max,
        window_dimensions=(1, kernel_size, kernel_size, 1), window_strides=(1, stride, stride, 1),
        padding=((0, 0), (padding, padding), (padding, padding), (0, 0)),
    )  # fmt: skip


def global_avg_pool(x: jax.Array) -> jax.Array:
    """nn.AdaptiveAvgPool2d((1, 1)) + flatten: NHWC -> [B, C]."""
    return jnp.mean(x, axis=(1, 2))


# ---- for unet2d_condition ----


def upsample_nearest2x(x: jax.Array) -> jax.Array:
    """F.interpolate(scale_factor=2, mode="nearest") on NHWC."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


# ---- for vla_expert (mean also for the UNet's loss) ----

full = jnp.full
round, mean, broadcast_to = jnp.round, jnp.mean, jnp.broadcast_to  # round (ties to even) shadows the builtin here


def across_heads(v: jax.Array) -> jax.Array:
    """[B, T, F] -> [B, T, 1, F], against [B, T, heads, head_dim]."""
    return v[:, :, None, :]


def mask_bits(x: jax.Array, mask: int) -> jax.Array:
    """float32 x with its bit pattern ANDed with the 32-bit `mask`."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32) & jnp.uint32(mask)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)
