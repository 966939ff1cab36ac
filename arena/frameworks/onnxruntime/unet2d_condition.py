"""The SD UNet in ONNX Runtime: the exported diffusers UNet2DConditionModel (see export/unet2d_condition.py)."""

from __future__ import annotations

import numpy as np

from arena.families.unet2d_condition import Config
from arena.frameworks import graph_steps
from arena.frameworks.contract import BuildContext
from arena.frameworks.onnxruntime import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("unet2d_condition", config, weights, ctx, inputs)


# Both workloads: the one graph with a symbolic batch, at the workload's batch (arena/frameworks/graph_steps.py).
inference = latency = graph_steps.unet_denoise
