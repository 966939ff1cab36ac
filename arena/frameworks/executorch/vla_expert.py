"""The SmolVLA expert in ExecuTorch: the reference module (lerobot's structure, arena/frameworks/torch/
vla_expert.py), exported as the ONNX path's graphs (arena/frameworks/onnxruntime/export/vla_expert.py):
the whole Euler sampling loop (`num_steps` unrolled) and one denoising step at t = 1."""

from __future__ import annotations

import numpy as np

from arena.families.vla_expert import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.executorch import common


def methods(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list:
    from arena.frameworks.onnxruntime.export.vla_expert import graphs  # torch: only when converting

    return graphs(config, weights, inputs, threads)


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(methods, config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """The full sampling loop; `num_steps` is part of the method (unrolled at export)."""
    return model.step("inference", {k: a for k, a in inputs.items() if k != "num_steps"}, returns=("actions",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("latency", inputs, returns=("velocity",))
