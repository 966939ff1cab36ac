"""SD UNet in TensorFlow: the architecture is `arena.functional.unet2d_condition`, run here on the flat
diffusers-named variables, channels-last (NHWC activations, HWIO kernels: the layout TensorFlow's CPU
convolutions take, so no kernel is copied on a call).

What is TensorFlow's own:
    - Attention is recomputed in the backward pass (tf.recompute_grad), so SD 1.5 training need not
      hold every self-attention score matrix; see `rematerialised_attention`.
    - Each workload is one traced tf.function, with the config closed over (static).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import tensorflow as tf

from arena.families.unet2d_condition import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow import layers as nn
from arena.frameworks.tensorflow.common import Model, build_model, forward_step, to_device, training_step
from arena.functional import unet2d_condition as unet

# The score matrix of a 64x64 latent's self-attention is [B, heads, 4096, 4096]: 0.5 GB a layer at batch
# 1, and the tape would keep it (and the softmax) for the backward pass of every such layer. As JAX's
# port does with jax.checkpoint, tf.recompute_grad recomputes the attention in the backward pass
# instead, as torch's fused CPU SDPA kernel does (it never stores the probabilities either). Forward
# values are unchanged.
rematerialised_attention = tf.recompute_grad(nn.attention)


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The config is bound (static), so every Python branch in `forward` is resolved at trace time."""
    x = to_device(inputs, model.ctx, channels_last=["sample"])
    forward = partial(unet.forward, nn, cfg=model.config, attend=rematerialised_attention)
    args = (x["sample"], x["timestep"], x["encoder_hidden_states"])
    return forward_step(model, lambda *a: {"sample": forward(*a)}, *args, channels_first=["sample"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The same call as inference at latency_batch (the inputs already have that batch)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`unet.loss` (noise-prediction MSE in float32) and its gradients w.r.t. the variables, one traced call."""
    x = to_device(inputs, model.ctx, channels_last=["sample", "noise"])
    loss_fn = partial(unet.loss, nn, cfg=model.config, attend=rematerialised_attention)  # (params, *inputs) -> loss
    return training_step(model, loss_fn, x["sample"], x["timestep"], x["encoder_hidden_states"], x["noise"])
