"""The SmolVLA expert in OpenVINO: the exported reference module (onnxruntime/export/vla_expert.py) as IR."""

from __future__ import annotations

import numpy as np

from arena.families.vla_expert import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.openvino import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("vla_expert", config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """The full sampling loop; `num_steps` is part of the graph (unrolled at export)."""
    return model.step("inference", {k: a for k, a in inputs.items() if k != "num_steps"}, returns=("actions",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1."""
    return model.step("latency", inputs, returns=("velocity",))
