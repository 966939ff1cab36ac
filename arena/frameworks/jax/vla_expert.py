"""SmolVLA's action expert in JAX: the architecture is `arena.functional.vla_expert` (lerobot's
VLAFlowMatching denoising branch, its references and deviations); this file is JAX's wiring of it.

What is JAX's own: the weights are the pytree, differentiated by `jax.value_and_grad` and compiled by
`jax.jit` (`arena.frameworks.jax.common`); the expert's layers are a Python loop (jit unrolls them);
the inference workload's Euler loop is a `lax.fori_loop` over one compiled step, so the program size
does not grow with num_steps, with the time accumulating in float32 in the loop's carry as in lerobot.
The time embedding's float32 cycle parts enter as numpy constants of the traced program. Attention is
XLA's dot_product_attention (`arena.frameworks.jax.layers`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from arena.families.vla_expert import Config, time_cycle_parts
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.jax import layers as nn
from arena.frameworks.jax.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.functional import vla_expert


# --- the arena contract --------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The whole Euler denoise of the chunk, from t = 1 (noise) to t = 0: a `lax.fori_loop` over
    `vla_expert.euler_step`, the time carried in float32; num_steps is read once here (static)."""
    c, num_steps = model.config, int(inputs["num_steps"])
    cycles, dt = time_cycle_parts(c), vla_expert.euler_dt(num_steps)
    t = to_device({k: v for k, v in inputs.items() if k != "num_steps"}, model.dtype)

    def actions(p: Params, keys: jax.Array, values: jax.Array, noise: jax.Array) -> dict[str, jax.Array]:
        def step(_: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
            x_t, time = carry
            return vla_expert.euler_step(nn, p, c, cycles, keys, values, x_t, time, dt), time + jnp.float32(dt)

        return {"actions": jax.lax.fori_loop(0, num_steps, step, (noise, jnp.float32(1.0)))[0]}

    return forward_step(actions, model.params, t["prefix_keys"], t["prefix_values"], t["noise"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1.0 (the first step of the inference loop)."""
    t = to_device(inputs, model.dtype)
    time = jnp.ones(t["noise"].shape[:1], jnp.float32)
    cycles = time_cycle_parts(model.config)

    def velocity(p: Params, keys: jax.Array, values: jax.Array, noise: jax.Array, time: jax.Array) -> dict[str, jax.Array]:
        return {"velocity": vla_expert.denoise_step(nn, p, model.config, cycles, keys, values, noise, time)}

    return forward_step(velocity, model.params, t["prefix_keys"], t["prefix_values"], t["noise"], time)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Flow-matching MSE; the times stay float32 whatever the cell's dtype, as in lerobot (see the family)."""
    t = to_device({k: v for k, v in inputs.items() if k != "time"}, model.dtype)
    time = jnp.asarray(inputs["time"], jnp.float32)
    cycles = time_cycle_parts(model.config)

    def loss(p: Params, keys: jax.Array, values: jax.Array, noise: jax.Array, actions: jax.Array, time: jax.Array) -> jax.Array:
        return vla_expert.flow_matching_loss(nn, p, model.config, cycles, keys, values, noise, actions, time)

    return training_step(model, loss, t["prefix_keys"], t["prefix_values"], t["noise"], t["actions"], time)
