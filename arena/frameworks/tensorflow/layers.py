"""The layers the TensorFlow families share, as pure functions of a flat official-named parameter dict
`p` (tf.Variables), traced into the caller's tf.function.

Linear weights are PyTorch's [out, in] (MatMul with transpose_b, on 2-D operands so oneDNN/XLA see a
plain GEMM and Grappler can fuse the bias); convolutions are channels-last: activations NHWC / NLC,
kernels HWIO / WIO, converted once at build by `arena.frameworks.layouts`. Inside attention: [batch,
time, heads, head_dim]. Norms compute in float32 (at least) as the official modules do, then return
the input dtype. Shapes are static: every input of a traced function has a fixed shape.
"""

from __future__ import annotations

import math

import tensorflow as tf

Params = dict[str, tf.Variable]

# ---- layout, dtypes and array operations (the `arena.functional.layers.Layers` contract) ----

CHANNEL_AXIS = -1  # channels-last
FLOAT32 = tf.float32
INT32 = tf.int32
cast = tf.cast
sin, cos, exp = tf.sin, tf.cos, tf.exp
silu, relu = tf.nn.silu, tf.nn.relu


def reshape(x: tf.Tensor, shape: tuple[int, ...]) -> tf.Tensor:
    return tf.reshape(x, shape)


def concat(xs: list[tf.Tensor], axis: int) -> tf.Tensor:
    return tf.concat(xs, axis=axis)


def chunk(x: tf.Tensor, parts: int) -> tuple[tf.Tensor, ...]:
    return tuple(tf.split(x, parts, axis=-1))


def arange(n: int, dtype: tf.DType) -> tf.Tensor:
    return tf.range(n, dtype=dtype)


def pixels_to_tokens(x: tf.Tensor) -> tf.Tensor:
    """NHWC / NLC -> [B, pixels, C] (row-major pixels, as PyTorch's flatten of NCHW after a permute)."""
    return tf.reshape(x, [x.shape[0], -1, x.shape[-1]])


