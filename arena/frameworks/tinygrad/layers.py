"""The layers the tinygrad families share, as pure functions of a flat official-named weight dict `p`
(the JAX package's, restated on `tinygrad.Tensor`).

Layouts are PyTorch's, which are tinygrad's own: Linear weights [out, in], activations NCHW / NCL with
OIHW / OIL kernels (`Tensor.conv2d` takes any number of spatial dims). Inside attention: [batch, heads,
time, head_dim]. Norms compute in float32 (at least) as the official modules do, then return the input
dtype. Constants built inside a function (masks, positions) are lazy tinygrad expressions on the default
device, which the adapter's process_env sets to the cell's (DEV).
"""

from __future__ import annotations

import math

from tinygrad import Tensor, dtypes
from tinygrad.dtype import least_upper_dtype

Params = dict[str, Tensor]

# ---- layout, dtypes and array operations (the `arena.functional.layers.Layers` contract) ----

CHANNEL_AXIS = 1  # channels-first, PyTorch's layout
FLOAT32 = dtypes.float32
INT32 = dtypes.int32


def cast(x: Tensor, dtype) -> Tensor:
    return x.cast(dtype)


def reshape(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    return x.reshape(shape)


def concat(xs: list[Tensor], axis: int) -> Tensor:
    return xs[0].cat(*xs[1:], dim=axis)


def chunk(x: Tensor, parts: int) -> tuple[Tensor, ...]:
    return tuple(x.chunk(parts, dim=-1))


def arange(n: int, dtype) -> Tensor:
    return Tensor.arange(n, dtype=dtype)


def sin(x: Tensor) -> Tensor:
    return x.sin()


def cos(x: Tensor) -> Tensor:
    return x.cos()


def exp(x: Tensor) -> Tensor:
    return x.exp()


def silu(x: Tensor) -> Tensor:
    return x.silu()


def relu(x: Tensor) -> Tensor:
    return x.relu()


def pixels_to_tokens(x: Tensor) -> Tensor:
    """NCHW / NCL -> [B, pixels, C] (row-major pixels, as PyTorch's flatten + permute)."""
    return x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)


def tokens_to_pixels(h: Tensor, like: Tensor) -> Tensor:
    return h.transpose(1, 2).reshape(like.shape)


def per_channel(v: Tensor) -> Tensor:
    """[B, C] -> [B, C, 1, 1], against NCHW."""
    return v.reshape(*v.shape, 1, 1)


def append_positions(past: Tensor, new: Tensor) -> Tensor:
    """Along the positions of [B, heads, positions, head_dim]."""
    return past.cat(new, dim=2)


def unembed(x: Tensor, table: Tensor) -> Tensor:
    return x @ table.T


def linear(p: Params, name: str, x: Tensor) -> Tensor:
    """nn.Linear `name` (weight [out, in], bias optional)."""
    y = x @ p[f"{name}.weight"].T
    bias = p.get(f"{name}.bias")
    return y if bias is None else y + bias


def llama_mlp(p: Params, name: str, x: Tensor) -> Tensor:
    """transformers' LlamaMLP `name` (no biases): down_proj(silu(gate_proj(x)) * up_proj(x))."""
    gated = linear(p, f"{name}.gate_proj", x).silu() * linear(p, f"{name}.up_proj", x)
    return linear(p, f"{name}.down_proj", gated)


def embedding(table: Tensor, ids: Tensor) -> Tensor:
    return table[ids]


def upcast(x: Tensor) -> Tensor:
    return x.cast(least_upper_dtype(x.dtype, dtypes.float32))


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """LlamaRMSNorm: normalise in float32, cast back, then scale."""
    x32 = upcast(x)
    normed = x32 * (x32 * x32).mean(axis=-1, keepdim=True).add(eps).rsqrt()
    return weight * normed.cast(x.dtype)


def _normalise(x32: Tensor, axis: tuple[int, ...], eps: float) -> Tensor:
    """(x - mean) / sqrt(biased var + eps) over `axis`."""
    mean = x32.mean(axis=axis, keepdim=True)
    centred = x32 - mean
    return centred * (centred * centred).mean(axis=axis, keepdim=True).add(eps).rsqrt()


def layer_norm(p: Params, name: str, x: Tensor, eps: float = 1e-5) -> Tensor:
    """nn.LayerNorm over the last axis (biased variance)."""
    return _normalise(upcast(x), (-1,), eps).cast(x.dtype) * p[f"{name}.weight"] + p[f"{name}.bias"]


def group_norm(p: Params, name: str, x: Tensor, groups: int, eps: float) -> Tensor:
    """nn.GroupNorm on channels-first x [N, C, ...] (biased variance over each group's channels and pixels)."""
    n, c = x.shape[0], x.shape[1]
    normed = _normalise(upcast(x).reshape(n, groups, -1), (-1,), eps).reshape(x.shape).cast(x.dtype)
    affine = (1, c) + (1,) * (x.ndim - 2)
    return normed * p[f"{name}.weight"].reshape(affine) + p[f"{name}.bias"].reshape(affine)


def batch_norm(p: Params, name: str, x: Tensor, moved: Params | None, eps: float = 1e-5, momentum: float = 0.1) -> Tensor:
    """nn.BatchNorm2d on NCHW, as the contract's `batch_norm` says (eval mode with `moved` None;
    train mode fills `moved` with the moved running statistics)."""
    if moved is None:
        mean, var = p[f"{name}.running_mean"], p[f"{name}.running_var"]
    else:
        x32 = upcast(x)
        mean = x32.mean(axis=(0, 2, 3))
        centred = x32 - mean.reshape(1, -1, 1, 1)
        var = (centred * centred).mean(axis=(0, 2, 3))
        count = x.numel() // x.shape[1]  # values per channel
        for stat, batch in (("running_mean", mean), ("running_var", var * count / (count - 1))):
            loaded = p[f"{name}.{stat}"]
            moved[f"{name}.{stat}"] = ((1 - momentum) * loaded + momentum * batch).cast(loaded.dtype)
    scale = p[f"{name}.weight"] * var.add(eps).rsqrt()
    shift = p[f"{name}.bias"] - mean * scale
    return x * scale.cast(x.dtype).reshape(1, -1, 1, 1) + shift.cast(x.dtype).reshape(1, -1, 1, 1)


