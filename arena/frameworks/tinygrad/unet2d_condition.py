"""SD UNet in tinygrad: the architecture is `arena.functional.unet2d_condition`, run here on the flat
diffusers-named weights, NCHW activations with OIHW kernels (PyTorch's layout, which tinygrad takes as
it is).

What is tinygrad's own: each workload is one TinyJit, the weights its constants (inference) or the
tensors it differentiates (training). Attention is the plain `layers.attention`: tinygrad has no
rematerialisation to ask for.
"""

from __future__ import annotations

import numpy as np
from tinygrad import Tensor

from arena.families.unet2d_condition import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad import layers as nn
from arena.frameworks.tinygrad.common import Model, build_model, forward_step, to_device, training_step
from arena.functional import unet2d_condition as unet


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    x = to_device(inputs, model.ctx)

    def denoise(sample: Tensor, timestep: Tensor, context: Tensor) -> dict[str, Tensor]:
        return {"sample": unet.forward(nn, model.params, model.config, sample, timestep, context, nn.attention)}

    return forward_step(denoise, model, x["sample"], x["timestep"], x["encoder_hidden_states"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The same call as inference at latency_batch (the inputs already have that batch)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`unet.loss` (noise-prediction MSE in float32) and its gradients, in one TinyJit."""
    x = to_device(inputs, model.ctx)

    def loss(sample: Tensor, timestep: Tensor, context: Tensor, noise: Tensor) -> Tensor:
        return unet.loss(nn, model.params, model.config, sample, timestep, context, noise, nn.attention)

    return training_step(model, loss, x["sample"], x["timestep"], x["encoder_hidden_states"], x["noise"])
