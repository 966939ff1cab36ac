"""SD UNet in JAX: the architecture is `arena.functional.unet2d_condition`, run here on the flat
diffusers-named parameter dict, channels-last (NHWC activations, HWIO kernels: XLA's own layout, so no
kernel is copied on a call).

What is JAX's own:
    - Attention is rematerialised in the backward pass (jax.checkpoint), so SD 1.5 training fits in
      24 GiB; see `rematerialised_attention`.
    - Each workload is one jitted call, with the config closed over (static).
"""

from __future__ import annotations

from functools import partial

import jax
import numpy as np

from arena.families.unet2d_condition import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.jax import layers as nn
from arena.frameworks.jax.common import Model, build_model, forward_step, to_device, training_step
from arena.functional import unet2d_condition as unet

# The score matrix of a 64x64 latent's self-attention is [B, heads, 4096, 4096]: 0.5 GB a layer at batch
# 1. XLA keeps it for the backward pass, and with five such layers SD 1.5 training ran out of 24 GiB.
# jax.checkpoint recomputes the attention in the backward pass instead, as torch's fused CPU SDPA
# kernel does (it never stores the probabilities either). Forward values are unchanged.
rematerialised_attention = jax.checkpoint(nn.attention)


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The config is bound (static), so every Python branch in `forward` is resolved at trace time."""
    x = to_device(inputs, model.dtype, channels_last=["sample"])
    forward = partial(unet.forward, nn, cfg=model.config, attend=rematerialised_attention)
    args = (model.params, x["sample"], x["timestep"], x["encoder_hidden_states"])
    return forward_step(lambda *a: {"sample": forward(*a)}, *args, channels_first=["sample"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The same call as inference at latency_batch (the inputs already have that batch)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`unet.loss` (noise-prediction MSE in float32) and its gradients w.r.t. the params, one jitted call."""
    x = to_device(inputs, model.dtype, channels_last=["sample", "noise"])
    loss_fn = partial(unet.loss, nn, cfg=model.config, attend=rematerialised_attention)  # (params, *inputs) -> loss
    return training_step(model, loss_fn, x["sample"], x["timestep"], x["encoder_hidden_states"], x["noise"])
