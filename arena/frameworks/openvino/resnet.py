"""ResNet in OpenVINO: the exported torchvision ResNet (onnxruntime/export/resnet.py) as IR, whose
symbolic batch is compiled at the inference batch, then at batch 1 for latency."""

from __future__ import annotations

import numpy as np

from arena.families.resnet import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.openvino import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("resnet", config, weights, ctx, inputs, batch={"model": inputs["inference"]})


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("model", inputs, returns=("logits",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return inference(model, inputs)  # batch 1: the same graph, compiled for it when this step is set up
