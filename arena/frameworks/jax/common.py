"""What the JAX family files share: parameters and inputs on the device, jitted steps that return only
when the device is done, and the training step with gradients under the official names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from arena.frameworks.contract import DTYPE_NAMES, BuildContext, Step
from arena.frameworks.layouts import grads_to_official, kernels_to, to_channels_first, to_channels_last, trainable_names

Params = dict[str, jax.Array]


@dataclass
class Model:
    """A built model: the config, the flat official-named parameters on the device, the cell's float
    dtype, and which tensors training differentiates."""

    config: Any
    params: Params
    ctx: BuildContext
    trainable: list[str]

    @property
    def dtype(self) -> jnp.dtype:
        return float_dtype(self.ctx)


def float_dtype(ctx: BuildContext) -> jnp.dtype:
    return jnp.dtype(DTYPE_NAMES[ctx.dtype])


def to_device(arrays: Mapping[str, np.ndarray], dtype: jnp.dtype, channels_last: Iterable[str] = ()) -> dict[str, jax.Array]:
    """numpy -> JAX on the default device (the cell's); floats take the cell's dtype, integers stay
    integers (int32 unless x64 is on: token ids and labels fit). The inputs named in `channels_last`
    (NCHW images, NCL frames) move to channels-last, the layout XLA computes convolutions in."""
    channels_last = set(channels_last)
    return {
        name: jnp.asarray(to_channels_last(a) if name in channels_last else a, dtype if a.dtype.kind == "f" else None)
        for name, a in arrays.items()
    }


def build_model(config: Any, weights: Mapping[str, np.ndarray], ctx: BuildContext, frozen: Iterable[str] = ()) -> Model:
    """Parameters on the device under their official names; conv kernels spatial-first (HWIO), once,
    here: XLA's CPU convolutions would otherwise copy every OIHW kernel into HWIO on every call."""
    params = to_device(kernels_to(weights, "spatial_first"), float_dtype(ctx))
    return Model(config, params, ctx, trainable_names(weights, frozen))


def to_numpy(array: jax.Array, channels_first: bool = False) -> np.ndarray:
    a = np.asarray(jax.device_get(array.astype(jnp.float32)))
    return to_channels_first(a) if channels_first else a


def cache_watch(*jitted: Callable) -> Callable[[], Callable[[], list[str]]]:
    """A Step.watch that reports any compilation (a jit cache miss) during the timed calls."""

    def sizes() -> list[int]:
        return [fn._cache_size() for fn in jitted]

    def watch() -> Callable[[], list[str]]:
        before = sizes()

        def problems() -> list[str]:
            extra = sum(sizes()) - sum(before)
            return [f"jax.jit compiled {extra} new executable(s) during the timed calls"] if extra else []

        return problems

    return watch


def forward_step(fn: Callable[..., dict[str, jax.Array]], *args: Any, channels_first: Iterable[str] = ()) -> Step:
    """An inference step: `fn` is jitted and returns named outputs; those named in `channels_first`
    come back from channels-last."""
    jitted, channels_first = jax.jit(fn), set(channels_first)

    def run() -> dict[str, jax.Array]:
        return jax.block_until_ready(jitted(*args))

    return Step(run=run, fetch=lambda out: {k: to_numpy(v, k in channels_first) for k, v in out.items()}, watch=cache_watch(jitted))


def training_step(model: Model, loss_fn: Callable[..., Any], *args: Any, with_outputs: bool = False) -> Step:
    """Forward + loss + backward as one jitted call: `loss_fn(params, *args)` -> scalar loss, or with
    `with_outputs` (loss, {output name: array}), outputs computed in the same call (ResNet: its
    BatchNorm statistics). Gradients are taken w.r.t. `model.trainable` only, and come back under the
    official names."""
    trained = {n: model.params[n] for n in model.trainable}
    held = {n: a for n, a in model.params.items() if n not in trained}
    with_aux = loss_fn if with_outputs else lambda *a: (loss_fn(*a), {})
    value_and_grad = jax.jit(jax.value_and_grad(lambda t, h, *a: with_aux(t | h, *a), has_aux=True))

    def run() -> tuple[tuple[jax.Array, Params], Params]:
        return jax.block_until_ready(value_and_grad(trained, held, *args))

    def fetch(value: tuple[tuple[jax.Array, Params], Params]) -> dict[str, np.ndarray]:
        (loss, outputs), grads = value
        grads = grads_to_official({n: to_numpy(g) for n, g in grads.items()}, "spatial_first")
        return {"loss": to_numpy(loss)} | grads | {n: to_numpy(a) for n, a in outputs.items()}

    return Step(run=run, fetch=fetch, watch=cache_watch(value_and_grad))
