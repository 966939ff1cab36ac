"""ResNet in ExecuTorch: torchvision's ResNet (the reference module, eval-mode BatchNorm, which the
XNNPACK lowering folds into the convolutions), exported through the ONNX path's wrapper
(arena/frameworks/onnxruntime/export/resnet.py) as two static methods, one per batch size."""

from __future__ import annotations

import numpy as np

from arena.families.resnet import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.executorch import common


def methods(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list:
    from arena.frameworks.onnxruntime.export import Graph
    from arena.frameworks.onnxruntime.export.resnet import graphs  # torch + torchvision: only when converting

    (classify,) = graphs(config, weights, inputs, threads)
    return [Graph(workload, classify.module, inputs[workload], classify.outputs) for workload in ("inference", "latency")]


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(methods, config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("inference", inputs, returns=("logits",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("latency", inputs, returns=("logits",))
