"""What the tinygrad family files share: weights and inputs on the device, TinyJit steps that return
only when the device is done, and the training step with gradients under the official names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tinygrad import Device, Tensor, TinyJit, dtypes
from tinygrad.dtype import DType
from tinygrad.helpers import JIT

from arena.frameworks.contract import DTYPE_NAMES, BuildContext, Step
from arena.frameworks.layouts import trainable_names
from arena.frameworks.tinygrad import device

Params = dict[str, Tensor]


@dataclass
class Model:
    """A built model: the config, the flat official-named weights on the device, the cell's float dtype,
    and which tensors training differentiates."""

    config: Any
    params: Params
    ctx: BuildContext
    trainable: list[str]

    @property
    def dtype(self) -> DType:
        return float_dtype(self.ctx)

    @property
    def device(self) -> str:
        return device(self.ctx)


def float_dtype(ctx: BuildContext) -> DType:
    return getattr(dtypes, DTYPE_NAMES[ctx.dtype])


def to_device(arrays: Mapping[str, np.ndarray], ctx: BuildContext, dtype: DType | None = None) -> dict[str, Tensor]:
    """numpy -> realised Tensors on the cell's device; floats take `dtype` (default: the cell's), integers
    become int32 (token ids, labels and timesteps fit)."""
    dtype = dtype or float_dtype(ctx)
    out = {name: Tensor(np.ascontiguousarray(a), device=device(ctx), dtype=dtype if a.dtype.kind == "f" else dtypes.int32) for name, a in arrays.items()}
    Tensor.realize(*out.values())
    return out


def build_model(config: Any, weights: Mapping[str, np.ndarray], ctx: BuildContext, frozen: Iterable[str] = ()) -> Model:
    """The weights on the device under their official names (PyTorch layout, as tinygrad's own)."""
    return Model(config, to_device(weights, ctx), ctx, trainable_names(weights, frozen))


def to_numpy(tensor: Tensor) -> np.ndarray:
    return tensor.float().numpy() if tensor.dtype != dtypes.float32 else tensor.numpy()


def jit_watch(jitted: Any) -> Callable[[], Callable[[], list[str]]]:
    """A Step.watch that reports a TinyJit that was not replaying its captured kernels in the timed
    calls: not captured yet (it captures on its second call), captured again (reset), or JIT=0."""

    def watch() -> Callable[[], list[str]]:
        calls, captured = jitted.cnt, jitted.captured

        def problems() -> list[str]:
            if not JIT:
                return ["JIT=0: TinyJit ran the Python function (and scheduled its kernels) in every timed call"]
            if calls < 2 or captured is None:
                return [f"TinyJit had not captured its kernels before the timed calls (after {calls} call(s))"]
            return ["TinyJit captured its kernels again during the timed calls"] if jitted.captured is not captured else []

        return problems

    return watch


def forward_step(fn: Callable[..., dict[str, Tensor]], model: Model, *args: Tensor) -> Step:
    """An inference step: `fn(*args)` (named output Tensors) through TinyJit, realised and the device
    synchronised before each call returns. `args` are the call's input Tensors; the weights `fn`
    closes over are constants of the captured kernels."""
    jitted = TinyJit(fn)

    def run() -> dict[str, Tensor]:
        out = jitted(*args)
        Tensor.realize(*out.values())
        Device[model.device].synchronize()
        return out

    return Step(run=run, fetch=lambda out: {k: to_numpy(v) for k, v in out.items()}, watch=jit_watch(jitted))


def training_step(model: Model, loss_fn: Callable[..., Any], *args: Tensor, with_outputs: bool = False) -> Step:
    """Forward + loss + backward as one TinyJit: `loss_fn(*args)` -> scalar loss, or with `with_outputs`
    (loss, {output name: Tensor}) computed in the same call (ResNet: its moved BatchNorm statistics).
    `Tensor.gradient` differentiates `model.trainable` only (tinygrad 0.14 has no requires_grad: its
    `backward` fills .grad of every live float tensor in the graph, inputs and frozen buffers included);
    the gradients come back as `grad/<official name>`, already in PyTorch layout."""
    trained = [model.params[n] for n in model.trainable]

    def step(*args: Tensor) -> dict[str, Tensor]:
        loss, outputs = loss_fn(*args) if with_outputs else (loss_fn(*args), {})
        grads = loss.gradient(*trained)
        return {"loss": loss} | {f"grad/{n}": g for n, g in zip(model.trainable, grads)} | outputs

    return forward_step(step, model, *args)
