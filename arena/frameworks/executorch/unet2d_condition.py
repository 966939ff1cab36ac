"""The SD UNet in ExecuTorch: diffusers' UNet2DConditionModel (the reference module), exported through the
ONNX path's wrapper (arena/frameworks/onnxruntime/export/unet2d_condition.py: latents, timestep [batch],
text context -> predicted noise) as two static methods, one per batch size."""

from __future__ import annotations

import numpy as np

from arena.families.unet2d_condition import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.executorch import common
from arena.frameworks.onnxruntime.export.unet2d_condition import graph_inputs  # the inputs renamed: torch only


def methods(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list:
    from arena.frameworks.onnxruntime.export import Graph
    from arena.frameworks.onnxruntime.export.unet2d_condition import graphs

    (denoise,) = graphs(config, weights, inputs, threads)
    return [Graph(workload, denoise.module, graph_inputs(inputs[workload]), denoise.outputs) for workload in ("inference", "latency")]


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(methods, config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("inference", graph_inputs(inputs), returns=("sample",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("latency", graph_inputs(inputs), returns=("sample",))
