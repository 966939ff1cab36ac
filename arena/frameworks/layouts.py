"""Official layouts in, official layouts out: the conversions a framework other than PyTorch needs, in
one tested place.

Weights and inputs arrive as PyTorch lays them out: official tensor names, Linear weights [out, in],
convolution kernels [out, in, *kernel], images NCHW and frame sequences NCL. Gradients must leave the
same way, under the same names. A framework that computes channels-last (MLX's convolutions) converts
with the functions here and nowhere else; one whose ops take PyTorch's layouts (JAX through
`dimension_numbers`) converts nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


def is_conv_kernel(array: np.ndarray) -> bool:
    """Every tensor of rank >= 3 in the families' state dicts is a Conv1d/Conv2d kernel [out, in, *k]."""
    return array.ndim >= 3


def kernel_to_channels_last(kernel: np.ndarray) -> np.ndarray:
    """[out, in, *kernel] -> [out, *kernel, in] (MLX's Conv1d/Conv2d weight layout)."""
    return np.ascontiguousarray(np.moveaxis(kernel, 1, -1))


def kernel_to_channels_first(kernel: np.ndarray) -> np.ndarray:
    """[out, *kernel, in] -> [out, in, *kernel]: a channels-last kernel (or its gradient) back in PyTorch layout."""
    return np.ascontiguousarray(np.moveaxis(kernel, -1, 1))


def to_channels_last(array: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC, NCL -> NLC."""
    return np.ascontiguousarray(np.moveaxis(array, 1, -1))


def to_channels_first(array: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW, NLC -> NCL."""
    return np.ascontiguousarray(np.moveaxis(array, -1, 1))


def kernels_to_channels_last(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A whole state dict with its conv kernels channels-last; everything else unchanged."""
    return {name: kernel_to_channels_last(w) if is_conv_kernel(w) else w for name, w in weights.items()}


def grads_to_official(grads: Mapping[str, np.ndarray], channels_last_kernels: bool) -> dict[str, np.ndarray]:
    """Gradients by official name, as the comparison expects them: `grad/<name>`, PyTorch layout."""
    def layout(g: np.ndarray) -> np.ndarray:
        return kernel_to_channels_first(g) if channels_last_kernels and is_conv_kernel(g) else g

    return {f"grad/{name}": layout(g) for name, g in grads.items()}


def trainable_names(weights: Mapping[str, np.ndarray], frozen: Iterable[str] = ()) -> list[str]:
    """The tensors a training step differentiates: floating ones that PyTorch holds as parameters with
    requires_grad. `frozen` lists name suffixes that are buffers or frozen parameters in the official
    module (BatchNorm running statistics, Whisper's fixed sinusoid table), which get no gradient there."""
    frozen = tuple(frozen)
    return [name for name, w in weights.items() if w.dtype.kind == "f" and not name.endswith(frozen)]
