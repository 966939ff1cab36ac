"""ResNet in ONNX Runtime: the exported torchvision ResNet (see export/resnet.py)."""

from __future__ import annotations

import numpy as np

from arena.families.resnet import Config
from arena.frameworks import graph_steps
from arena.frameworks.contract import BuildContext
from arena.frameworks.onnxruntime import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("resnet", config, weights, ctx, inputs)


# Both workloads: the one graph with a symbolic batch, at the workload's batch (arena/frameworks/graph_steps.py).
inference = latency = graph_steps.resnet_classify
