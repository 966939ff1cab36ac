"""`Layers`: what a framework's layers module provides to the architectures in this package.

Every framework package that runs them (jax, tensorflow, tinygrad) has a `layers` module with exactly
these names; tests/frameworks/test_functional.py checks each one against this Protocol (names and
parameter names), so a missing or misnamed operation fails there and not in the middle of a trace.

Conventions every implementation keeps:
    - `p` is the flat dict of official-named parameters (PyTorch's names); `name` a module's prefix.
    - Linear weights are PyTorch's [out, in]; convolution kernels are in the framework's own layout,
      converted once at build (`arena.frameworks.layouts`).
    - Activations of a convolution are in the framework's layout (`CHANNEL_AXIS`); token sequences are
      always [batch, tokens, features].
    - Inside attention, heads are in the framework's layout: `split_heads` makes it, `append_positions`
      extends it along the positions, and `attention` returns [batch, tokens, heads * head_dim].
    - Norms and softmax compute in float32 at least, as the official modules do, and return the input's
      dtype.
"""

from __future__ import annotations

from typing import Any, Protocol

Tensor = Any  # the framework's array type (jax.Array, tf.Tensor, tinygrad.Tensor)
Params = dict[str, Tensor]


class Layers(Protocol):
    # ---- layout and dtypes -----------------------------------------------------------------------
    CHANNEL_AXIS: int  # where a convolution's activations keep their channels: -1 or 1
    FLOAT32: Any  # the framework's float32 dtype
    INT32: Any  # the framework's int32 dtype (token positions stay integers until RoPE casts them)

    def cast(self, x: Tensor, dtype: Any) -> Tensor: ...
    def upcast(self, x: Tensor) -> Tensor:
        """float32 for half types; float32 (or wider) stays."""

    # ---- array operations ------------------------------------------------------------------------
    def reshape(self, x: Tensor, shape: tuple[int, ...]) -> Tensor: ...
    def concat(self, xs: list[Tensor], axis: int) -> Tensor: ...
    def chunk(self, x: Tensor, parts: int) -> tuple[Tensor, ...]:
        """`parts` equal pieces of the last axis."""

    def arange(self, n: int, dtype: Any) -> Tensor: ...
    def sin(self, x: Tensor) -> Tensor: ...
    def cos(self, x: Tensor) -> Tensor: ...
    def exp(self, x: Tensor) -> Tensor: ...
    def silu(self, x: Tensor) -> Tensor: ...
    def relu(self, x: Tensor) -> Tensor: ...
    def gelu(self, x: Tensor) -> Tensor:
        """Exact (erf) GELU, as nn.GELU() and HF's "gelu"."""

    # ---- layers ----------------------------------------------------------------------------------
    def linear(self, p: Params, name: str, x: Tensor) -> Tensor:
        """nn.Linear `name` (weight [out, in], bias optional)."""

    def unembed(self, x: Tensor, table: Tensor) -> Tensor:
        """x [..., d] @ table [vocab, d]^T: a head tied to an embedding table."""

    def embedding(self, table: Tensor, ids: Tensor) -> Tensor: ...
    def llama_mlp(self, p: Params, name: str, x: Tensor) -> Tensor:
        """transformers' LlamaMLP `name` (no biases): down_proj(silu(gate_proj(x)) * up_proj(x))."""

    def rms_norm(self, x: Tensor, weight: Tensor, eps: float) -> Tensor: ...
    def layer_norm(self, p: Params, name: str, x: Tensor, eps: float = 1e-5) -> Tensor: ...
    def group_norm(self, p: Params, name: str, x: Tensor, groups: int, eps: float) -> Tensor: ...
    def batch_norm(self, p: Params, name: str, x: Tensor, moved: Params | None, eps: float = 1e-5, momentum: float = 0.1) -> Tensor:
        """nn.BatchNorm2d. `moved` None: eval mode (running statistics). A dict: train mode (the batch's own
        mean and biased variance normalise), and `moved` receives the running statistics torch's train
        step leaves, under their buffer names: the loaded ones moved by `momentum` towards the batch mean
        and the *unbiased* batch variance. `p` is never changed, so every call moves the loaded ones."""

    def conv(self, p: Params, name: str, x: Tensor, stride: int = 1, padding: int = 0, groups: int = 1) -> Tensor:
        """nn.Conv1d / nn.Conv2d `name` on activations in the framework's layout."""

    def pixels_to_tokens(self, x: Tensor) -> Tensor:
        """Convolution activations -> [batch, pixels, channels], pixels in PyTorch's row-major order."""

    def tokens_to_pixels(self, h: Tensor, like: Tensor) -> Tensor:
        """The inverse of `pixels_to_tokens`, back to the layout and spatial shape of `like`."""

    def per_channel(self, v: Tensor) -> Tensor:
        """v [batch, channels] shaped to broadcast over convolution activations."""

    # ---- attention -------------------------------------------------------------------------------
    def split_heads(self, x: Tensor, head_dim: int) -> Tensor:
        """[batch, tokens, heads * head_dim] -> the framework's attention layout."""

    def append_positions(self, past: Tensor, new: Tensor) -> Tensor:
        """Cached K or V followed by the new tokens' (both in the attention layout)."""

    def rope_cos_sin(self, positions: Tensor, head_dim: int, theta: float, dtype: Any) -> tuple[Tensor, Tensor]: ...
    def apply_rope(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor: ...
    def attention(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False, scale: float | None = None) -> Tensor:
        """Scaled dot-product attention with grouped-query heads (K/V not repeated), softmax in float32;
        `mask` True = attend; `causal` aligns the last query with the last key. -> [B, Tq, H * D]."""

    def cross_entropy(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy (F.cross_entropy), log-softmax in float32."""

    # ---- for resnet ----
    def max_pool(self, x: Tensor, kernel_size: int, stride: int, padding: int) -> Tensor:
        """nn.MaxPool2d on convolution activations; the padding never wins a window (-inf or the
        dtype's minimum)."""

    def global_avg_pool(self, x: Tensor) -> Tensor:
        """nn.AdaptiveAvgPool2d((1, 1)) + flatten: convolution activations -> [batch, channels]."""

    # ---- for unet2d_condition ----
    def upsample_nearest2x(self, x: Tensor) -> Tensor:
        """F.interpolate(scale_factor=2, mode="nearest") of 2-D convolution activations (framework layout)."""

    # ---- for vla_expert (mean also for the UNet's loss) ----
    def full(self, shape: tuple[int, ...], value: float, dtype: Any) -> Tensor: ...
    def round(self, x: Tensor) -> Tensor:
        """The nearest integer, ties to even (np.round)."""

    def mean(self, x: Tensor) -> Tensor:
        """The mean of all elements: a 0-d tensor."""

    def broadcast_to(self, x: Tensor, shape: tuple[int, ...]) -> Tensor: ...
    def across_heads(self, v: Tensor) -> Tensor:
        """v [batch, tokens, features] shaped to broadcast across the heads of the attention layout
        (as `per_channel` across a convolution's pixels)."""

    def mask_bits(self, x: Tensor, mask: int) -> Tensor:
        """float32 x with its IEEE-754 bit pattern ANDed with the 32-bit `mask` (0xFFFFF000 keeps the sign,
        the exponent and the 12 leading significant bits: an exact split x = mask_bits(x) + rest)."""
