"""The SD UNet in OpenVINO: the exported diffusers UNet2DConditionModel
(onnxruntime/export/unet2d_condition.py) as IR, whose symbolic batch is compiled at the inference
batch, then at batch 1 for latency."""

from __future__ import annotations

import numpy as np

from arena.families.unet2d_condition import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.openvino import common


def feeds(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's input names (`latents`: the output is the family's `sample`)."""
    return {"latents": inputs["sample"], "timestep": inputs["timestep"], "encoder_hidden_states": inputs["encoder_hidden_states"]}


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("unet2d_condition", config, weights, ctx, inputs, batch={"model": feeds(inputs["inference"])})


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("model", feeds(inputs), returns=("sample",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return inference(model, inputs)  # batch 1: the same graph, compiled for it when this step is set up
