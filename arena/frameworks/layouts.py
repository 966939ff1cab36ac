"""Official layouts in, official layouts out: the conversions a framework other than PyTorch needs, in
one tested place.

Weights and inputs arrive as PyTorch lays them out: official tensor names, Linear weights [out, in],
convolution kernels [out, in, *kernel], images NCHW and frame sequences NCL. Gradients must leave the
same way, under the same names. Frameworks that compute channels-last convert with the functions here
and nowhere else:

    kernel layout     axes                    who
    "channels_last"   [out, *kernel, in]      MLX's Conv1d / Conv2d weights
    "spatial_first"   [*kernel, in, out]      JAX/XLA (HWIO, flax's layout; XLA's CPU convolutions
                                              would otherwise copy every OIHW kernel on every call)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np

KernelLayout = Literal["channels_last", "spatial_first"]


def is_conv_kernel(array: np.ndarray) -> bool:
    """Every tensor of rank >= 3 in the families' state dicts is a Conv1d/Conv2d kernel [out, in, *k]."""
    return array.ndim >= 3


def _axes(ndim: int, layout: KernelLayout) -> tuple[int, ...]:
    """Where each axis of the target layout comes from in [out, in, *kernel]."""
    spatial = tuple(range(2, ndim))
    return (0, *spatial, 1) if layout == "channels_last" else (*spatial, 1, 0)


def kernel_to(kernel: np.ndarray, layout: KernelLayout) -> np.ndarray:
    """[out, in, *kernel] -> the framework's kernel layout."""
    return np.ascontiguousarray(np.transpose(kernel, _axes(kernel.ndim, layout)))


def kernel_from(kernel: np.ndarray, layout: KernelLayout) -> np.ndarray:
    """A kernel (or its gradient) in the framework's layout -> [out, in, *kernel]."""
    return np.ascontiguousarray(np.transpose(kernel, np.argsort(_axes(kernel.ndim, layout))))


def to_channels_last(array: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC, NCL -> NLC."""
    return np.ascontiguousarray(np.moveaxis(array, 1, -1))


def to_channels_first(array: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW, NLC -> NCL."""
    return np.ascontiguousarray(np.moveaxis(array, -1, 1))


def kernels_to(weights: Mapping[str, np.ndarray], layout: KernelLayout) -> dict[str, np.ndarray]:
    """A whole state dict with its conv kernels in the framework's layout; everything else unchanged."""
    return {name: kernel_to(w, layout) if is_conv_kernel(w) else w for name, w in weights.items()}


def grads_to_official(grads: Mapping[str, np.ndarray], kernel_layout: KernelLayout) -> dict[str, np.ndarray]:
    """Gradients by official name, as the comparison expects them: `grad/<name>`, PyTorch layout."""
    return {f"grad/{name}": kernel_from(g, kernel_layout) if is_conv_kernel(g) else g for name, g in grads.items()}


def trainable_names(weights: Mapping[str, np.ndarray], frozen: Iterable[str] = ()) -> list[str]:
    """The tensors a training step differentiates: floating ones that PyTorch holds as parameters with
    requires_grad. `frozen` lists name suffixes that are buffers or frozen parameters in the official
    module (BatchNorm running statistics, Whisper's fixed sinusoid table), which get no gradient there."""
    frozen = tuple(frozen)
    return [name for name, w in weights.items() if w.dtype.kind == "f" and not name.endswith(frozen)]
