"""The layers MAX graphs are built from, as functions of a flat official-named parameter dict `p` whose
values are the graph's `Weight`s (the `arena.functional.layers.Layers` contract).

Everything here is symbolic: it runs once, inside a `max.graph.Graph` being built, and adds operations
to it; shapes are static, so Python ints decide layouts and masks. Linear weights are PyTorch's [out,
in]; convolutions are channels-last, MAX's own layout (`ops.conv2d`: NHWC activations, RSCF = HWIO
kernels, converted once at build by `arena.frameworks.layouts`); a Conv1d runs as a conv2d of height 1.
Inside attention: [batch, heads, positions, head_dim] (heads-first, so QK^T and PV are batched
matmuls without a transpose per call). Norms use MAX's fused kernels where their arithmetic is the
official one (float32 statistics), else float32 reductions written out as the JAX layers do.
"""

from __future__ import annotations

import math
from contextvars import ContextVar

import numpy as np
from max.dtype import DType
from max.graph import DeviceRef, TensorValue, ops

Params = dict[str, TensorValue]

# The device the graph being built runs on: constants (masks, ranges) are created there. Set by
# arena/frameworks/max/common.py around each graph's construction.
DEVICE: ContextVar[DeviceRef] = ContextVar("DEVICE", default=DeviceRef.CPU())

# ---- layout, dtypes and array operations ----

CHANNEL_AXIS = -1  # channels-last
FLOAT32 = DType.float32
INT32 = DType.int32
sin, cos, exp = ops.sin, ops.cos, ops.exp
silu, relu = ops.silu, ops.relu


def dims(x: TensorValue) -> tuple[int, ...]:
    """A value's static shape as ints (MAX's shapes are Dims)."""
    return tuple(int(d) for d in x.shape)


def constant(value: np.ndarray | float, dtype: DType) -> TensorValue:
    """A constant of the graph on its device (ops.constant wants the array in the dtype it is given)."""
    return ops.constant(np.asarray(value, dtype=dtype.to_numpy()), dtype=dtype, device=DEVICE.get())


def cast(x: TensorValue, dtype: DType) -> TensorValue:
    return x if x.dtype == dtype else ops.cast(x, dtype)


def upcast(x: TensorValue) -> TensorValue:
    """float32 for half types; float32 (or wider) stays."""
    return cast(x, DType.float32) if x.dtype in (DType.float16, DType.bfloat16) else x


def reshape(x: TensorValue, shape: tuple[int, ...]) -> TensorValue:
    return ops.reshape(x, [int(d) for d in shape])


def concat(xs: list[TensorValue], axis: int) -> TensorValue:
    return ops.concat(xs, axis=axis)


def chunk(x: TensorValue, parts: int) -> tuple[TensorValue, ...]:
    return tuple(ops.chunk(x, parts, axis=-1))


def arange(n: int, dtype: DType) -> TensorValue:
    return constant(np.arange(int(n)), dtype)


def pixels_to_tokens(x: TensorValue) -> TensorValue:
    """NHWC / NLC -> [B, pixels, C] (row-major pixels, as PyTorch's flatten of NCHW after a permute)."""
    shape = dims(x)
    return ops.reshape(x, [shape[0], -1, shape[-1]])


def tokens_to_pixels(h: TensorValue, like: TensorValue) -> TensorValue:
    return ops.reshape(h, list(dims(like)))


def per_channel(v: TensorValue) -> TensorValue:
    """[B, C] -> [B, 1, 1, C], against NHWC."""
    b, c = dims(v)
    return ops.reshape(v, [b, 1, 1, c])


def split_heads(x: TensorValue, head_dim: int) -> TensorValue:
    """[B, T, heads * head_dim] -> [B, heads, T, head_dim]."""
    b, t, _ = dims(x)
    return ops.permute(ops.reshape(x, [b, t, -1, int(head_dim)]), [0, 2, 1, 3])


def append_positions(past: TensorValue, new: TensorValue) -> TensorValue:
    """Along the positions of [B, heads, positions, head_dim]."""
    return ops.concat([past, new], axis=2)


def transposed(w: TensorValue) -> TensorValue:
    return ops.transpose(w, -1, -2)


def unembed(x: TensorValue, table: TensorValue) -> TensorValue:
    return x @ transposed(table)


