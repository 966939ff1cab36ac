"""SD UNet in tinygrad: the architecture is `arena.functional.unet2d_condition`, run here on the flat
diffusers-named weights, NCHW activations with OIHW kernels (PyTorch's layout, which tinygrad takes as
it is).

What is tinygrad's own: each workload is one TinyJit, the weights its constants (inference) or the
tensors it differentiates (training). Attention is the plain `layers.attention`, not rematerialised
in the backward pass as JAX's and TensorFlow's is.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from arena.families.unet2d_condition import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad import layers as nn
from arena.frameworks.tinygrad.common import Model, build_model, forward_step, to_device, training_step
from arena.functional import unet2d_condition as unet


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    x = to_device(inputs, model.ctx)
    forward = partial(unet.forward, nn, model.params, cfg=model.config, attend=nn.attention)
    args = (x["sample"], x["timestep"], x["encoder_hidden_states"])
    return forward_step(lambda *a: {"sample": forward(*a)}, model, *args)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The same call as inference at latency_batch (the inputs already have that batch)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`unet.loss` (noise-prediction MSE in float32) and its gradients w.r.t. the weights, one TinyJit."""
    x = to_device(inputs, model.ctx)
    loss = partial(unet.loss, nn, model.params, cfg=model.config, attend=nn.attention)  # (*inputs) -> loss
    return training_step(model, loss, x["sample"], x["timestep"], x["encoder_hidden_states"], x["noise"])
