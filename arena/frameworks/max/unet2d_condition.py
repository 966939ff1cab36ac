"""SD UNet in MAX: the architecture is `arena.functional.unet2d_condition` (diffusers'
UNet2DConditionModel), traced into one MAX graph per batch size, channels-last (NHWC activations,
HWIO kernels: MAX's convolution layout); the latents go in and the predicted noise comes out in
PyTorch's NCHW, converted outside the timed call."""

from __future__ import annotations

from functools import partial

import numpy as np

from arena.families.unet2d_condition import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.max import common
from arena.frameworks.max import layers as nn
from arena.functional import unet2d_condition as unet


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.prepare(common.build_model(config, weights, ctx), {"inference": inference, "latency": latency}, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    forward = partial(unet.forward, nn, cfg=model.config, attend=nn.attention)

    def denoise(p, sample, timestep, context):
        return {"sample": forward(p, sample, timestep, context)}

    feeds = {k: inputs[k] for k in ("sample", "timestep", "encoder_hidden_states")}
    return common.step(model, "denoise", denoise, feeds, channels_last=["sample"], channels_first=["sample"])


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """The inference graph at `latency_batch` (compiled for that batch)."""
    return inference(model, inputs)
