"""ResNet in ExecuTorch: torchvision's ResNet (the reference module, eval-mode BatchNorm, which the
XNNPACK lowering folds into the convolutions), exported through the ONNX path's wrapper
(arena/frameworks/onnxruntime/export/resnet.py) as one static method per batch size."""

from __future__ import annotations

import numpy as np

from arena.families.resnet import Config
from arena.frameworks import graph_steps
from arena.frameworks.contract import BuildContext
from arena.frameworks.executorch import common


def methods(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list:
    from arena.frameworks.onnxruntime.export.resnet import graphs  # torch + torchvision: only when converting

    (classify,) = graphs(config, weights, inputs, threads)
    return common.per_batch(classify, [inputs[workload] for workload in ("inference", "latency")])


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(methods, config, weights, ctx, inputs)


# Both workloads: the one graph with a symbolic batch, at the workload's batch (arena/frameworks/graph_steps.py).
inference = latency = graph_steps.resnet_classify
