"""The SD UNet in ONNX Runtime: the exported diffusers UNet2DConditionModel (see export/unet2d_condition.py)."""

from __future__ import annotations

import numpy as np

from arena.families.unet2d_condition import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.onnxruntime import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("unet2d_condition", config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    feeds = {"latents": inputs["sample"], "timestep": inputs["timestep"], "encoder_hidden_states": inputs["encoder_hidden_states"]}
    return model.step("model", feeds, returns=("sample",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return inference(model, inputs)  # batch 1: the same graph (symbolic batch)