def conv(p: Params, name: str, x: Tensor, stride: int = 1, padding: int = 0, groups: int = 1) -> Tensor:
    """nn.Conv1d / nn.Conv2d: x NCL / NCHW, kernel OIL / OIHW, as PyTorch."""
    return x.conv2d(p[f"{name}.weight"], p.get(f"{name}.bias"), groups=groups, stride=stride, padding=padding)


def gelu(x: Tensor) -> Tensor:
    """Exact (erf) GELU, as nn.GELU() and HF's "gelu" (tinygrad's default is the tanh approximation)."""
    return x.gelu(approximate="none")


def rope_cos_sin(positions: Tensor, head_dim: int, theta: float, dtype) -> tuple[Tensor, Tensor]:
    """HF LlamaRotaryEmbedding (default rope type): inv_freq = theta^(-2i/d), angles in float32,
    duplicated halves; cos/sin [batch, seq, head_dim] in the activations' dtype."""
    inv_freq = 1.0 / (theta ** (Tensor.arange(0, head_dim, 2, dtype=dtypes.float32) / head_dim))
    angles = positions.cast(dtypes.float32).unsqueeze(-1) * inv_freq
    emb = angles.cat(angles, dim=-1)
    return emb.cos().cast(dtype), emb.sin().cast(dtype)


def rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return (-x[..., half:]).cat(x[..., :half], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate-half RoPE of x [batch, heads, seq, head_dim] with cos/sin [batch, seq, head_dim]."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + rotate_half(x) * sin


def split_heads(x: Tensor, head_dim: int) -> Tensor:
    """[B, T, heads * head_dim] -> [B, heads, T, head_dim]."""
    b, t, _ = x.shape
    return x.reshape(b, t, -1, head_dim).transpose(1, 2)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False, scale: float | None = None) -> Tensor:
    """Scaled dot-product attention with grouped-query heads. q [B, H, Tq, D], k/v [B, KVH, Tk, D]
    (KVH divides H; each K/V head is broadcast over its group of query heads, not copied); mask
    [Tq, Tk] or [B, 1, Tq, Tk] (the same for every head), True = attend; `causal` aligns the last query with the last key (so
    a decode step with a cache sees everything). Scores scaled after QK^T, softmax in float32. Returns
    [B, Tq, H * D]. (tinygrad's own scaled_dot_product_attention aligns its causal mask top-left and
    repeats K/V for GQA.)"""
    b, h, tq, d = q.shape
    kvh, tk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    grouped = q.reshape(b, kvh, h // kvh, tq, d)
    scores = (grouped @ k.unsqueeze(2).transpose(-1, -2)) * scale  # [B, KVH, G, Tq, Tk]
    if causal:
        keep = Tensor.ones(tq, tk, dtype=dtypes.bool).tril(tk - tq)
        mask = keep if mask is None else mask & keep
    if mask is not None:
        mask = mask.unsqueeze(2) if mask.ndim == 4 else mask  # [B, 1, 1, Tq, Tk] against the grouped heads
        scores = mask.where(scores, -math.inf)
    probs = upcast(scores).softmax(-1).cast(q.dtype)
    out = probs @ v.unsqueeze(2)  # [B, KVH, G, Tq, D]
    return out.reshape(b, h, tq, d).transpose(1, 2).reshape(b, tq, h * d)


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy (F.cross_entropy), log-softmax in float32; `labels` hold no ignore index."""
    return upcast(logits).sparse_categorical_crossentropy(labels)


# ---- for resnet ----


def max_pool(x: Tensor, kernel_size: int, stride: int, padding: int) -> Tensor:
    """nn.MaxPool2d on NCHW: tinygrad pads with the dtype's minimum, which never wins a window."""
    return x.max_pool2d(kernel_size=(kernel_size, kernel_size), stride=stride, padding=padding)


def global_avg_pool(x: Tensor) -> Tensor:
    """nn.AdaptiveAvgPool2d((1, 1)) + flatten: NCHW -> [B, C]."""
    return x.mean(axis=(2, 3))


# ---- for unet2d_condition ----


def upsample_nearest2x(x: Tensor) -> Tensor:
    """F.interpolate(scale_factor=2, mode="nearest") on NCHW."""
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


# ---- for vla_expert (mean also for the UNet's loss) ----


def full(shape: tuple[int, ...], value: float, dtype) -> Tensor:
    return Tensor.full(shape, value, dtype=dtype)


def round(x: Tensor) -> Tensor:  # the contract's name (numpy's); shadows the builtin in this module
    """The nearest integer, ties to even."""
    return x.round()


def mean(x: Tensor) -> Tensor:
    return x.mean()


def broadcast_to(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    return x.expand(shape)


def across_heads(v: Tensor) -> Tensor:
    """[B, T, F] -> [B, 1, T, F], against [B, heads, T, head_dim]."""
    return v.unsqueeze(1)


def mask_bits(x: Tensor, mask: int) -> Tensor:
    """float32 x with its bit pattern ANDed with the 32-bit `mask`."""
    return (x.bitcast(dtypes.uint32) & mask).bitcast(dtypes.float32)
