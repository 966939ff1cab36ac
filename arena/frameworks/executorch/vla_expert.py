"""The SmolVLA expert in ExecuTorch: the reference module (lerobot's structure, arena/frameworks/torch/
vla_expert.py), exported as the ONNX path's graphs (arena/frameworks/onnxruntime/export/vla_expert.py):
the whole Euler sampling loop (`num_steps` unrolled) and one denoising step at t = 1."""

from __future__ import annotations

import numpy as np

from arena.families.vla_expert import Config
from arena.frameworks import graph_steps
from arena.frameworks.contract import BuildContext
from arena.frameworks.executorch import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(common.exported_graphs("vla_expert"), config, weights, ctx, inputs)


# The exported graphs' steps (arena/frameworks/graph_steps.py).
inference = graph_steps.vla_expert_inference
latency = graph_steps.vla_expert_latency
