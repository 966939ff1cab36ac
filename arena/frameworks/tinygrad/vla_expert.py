"""SmolVLA's action expert in tinygrad: the architecture is `arena.functional.vla_expert` (lerobot's
VLAFlowMatching denoising branch, its references and deviations); this file is tinygrad's wiring of it.

What is tinygrad's own: each workload is one TinyJit (`arena.frameworks.tinygrad.common`), and
attention runs heads-first (`arena.frameworks.tinygrad.layers`). The inference workload's Euler loop
is unrolled in Python (num_steps is fixed per preset), so TinyJit captures the whole denoise as one
kernel list. The times of the steps (1, 1 + dt, ...) accumulate in float32 on the host, as lerobot's
loop does, and enter the JIT as an input buffer, so tinygrad never folds them into constants with
other rounding. The time embedding's float32 cycle parts are realised on the device once per config.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from tinygrad import Tensor, dtypes

from arena.families.vla_expert import Config, time_cycle_parts
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad import layers as nn
from arena.frameworks.tinygrad.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.functional import vla_expert


@cache
def cycle_parts(config: Config) -> tuple[Tensor, ...]:
    """`time_cycle_parts` on the device, made once: a Tensor made from numpy inside a TinyJit function
    would be copied from the host again in every replayed call."""
    parts = tuple(Tensor(c, dtype=dtypes.float32) for c in time_cycle_parts(config))
    Tensor.realize(*parts)
    return parts


def euler_times(num_steps: int, batch: int) -> np.ndarray:
    """The time of each Euler step, [num_steps, batch] float32: from 1, accumulated in float32 as lerobot does."""
    dt, time, times = np.float32(vla_expert.euler_dt(num_steps)), np.float32(1.0), []
    for _ in range(num_steps):
        times.append(time)
        time = np.float32(time + dt)
    return np.repeat(np.array(times, dtype=np.float32)[:, None], batch, axis=1)


def sample_actions(p: Params, c: Config, prefix_keys: Tensor, prefix_values: Tensor, noise: Tensor, times: Tensor) -> Tensor:
    """Euler integration from t = 1 (noise) to t = 0 over the step times `times` [num_steps, B], one
    `vla_expert.euler_step` each."""
    num_steps = times.shape[0]
    cycles, dt, x_t = cycle_parts(c), vla_expert.euler_dt(num_steps), noise
    for i in range(num_steps):
        x_t = vla_expert.euler_step(nn, p, c, cycles, prefix_keys, prefix_values, x_t, times[i], dt)
    return x_t


# --- the arena contract --------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The whole Euler denoise of the chunk; num_steps is read once here (the loop is unrolled)."""
    t = to_device({k: v for k, v in inputs.items() if k != "num_steps"}, model.ctx)
    times = to_device({"times": euler_times(int(inputs["num_steps"]), t["noise"].shape[0])}, model.ctx, dtypes.float32)["times"]

    def actions(keys: Tensor, values: Tensor, noise: Tensor, times: Tensor) -> dict[str, Tensor]:
        return {"actions": sample_actions(model.params, model.config, keys, values, noise, times)}

    return forward_step(actions, model, t["prefix_keys"], t["prefix_values"], t["noise"], times)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1.0 (the first step of the inference loop)."""
    t = to_device(inputs, model.ctx)
    time = to_device({"time": euler_times(1, t["noise"].shape[0])[0]}, model.ctx, dtypes.float32)["time"]

    def velocity(keys: Tensor, values: Tensor, noise: Tensor, time: Tensor) -> dict[str, Tensor]:
        return {"velocity": vla_expert.denoise_step(nn, model.params, model.config, cycle_parts(model.config), keys, values, noise, time)}

    return forward_step(velocity, model, t["prefix_keys"], t["prefix_values"], t["noise"], time)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Flow-matching MSE; the times stay float32 whatever the cell's dtype, as in lerobot (see the family)."""
    t = to_device({k: v for k, v in inputs.items() if k != "time"}, model.ctx)
    time = to_device({"time": inputs["time"]}, model.ctx, dtypes.float32)["time"]

    def loss(keys: Tensor, values: Tensor, noise: Tensor, actions: Tensor, time: Tensor) -> Tensor:
        return vla_expert.flow_matching_loss(nn, model.params, model.config, cycle_parts(model.config), keys, values, noise, actions, time)

    return training_step(model, loss, t["prefix_keys"], t["prefix_values"], t["noise"], t["actions"], time)
