"""SmolVLA's action expert in MAX: the architecture is `arena.functional.vla_expert` (lerobot's
VLAFlowMatching denoising branch, its references and deviations), traced into MAX graphs with this
package's layers. `inference` is the whole Euler loop as one graph, unrolled (num_steps is static), the
time accumulated in float32 between steps as lerobot's loop does and entering each step as a constant;
`latency` is one denoising step at t = 1.
"""

from __future__ import annotations

import numpy as np

from arena.families.vla_expert import Config, time_cycle_parts
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.max import common
from arena.frameworks.max import layers as nn
from arena.functional import vla_expert

PREFIX = ("prefix_keys", "prefix_values", "noise")


def graph_cycles(config: Config) -> vla_expert.Cycles:
    """The time embedding's float32 cycle parts as constants of the graph being built."""
    return tuple(nn.constant(part, nn.FLOAT32) for part in time_cycle_parts(config))


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.prepare(common.build_model(config, weights, ctx), {"inference": inference, "latency": latency}, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """x += dt v(x, t), t += dt, num_steps times from t = 1; each step's t is the float32 sum so far."""
    c, num_steps = model.config, int(inputs["num_steps"])
    dt = vla_expert.euler_dt(num_steps)

    def actions(p, keys, values, x_t):
        cycles, time = graph_cycles(c), np.float32(1.0)
        for _ in range(num_steps):
            x_t = vla_expert.euler_step(nn, p, c, cycles, keys, values, x_t, nn.constant(time, nn.FLOAT32), dt)
            time = np.float32(time + np.float32(dt))
        return {"actions": x_t}

    return common.step(model, "inference", actions, {k: inputs[k] for k in PREFIX})


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1.0 (the first step of the inference loop)."""

    def velocity(p, keys, values, noise, time):
        return {"velocity": vla_expert.denoise_step(nn, p, model.config, graph_cycles(model.config), keys, values, noise, time)}

    time = np.ones(inputs["noise"].shape[:1], np.float32)
    return common.step(model, "latency", velocity, {k: inputs[k] for k in PREFIX} | {"time": time})
