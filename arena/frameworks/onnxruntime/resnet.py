"""ResNet in ONNX Runtime: the exported torchvision ResNet (see export/resnet.py)."""

from __future__ import annotations

import numpy as np

from arena.families.resnet import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.onnxruntime import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("resnet", config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("model", inputs, returns=("logits",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return inference(model, inputs)  # batch 1: the same graph (symbolic batch)
