"""Whisper in ExecuTorch: transformers' WhisperForConditionalGeneration (the reference module), exported as
the ONNX path's graphs (arena/frameworks/onnxruntime/export/whisper.py): encoder output and all-position
decoder logits, a prefill method returning the prefix's self-attention K/V and the cross-attention K/V,
and a decode method taking both and returning logits plus the grown self-attention K/V."""

from __future__ import annotations

import numpy as np

from arena.families.whisper import Config
from arena.frameworks import graph_steps
from arena.frameworks.contract import BuildContext
from arena.frameworks.executorch import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(common.exported_graphs("whisper"), config, weights, ctx, inputs)


# The exported graphs' steps (arena/frameworks/graph_steps.py).
inference = graph_steps.whisper_inference
latency = graph_steps.whisper_latency
