"""What the MLX family files share: loading official weights into a module tree, inputs in the
module's layout, compiled steps that evaluate inside the timed call, and the training step with
gradients under the official names in PyTorch layout."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from arena.frameworks.contract import DTYPE_NAMES, BuildContext, Step
from arena.frameworks.layouts import grads_to_official, kernels_to, to_channels_first, to_channels_last


def float_dtype(ctx: BuildContext) -> mx.Dtype:
    return getattr(mx, DTYPE_NAMES[ctx.dtype])


def load(module: nn.Module, weights: Mapping[str, np.ndarray], ctx: BuildContext, skip: Iterable[str] = ()) -> nn.Module:
    """Official weights into `module` by name, strictly (every name and shape must match), conv kernels
    channels-last, floats in the cell's dtype. `skip` names suffixes MLX has no tensor for (BatchNorm's
    num_batches_tracked counter). The module is left in eval mode with its parameters evaluated."""
    skip, dtype = tuple(skip), float_dtype(ctx)
    kept = kernels_to({n: w for n, w in weights.items() if not (skip and n.endswith(skip))}, "channels_last")
    module.load_weights([(n, mx.array(w, dtype) if w.dtype.kind == "f" else mx.array(w)) for n, w in kept.items()], strict=True)
    module.eval()
    mx.eval(module.parameters())
    module.ctx = ctx  # plain attribute (not an array): the family's steps read the cell's dtype from it
    return module


def to_device(arrays: Mapping[str, np.ndarray], ctx: BuildContext, channels_last: Iterable[str] = ()) -> dict[str, mx.array]:
    """numpy -> MLX; floats take the cell's dtype, integers stay integers; the inputs named in
    `channels_last` (NCHW images, NCL frames) are moved to MLX's channels-last layout."""
    channels_last, dtype = set(channels_last), float_dtype(ctx)
    out = {}
    for name, a in arrays.items():
        a = to_channels_last(a) if name in channels_last else a
        out[name] = mx.array(a, dtype) if a.dtype.kind == "f" else mx.array(a)
    return out


def to_numpy(array: mx.array, channels_first: bool = False) -> np.ndarray:
    a = np.array(array.astype(mx.float32))
    return to_channels_first(a) if channels_first else a


def forward_step(fn: Callable[..., dict[str, mx.array]], *args: Any, channels_first: Iterable[str] = ()) -> Step:
    """An inference step: `fn(*args)` returns named outputs; compiled with mx.compile (the module's
    weights are captured as constants, which they are during inference). Outputs named in
    `channels_first` come back from channels-last."""
    compiled, channels_first = mx.compile(fn), set(channels_first)

    def run() -> dict[str, mx.array]:
        out = compiled(*args)
        mx.eval(out)
        return out

    return Step(run=run, fetch=lambda out: {k: to_numpy(v, k in channels_first) for k, v in out.items()})


def training_step(module: nn.Module, loss_fn: Callable[..., mx.array], *args: Any) -> Step:
    """Forward + loss + backward as one compiled call: `loss_fn(*args)` uses `module` and returns the
    scalar loss. Gradients are w.r.t. the module's trainable parameters (frozen ones: BatchNorm running
    statistics, anything the family froze), flattened to official names, kernels back in PyTorch layout.
    The module's state is an input and an output of the compiled function, as mx.compile requires when
    a call updates it (train-mode BatchNorm updates its running statistics)."""
    module.train()
    value_and_grad = nn.value_and_grad(module, loss_fn)
    state = [module.state]
    compiled = partial(mx.compile, inputs=state, outputs=state)(value_and_grad)

    def run() -> tuple[mx.array, dict]:
        loss, grads = compiled(*args)
        mx.eval(loss, grads)
        return loss, grads

    def fetch(value: tuple[mx.array, dict]) -> dict[str, np.ndarray]:
        loss, grads = value
        named = {n: to_numpy(g) for n, g in tree_flatten(grads)}
        return {"loss": to_numpy(loss)} | grads_to_official(named, "channels_last")

    return Step(run=run, fetch=fetch)
