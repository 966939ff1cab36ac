"""What the TensorFlow family files share: official-named variables and inputs on the cell's device,
traced steps that return only when the device is done, retrace detection, and the GradientTape
training step with gradients under the official names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from arena.frameworks.contract import DTYPE_NAMES, BuildContext, Step
from arena.frameworks.layouts import grads_to_official, kernels_to, to_channels_first, to_channels_last, trainable_names
from arena.frameworks.tensorflow import device_type

Params = dict[str, tf.Variable]


@dataclass
class Model:
    """A built model: the config, the official-named variables on the device, the cell's context, and
    which variables training differentiates (the only ones created trainable)."""

    config: Any
    params: Params
    ctx: BuildContext
    trainable: list[str]


def float_dtype(ctx: BuildContext) -> tf.DType:
    return tf.as_dtype(DTYPE_NAMES[ctx.dtype])


def device(ctx: BuildContext) -> str:
    """The cell's TensorFlow device; the probe left one GPU visible, so a GPU cell's is always GPU:0."""
    return "/GPU:0" if device_type(ctx) == "GPU" else "/CPU:0"


def to_device(arrays: Mapping[str, np.ndarray], ctx: BuildContext, channels_last: Iterable[str] = ()) -> dict[str, tf.Tensor]:
    """numpy -> tensors on the cell's device; floats take the cell's dtype, integers become int32 (token
    ids, labels and timesteps fit; JAX's default too). Inputs named in `channels_last` (NCHW images,
    NCL frames) move to channels-last, the layout TensorFlow's convolutions take."""
    channels_last = set(channels_last)
    with tf.device(device(ctx)):
        return {
            name: tf.constant(to_channels_last(a) if name in channels_last else a, float_dtype(ctx) if a.dtype.kind == "f" else tf.int32)
            for name, a in arrays.items()
        }


def build_model(config: Any, weights: Mapping[str, np.ndarray], ctx: BuildContext, frozen: Iterable[str] = ()) -> Model:
    """One `tf.Variable` per official tensor on the device; conv kernels spatial-first (HWIO), once, here.
    Only the tensors torch trains are trainable variables, so the tape watches nothing else."""
    trainable = trainable_names(weights, frozen)
    watched = set(trainable)
    with tf.device(device(ctx)):
        params = {
            name: tf.Variable(w, dtype=float_dtype(ctx) if w.dtype.kind == "f" else None, trainable=name in watched, name=name.replace(".", "/"))
            for name, w in kernels_to(weights, "spatial_first").items()
        }
    return Model(config, params, ctx, trainable)


def function(ctx: BuildContext, fn: Callable) -> Any:
    """`fn` as the variant's tf.function: a graph on TensorFlow's kernels, or (xla) compiled by XLA."""
    return tf.function(fn, jit_compile=ctx.variant == "xla")


def to_numpy(tensor: tf.Tensor, channels_first: bool = False) -> np.ndarray:
    a = tf.cast(tensor, tf.float32).numpy()
    return to_channels_first(a) if channels_first else a


def finished(ctx: BuildContext) -> None:
    """Wait for the device: a GPU runs the ops queued by a call after the call returns (CPU ops have
    finished by then). sync_devices is TensorFlow's API for exactly this, made for benchmarks."""
    if device_type(ctx) == "GPU":
        tf.test.experimental.sync_devices()


def tracing_watch(*functions: Any) -> Callable[[], Callable[[], list[str]]]:
    """A Step.watch that reports any tracing (a new concrete function, so a new graph to optimise or
    compile) of the timed tf.functions during the timed calls."""

    def count() -> int:
        return sum(fn.experimental_get_tracing_count() for fn in functions)

    def watch() -> Callable[[], list[str]]:
        before = count()

        def problems() -> list[str]:
            extra = count() - before
            return [f"tf.function traced {extra} new graph(s) during the timed calls"] if extra else []

        return problems

    return watch


def timed(ctx: BuildContext, traced: Any, *args: Any) -> Callable[[], Any]:
    """One timed call of `traced` on the cell's device, returning when the device is done."""

    def run() -> Any:
        with tf.device(device(ctx)):
            out = traced(*args)
        finished(ctx)
        return out

    return run


def forward_step(model: Model, fn: Callable[..., dict[str, tf.Tensor]], *args: Any, channels_first: Iterable[str] = ()) -> Step:
    """An inference step: `fn(params, *args)` returns named outputs; those named in `channels_first`
    come back from channels-last."""
    params, channels_first = model.params, set(channels_first)
    traced = function(model.ctx, lambda *a: fn(params, *a))
    return Step(
        run=timed(model.ctx, traced, *args),
        fetch=lambda out: {k: to_numpy(v, k in channels_first) for k, v in out.items()},
        watch=tracing_watch(traced),
    )


def training_step(model: Model, loss_fn: Callable[..., Any], *args: Any, with_outputs: bool = False) -> Step:
    """Forward + loss + backward as one traced call: `loss_fn(params, *args)` -> scalar loss, or with
    `with_outputs` (loss, {output name: tensor}), outputs computed in the same call (ResNet: its
    BatchNorm statistics). The tape watches the trainable variables only; a variable the loss does not
    reach gets a zero gradient, as torch's would after zero_grad (and JAX's). Gradients come back dense
    (an embedding's is IndexedSlices on the tape; torch's is dense) under the official names."""
    params = model.params
    trained = [params[n] for n in model.trainable]

    def step(*a: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        with tf.GradientTape() as tape:
            value = loss_fn(params, *a)
        loss, outputs = value if with_outputs else (value, {})
        grads = tape.gradient(loss, trained, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, {n: tf.convert_to_tensor(g) for n, g in zip(model.trainable, grads)}, outputs

    traced = function(model.ctx, step)

    def fetch(value: tuple[tf.Tensor, dict[str, tf.Tensor], dict[str, tf.Tensor]]) -> dict[str, np.ndarray]:
        loss, grads, outputs = value
        grads = grads_to_official({n: to_numpy(g) for n, g in grads.items()}, "spatial_first")
        return {"loss": to_numpy(loss)} | grads | {n: to_numpy(t) for n, t in outputs.items()}

    return Step(run=timed(model.ctx, traced, *args), fetch=fetch, watch=tracing_watch(traced))
