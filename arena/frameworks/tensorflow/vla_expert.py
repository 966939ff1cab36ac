"""SmolVLA's action expert in TensorFlow: the architecture is `arena.functional.vla_expert` (lerobot's
VLAFlowMatching denoising branch, its references and deviations); this file is TensorFlow's wiring of it.

What is TensorFlow's own: the weights are tf.Variables, the workloads tf.functions (with or without
XLA) built by `arena.frameworks.tensorflow.common`; the expert's layers are a Python loop (traced
unrolled); the inference workload's Euler loop is a `tf.while_loop` over one denoising step, so the
graph does not grow with num_steps, with the time accumulating in float32 in the loop's state as in
lerobot. The time embedding's float32 cycle parts are tf.constants of the traced graph.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from arena.families.vla_expert import Config, time_cycle_parts
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow import layers as nn
from arena.frameworks.tensorflow.common import Model, Params, build_model, device, forward_step, to_device, training_step
from arena.functional import vla_expert


def cycles(config: Config) -> tuple[tf.Tensor, ...]:
    """`time_cycle_parts` as constants of the graph being traced."""
    return tuple(tf.constant(c, tf.float32) for c in time_cycle_parts(config))


# --- the arena contract --------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The whole Euler denoise of the chunk, from t = 1 (noise) to t = 0: a `tf.while_loop` over
    `vla_expert.euler_step`, the time in float32 in its state; num_steps is read once here (static)."""
    c, num_steps = model.config, int(inputs["num_steps"])
    dt = vla_expert.euler_dt(num_steps)
    t = to_device({k: v for k, v in inputs.items() if k != "num_steps"}, model.ctx)

    def actions(p: Params, keys: tf.Tensor, values: tf.Tensor, noise: tf.Tensor) -> dict[str, tf.Tensor]:
        parts = cycles(c)

        def step(x_t: tf.Tensor, time: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return vla_expert.euler_step(nn, p, c, parts, keys, values, x_t, time, dt), time + dt

        start = (noise, tf.constant(1.0, tf.float32))
        return {"actions": tf.while_loop(lambda *_: True, step, start, maximum_iterations=num_steps)[0]}

    return forward_step(model, actions, t["prefix_keys"], t["prefix_values"], t["noise"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1.0 (the first step of the inference loop)."""
    t = to_device(inputs, model.ctx)
    with tf.device(device(model.ctx)):
        time = tf.ones(t["noise"].shape[:1], tf.float32)

    def velocity(p: Params, keys: tf.Tensor, values: tf.Tensor, noise: tf.Tensor, time: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"velocity": vla_expert.denoise_step(nn, p, model.config, cycles(model.config), keys, values, noise, time)}

    return forward_step(model, velocity, t["prefix_keys"], t["prefix_values"], t["noise"], time)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Flow-matching MSE; the times stay float32 whatever the cell's dtype, as in lerobot (see the family)."""
    t = to_device({k: v for k, v in inputs.items() if k != "time"}, model.ctx)
    with tf.device(device(model.ctx)):
        time = tf.constant(inputs["time"], tf.float32)

    def loss(p: Params, keys: tf.Tensor, values: tf.Tensor, noise: tf.Tensor, actions: tf.Tensor, time: tf.Tensor) -> tf.Tensor:
        return vla_expert.flow_matching_loss(nn, p, model.config, cycles(model.config), keys, values, noise, actions, time)

    return training_step(model, loss, t["prefix_keys"], t["prefix_values"], t["noise"], t["actions"], time)
