"""The SmolVLA expert in OpenVINO: the exported reference module (onnxruntime/export/vla_expert.py) as IR."""

from __future__ import annotations

import numpy as np

from arena.families.vla_expert import Config
from arena.frameworks import graph_steps
from arena.frameworks.contract import BuildContext
from arena.frameworks.openvino import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("vla_expert", config, weights, ctx, inputs)


# The exported graphs' steps (arena/frameworks/graph_steps.py).
inference = graph_steps.vla_expert_inference
latency = graph_steps.vla_expert_latency