def linear(p: Params, name: str, x: TensorValue) -> TensorValue:
    """nn.Linear `name` (weight [out, in], bias optional)."""
    y = x @ transposed(p[f"{name}.weight"])
    bias = p.get(f"{name}.bias")
    return y if bias is None else y + bias


def llama_mlp(p: Params, name: str, x: TensorValue) -> TensorValue:
    """transformers' LlamaMLP `name` (no biases): down_proj(silu(gate_proj(x)) * up_proj(x))."""
    gated = ops.silu(linear(p, f"{name}.gate_proj", x)) * linear(p, f"{name}.up_proj", x)
    return linear(p, f"{name}.down_proj", gated)


def embedding(table: TensorValue, ids: TensorValue) -> TensorValue:
    return ops.gather(table, ids, axis=0)


def rms_norm(x: TensorValue, weight: TensorValue, eps: float) -> TensorValue:
    """LlamaRMSNorm with MAX's fused kernel: float32 statistics, cast back, then scale (the LLaMA order,
    `multiply_before_cast=False`)."""
    return ops.rms_norm(x, weight, eps, multiply_before_cast=False)


def _mean(x: TensorValue, axes: tuple[int, ...]) -> TensorValue:
    """Mean over `axes`, keeping them as size 1 (MAX's reductions keep the reduced axis)."""
    for axis in axes:
        x = ops.mean(x, axis=axis)
    return x


def layer_norm(p: Params, name: str, x: TensorValue, eps: float = 1e-5) -> TensorValue:
    """nn.LayerNorm over the last axis with MAX's fused kernel (biased variance, float32 statistics)."""
    return ops.layer_norm(x, p[f"{name}.weight"], p[f"{name}.bias"], eps)


def group_norm(p: Params, name: str, x: TensorValue, groups: int, eps: float) -> TensorValue:
    """nn.GroupNorm on channels-last x [N, ..., C] (biased variance over each group's channels and pixels).
    Written out: MAX's `ops.group_norm` takes channels-first activations."""
    shape = dims(x)
    n, c = shape[0], shape[-1]
    x32 = ops.reshape(upcast(x), [n, -1, groups, c // groups])
    mean = _mean(x32, (1, 3))
    centred = x32 - mean
    var = _mean(centred * centred, (1, 3))
    normed = cast(ops.reshape(centred * ops.rsqrt(var + eps), list(shape)), x.dtype)
    return normed * p[f"{name}.weight"] + p[f"{name}.bias"]


def batch_norm(p: Params, name: str, x: TensorValue, moved: Params | None, eps: float = 1e-5, momentum: float = 0.1) -> TensorValue:
    """nn.BatchNorm2d on NHWC, as the contract's `batch_norm` says (eval mode with `moved` None;
    train mode fills `moved` with the moved running statistics)."""
    if moved is None:
        mean, var = p[f"{name}.running_mean"], p[f"{name}.running_var"]
    else:
        x32 = upcast(x)
        mean = _mean(x32, (0, 1, 2))
        centred = x32 - mean
        var = _mean(centred * centred, (0, 1, 2))
        mean, var = ops.reshape(mean, [-1]), ops.reshape(var, [-1])
        count = math.prod(dims(x)[:-1])  # values per channel
        for stat, batch in (("running_mean", mean), ("running_var", var * (count / (count - 1)))):
            loaded = p[f"{name}.{stat}"]
            moved[f"{name}.{stat}"] = cast((1 - momentum) * loaded + momentum * batch, loaded.dtype)
    scale = p[f"{name}.weight"] * ops.rsqrt(var + eps)
    shift = p[f"{name}.bias"] - mean * scale
    return x * cast(scale, x.dtype) + cast(shift, x.dtype)


def conv(p: Params, name: str, x: TensorValue, stride: int = 1, padding: int = 0, groups: int = 1) -> TensorValue:
    """nn.Conv1d / nn.Conv2d, channels-last: x NLC / NHWC, kernel WIO / HWIO ([*k, in/groups, out])."""
    kernel, bias = p[f"{name}.weight"], p.get(f"{name}.bias")
    if len(kernel.shape) == 3:  # Conv1d as a conv2d of height 1
        n, length, c = dims(x)
        y = ops.conv2d(ops.reshape(x, [n, 1, length, c]), ops.reshape(kernel, [1, *dims(kernel)]),
                       stride=(1, stride), padding=(0, 0, padding, padding), groups=groups, bias=bias)  # fmt: skip
        return ops.reshape(y, [n, -1, int(y.shape[-1])])
    return ops.conv2d(x, kernel, stride=(stride, stride), padding=(padding,) * 4, groups=groups, bias=bias)


def gelu(x: TensorValue) -> TensorValue:
    """Exact (erf) GELU, as nn.GELU() and HF's "gelu"."""
    return ops.gelu(x, approximate="none")


def rope_cos_sin(positions: TensorValue, head_dim: int, theta: float, dtype: DType) -> tuple[TensorValue, TensorValue]:
    """HF LlamaRotaryEmbedding (default rope type): inv_freq = theta^(-2i/d) (float32, as the reference's
    buffer), angles in float32, duplicated halves; cos/sin [batch, seq, head_dim] in `dtype`."""
    inv_freq = constant(1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim)), DType.float32)
    angles = ops.unsqueeze(cast(positions, DType.float32), -1) * inv_freq
    emb = ops.concat([angles, angles], axis=-1)
    return cast(ops.cos(emb), dtype), cast(ops.sin(emb), dtype)


