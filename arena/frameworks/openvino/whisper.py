"""Whisper in OpenVINO: the exported transformers WhisperForConditionalGeneration
(onnxruntime/export/whisper.py) as IR."""

from __future__ import annotations

import numpy as np

from arena.families.whisper import Config
from arena.frameworks import graph_steps
from arena.frameworks.contract import BuildContext
from arena.frameworks.openvino import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("whisper", config, weights, ctx, inputs)


# The exported graphs' steps (arena/frameworks/graph_steps.py).
inference = graph_steps.whisper_inference
latency = graph_steps.whisper_latency