def tokens_to_pixels(h: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    return tf.reshape(h, like.shape)


def per_channel(v: tf.Tensor) -> tf.Tensor:
    """[B, C] -> [B, 1, 1, C], against NHWC."""
    return v[:, None, None, :]


def split_heads(x: tf.Tensor, head_dim: int) -> tf.Tensor:
    """[B, T, heads * head_dim] -> [B, T, heads, head_dim] (the layout `attention` takes)."""
    return tf.reshape(x, [*x.shape[:2], -1, head_dim])


def append_positions(past: tf.Tensor, new: tf.Tensor) -> tf.Tensor:
    return tf.concat([past, new], axis=1)


def unembed(x: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
    return dense(x, table)


def dense(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | None = None) -> tf.Tensor:
    """x [..., in] @ weight[out, in]^T (+ bias) -> [..., out]."""
    *lead, features = x.shape
    y = tf.matmul(tf.reshape(x, [-1, features]), weight, transpose_b=True)
    if bias is not None:
        y = tf.nn.bias_add(y, bias)
    return tf.reshape(y, [*lead, weight.shape[0]])


def linear(p: Params, name: str, x: tf.Tensor) -> tf.Tensor:
    """nn.Linear `name` (weight [out, in], bias optional)."""
    return dense(x, p[f"{name}.weight"], p.get(f"{name}.bias"))


def llama_mlp(p: Params, name: str, x: tf.Tensor) -> tf.Tensor:
    """transformers' LlamaMLP `name` (no biases): down_proj(silu(gate_proj(x)) * up_proj(x))."""
    gated = tf.nn.silu(linear(p, f"{name}.gate_proj", x)) * linear(p, f"{name}.up_proj", x)
    return linear(p, f"{name}.down_proj", gated)


def embedding(table: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    return tf.gather(table, ids)


def upcast(x: tf.Tensor) -> tf.Tensor:
    """float32 for half types; float32 (or wider) stays."""
    return x if x.dtype in (tf.float32, tf.float64) else tf.cast(x, tf.float32)


def rms_norm(x: tf.Tensor, weight: tf.Tensor, eps: float) -> tf.Tensor:
    """LlamaRMSNorm: normalise in float32, cast back, then scale."""
    x32 = upcast(x)
    normed = x32 * tf.math.rsqrt(tf.reduce_mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return weight * tf.cast(normed, x.dtype)


def layer_norm(p: Params, name: str, x: tf.Tensor, eps: float = 1e-5) -> tf.Tensor:
    """nn.LayerNorm over the last axis (biased variance)."""
    x32 = upcast(x)
    mean = tf.reduce_mean(x32, axis=-1, keepdims=True)
    var = tf.reduce_mean(tf.square(x32 - mean), axis=-1, keepdims=True)
    normed = tf.cast((x32 - mean) * tf.math.rsqrt(var + eps), x.dtype)
    return normed * p[f"{name}.weight"] + p[f"{name}.bias"]


def group_norm(p: Params, name: str, x: tf.Tensor, groups: int, eps: float) -> tf.Tensor:
    """nn.GroupNorm on channels-last x [N, ..., C] (biased variance over each group's channels and pixels)."""
    n, c = x.shape[0], x.shape[-1]
    x32 = tf.reshape(upcast(x), [n, -1, groups, c // groups])
    mean = tf.reduce_mean(x32, axis=(1, 3), keepdims=True)
    var = tf.reduce_mean(tf.square(x32 - mean), axis=(1, 3), keepdims=True)
    normed = tf.cast(tf.reshape((x32 - mean) * tf.math.rsqrt(var + eps), x.shape), x.dtype)
    return normed * p[f"{name}.weight"] + p[f"{name}.bias"]


def batch_norm(p: Params, name: str, x: tf.Tensor, moved: dict[str, tf.Tensor] | None, eps: float = 1e-5, momentum: float = 0.1) -> tf.Tensor:
    """nn.BatchNorm2d on NHWC, as the contract's `batch_norm` says (eval mode with `moved` None;
    train mode fills `moved` with the moved running statistics)."""
    if moved is None:
        mean, var = p[f"{name}.running_mean"], p[f"{name}.running_var"]
    else:
        x32 = upcast(x)
        mean = tf.reduce_mean(x32, axis=(0, 1, 2))
        var = tf.reduce_mean(tf.square(x32 - mean), axis=(0, 1, 2))
        count = x.shape.num_elements() // x.shape[-1]  # values per channel
        for stat, batch in (("running_mean", mean), ("running_var", var * count / (count - 1))):
            loaded = p[f"{name}.{stat}"]
            moved[f"{name}.{stat}"] = tf.cast((1 - momentum) * tf.cast(loaded, batch.dtype) + momentum * batch, loaded.dtype)
    scale = p[f"{name}.weight"] * tf.math.rsqrt(var + eps)
    shift = p[f"{name}.bias"] - mean * scale
    return x * tf.cast(scale, x.dtype) + tf.cast(shift, x.dtype)


def conv(p: Params, name: str, x: tf.Tensor, stride: int = 1, padding: int = 0, groups: int = 1) -> tf.Tensor:
    """nn.Conv1d / nn.Conv2d, channels-last: x NLC / NHWC, kernel WIO / HWIO ([*k, in/groups, out]).
    TensorFlow takes the group count from the input's channels over the kernel's; `groups` is checked
    against it. A Conv1d runs as a Conv2d over a height of 1, as tf.nn.conv1d does (which has no
    explicit padding)."""
    kernel, bias = p[f"{name}.weight"], p.get(f"{name}.bias")
    if x.shape[-1] != kernel.shape[-2] * groups:
        raise ValueError(f"{name}: {x.shape[-1]} input channels are not {groups} groups of the kernel's {kernel.shape[-2]}")
    if kernel.shape.rank == 3:
        y = tf.nn.conv2d(x[:, None], kernel[None], [1, stride], [[0, 0], [0, 0], [padding, padding], [0, 0]])[:, 0]
    else:
        y = tf.nn.conv2d(x, kernel, stride, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    return y if bias is None else tf.nn.bias_add(y, bias)


def gelu(x: tf.Tensor) -> tf.Tensor:
    """Exact (erf) GELU, as nn.GELU() and HF's "gelu"."""
    return tf.nn.gelu(x, approximate=False)


def rope_cos_sin(positions: tf.Tensor, head_dim: int, theta: float, dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor]:
    """HF LlamaRotaryEmbedding (default rope type): inv_freq = theta^(-2i/d), angles in float32,
    duplicated halves; cos/sin [batch, seq, head_dim] in the activations' dtype."""
    inv_freq = 1.0 / (theta ** (tf.range(0, head_dim, 2, dtype=tf.float32) / head_dim))
    angles = tf.cast(positions, tf.float32)[..., None] * inv_freq
    emb = tf.concat([angles, angles], axis=-1)
    return tf.cast(tf.cos(emb), dtype), tf.cast(tf.sin(emb), dtype)


def rotate_half(x: tf.Tensor) -> tf.Tensor:
    half = x.shape[-1] // 2
    return tf.concat([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor) -> tf.Tensor:
    """Rotate-half RoPE of x [batch, seq, heads, head_dim] with cos/sin [batch, seq, head_dim]."""
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    return x * cos + rotate_half(x) * sin


def attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: tf.Tensor | None = None, causal: bool = False, scale: float | None = None) -> tf.Tensor:
    """Scaled dot-product attention with grouped-query heads. q [B, Tq, H, D], k/v [B, Tk, KVH, D]
    (KVH divides H; K/V are not repeated: the query heads are grouped per K/V head instead); mask
    [B or 1, 1, Tq, Tk], True = attend; `causal` aligns the last query with the last key (so a decode
    step with a cache sees everything). Scores are scaled after QK^T and the softmax is in float32.
    Returns [B, Tq, H * D]. TensorFlow has no fused attention kernel for the CPU: this is the plain
    composition, which Grappler or XLA fuse where they can."""
    b, tq, h, d = q.shape
    tk, kvh = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    q = tf.reshape(q, [b, tq, kvh, h // kvh, d])  # [B, Tq, KVH, G, D]
    scores = tf.einsum("bqkgd,bskd->bkgqs", q, k) * scale  # [B, KVH, G, Tq, Tk]
    if causal:
        keep = tf.range(tk)[None, :] <= tf.range(tq)[:, None] + (tk - tq)
        mask = keep[None, None] if mask is None else mask & keep[None, None]
    if mask is not None:
        scores = tf.where(mask[:, :, None], scores, tf.constant(scores.dtype.min, scores.dtype))
    probs = tf.cast(tf.nn.softmax(upcast(scores), axis=-1), v.dtype)
    out = tf.einsum("bkgqs,bskd->bqkgd", probs, v)
    return tf.reshape(out, [b, tq, h * d])


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy (F.cross_entropy) on integer labels, in float32: TensorFlow's fused
    softmax-cross-entropy op, its documented form for integer labels."""
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=upcast(logits))
    return tf.reduce_mean(losses)


# ---- for resnet ----


def max_pool(x: tf.Tensor, kernel_size: int, stride: int, padding: int) -> tf.Tensor:
    """nn.MaxPool2d on NHWC: padded with -inf, so the padding never wins a window. TensorFlow's "SAME"
    would pad only the bottom/right here, which moves every window."""
    padded = tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]], constant_values=-math.inf)
    return tf.nn.max_pool2d(padded, ksize=kernel_size, strides=stride, padding="VALID")


def global_avg_pool(x: tf.Tensor) -> tf.Tensor:
    """nn.AdaptiveAvgPool2d((1, 1)) + flatten: NHWC -> [B, C]."""
    return tf.reduce_mean(x, axis=(1, 2))


# ---- for unet2d_condition ----


def upsample_nearest2x(x: tf.Tensor) -> tf.Tensor:
    """F.interpolate(scale_factor=2, mode="nearest") on NHWC."""
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


# ---- for vla_expert (mean also for the UNet's loss) ----

round, mean, broadcast_to = tf.round, tf.reduce_mean, tf.broadcast_to  # round (ties to even) shadows the builtin here


def full(shape: tuple[int, ...], value: float, dtype: tf.DType) -> tf.Tensor:
    return tf.constant(value, dtype, shape=shape)


def across_heads(v: tf.Tensor) -> tf.Tensor:
    """[B, T, F] -> [B, T, 1, F], against [B, T, heads, head_dim]."""
    return v[:, :, None, :]


def mask_bits(x: tf.Tensor, mask: int) -> tf.Tensor:
    """float32 x with its bit pattern ANDed with the 32-bit `mask`."""
    bits = tf.bitwise.bitwise_and(tf.bitcast(x, tf.uint32), tf.constant(mask, tf.uint32))
    return tf.bitcast(bits, tf.float32)