def rotate_half(x: TensorValue) -> TensorValue:
    half = int(x.shape[-1]) // 2
    return ops.concat([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope(x: TensorValue, cos: TensorValue, sin: TensorValue) -> TensorValue:
    """Rotate-half RoPE of x [batch, heads, seq, head_dim] with cos/sin [batch, seq, head_dim]."""
    cos, sin = ops.unsqueeze(cos, 1), ops.unsqueeze(sin, 1)
    return x * cos + rotate_half(x) * sin


def attention(q: TensorValue, k: TensorValue, v: TensorValue, mask: TensorValue | None = None, causal: bool = False, scale: float | None = None) -> TensorValue:
    """Scaled dot-product attention with grouped-query heads. q [B, H, Tq, D], k/v [B, KVH, Tk, D] (KVH
    divides H; each K/V head serves its group of query heads through a broadcast, not a copy); mask
    [Tq, Tk] or [B, 1, Tq, Tk], True = attend; `causal` aligns the last query with the last key (so a
    decode step with a cache sees everything). Scores scaled after QK^T, softmax in float32. Returns
    [B, Tq, H * D]."""
    b, h, tq, d = dims(q)
    kvh, tk = int(k.shape[1]), int(k.shape[2])
    g = h // kvh
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    # MAX's batched matmul takes rank 4 at most: a K/V head's group of query heads is one [G * Tq, D] block
    grouped = ops.reshape(q, [b, kvh, g * tq, d])
    scores = (grouped @ transposed(k)) * scale  # [B, KVH, G * Tq, Tk]
    if causal:
        keep = constant(np.tril(np.ones((tq, tk), dtype=bool), tk - tq), DType.bool)
        mask = keep if mask is None else ops.logical_and(mask, keep)
    if mask is not None:  # applied to a [B, KVH, G, Tq, Tk] view (elementwise operations take any rank)
        mask = ops.unsqueeze(mask, 2) if len(mask.shape) == 4 else mask
        masked = ops.where(mask, ops.reshape(scores, [b, kvh, g, tq, tk]), constant(-math.inf, scores.dtype))
        scores = ops.reshape(masked, [b, kvh, g * tq, tk])
    probs = cast(ops.softmax(upcast(scores), axis=-1), q.dtype)
    out = ops.reshape(probs @ v, [b, h, tq, d])  # [B, KVH, G * Tq, D] -> [B, H, Tq, D]
    return ops.reshape(ops.permute(out, [0, 2, 1, 3]), [b, tq, h * d])


def cross_entropy(logits: TensorValue, labels: TensorValue) -> TensorValue:
    """Mean cross-entropy (F.cross_entropy), log-softmax in float32."""
    logp = ops.logsoftmax(upcast(logits), axis=-1)
    picked = ops.gather_nd(logp, ops.unsqueeze(cast(labels, DType.int64), -1), batch_dims=len(labels.shape))
    return -mean(picked)


# ---- for resnet ----


def max_pool(x: TensorValue, kernel_size: int, stride: int, padding: int) -> TensorValue:
    """nn.MaxPool2d on NHWC; MAX pads the window with -inf (lowest), which never wins it."""
    return ops.max_pool2d(x, (kernel_size, kernel_size), stride=stride, padding=padding)


def global_avg_pool(x: TensorValue) -> TensorValue:
    """nn.AdaptiveAvgPool2d((1, 1)) + flatten: NHWC -> [B, C]."""
    b, _, _, c = dims(x)
    return ops.reshape(_mean(x, (1, 2)), [b, c])


# ---- for unet2d_condition ----


def upsample_nearest2x(x: TensorValue) -> TensorValue:
    """F.interpolate(scale_factor=2, mode="nearest") on NHWC: every pixel repeated along H and W."""
    b, hgt, wid, c = dims(x)
    wide = ops.broadcast_to(ops.reshape(x, [b, hgt, 1, wid, 1, c]), [b, hgt, 2, wid, 2, c])
    return ops.reshape(wide, [b, 2 * hgt, 2 * wid, c])


# ---- for vla_expert (mean also for the UNet's loss) ----


def full(shape: tuple[int, ...], value: float, dtype: DType) -> TensorValue:
    return constant(np.full(tuple(int(d) for d in shape), value), dtype)


def round(x: TensorValue) -> TensorValue:  # noqa: A001 (the contract's name; shadows the builtin here only)
    """The nearest integer, ties to even (MAX's `round` is roundeven)."""
    return ops.round(x)


def mean(x: TensorValue) -> TensorValue:
    """The mean of all elements: a 0-d value."""
    return ops.reshape(ops.mean(ops.reshape(x, [-1]), axis=-1), [])


def broadcast_to(x: TensorValue, shape: tuple[int, ...]) -> TensorValue:
    return ops.broadcast_to(x, [int(d) for d in shape])


def across_heads(v: TensorValue) -> TensorValue:
    """[B, T, F] -> [B, 1, T, F], against [B, heads, T, head_dim]."""
    return ops.unsqueeze(v, 1)


# Exact powers of two for the exponent search of `mask_bits`.
_EXPONENT_STEPS = (64, 32, 16, 8, 4, 2, 1)


def mask_bits(x: TensorValue, mask: int) -> TensorValue:
    """float32 x with its bit pattern ANDed with the 32-bit `mask`, for masks that clear the lowest
    mantissa bits only (the only kind the architectures use). MAX has no bitcast, so this truncates
    arithmetically, with operations that are exact in float32: `power` = 2^floor(log2|x|), found by a
    binary search over the exponent (multiplying by powers of two and comparing are exact; `log` is
    not), then |x| rounded down to a multiple of power * 2^(cleared - 23). For ±0 and normal numbers
    (subnormals may be flushed to zero by the CPU kernels; the architectures' times are >= 1e-3).""" 
    cleared = (~mask & 0xFFFFFFFF).bit_length()
    if mask != (0xFFFFFFFF >> cleared) << cleared or cleared > 23:
        raise ValueError(f"mask_bits: {mask:#x} clears more than low mantissa bits")
    size = upcast(ops.abs(x))
    one = constant(1.0, DType.float32)
    up, down = ops.broadcast_to(one, list(dims(x))), ops.broadcast_to(one, list(dims(x)))
    for k in _EXPONENT_STEPS:
        wider = up * float(2.0**k)
        up = ops.where(ops.greater_equal(size, wider), wider, up)  # up <= size, as large as it gets
        narrower = down * float(2.0**-k)
        down = ops.where(ops.greater(narrower, size), narrower, down)  # down > size, as small as it gets
    power = ops.where(ops.greater_equal(size, one), up, down * 0.5)
    # the kept significand as an integer, then scaled back: every intermediate is >= power, so normal
    significand = ops.floor(size / power * float(2.0 ** (23 - cleared)))
    kept = significand * power * float(2.0 ** (cleared - 23))
    signed = ops.where(ops.greater_equal(x, constant(0.0, DType.float32)), kept, -kept)
    return ops.where(ops.equal(size, 0.0), x, signed)  # ±0 as it came (0's quantum may flush to 0)


def _float_arithmetic_on_static_dims() -> None:
    """The architectures do float arithmetic on static sizes as on ints (`head_dim ** -0.5`, `2.0 /
    width`); MAX's StaticDim supports integer arithmetic only, so these two operations are given to it
    here, as the int they hold would compute them (arena/functional stays framework-neutral)."""
    from max.graph.dim import StaticDim

    StaticDim.__pow__ = lambda self, exponent: int(self) ** exponent  # type: ignore[method-assign]
    StaticDim.__rtruediv__ = lambda self, other: other / int(self)  # type: ignore[method-assign]


_float_arithmetic_on_static_dims()
