"""LLaMA in ONNX Runtime: the exported transformers LlamaForCausalLM (see export/llama.py)."""

from __future__ import annotations

import numpy as np

from arena.families.llama import Config
from arena.frameworks import graph_steps
from arena.frameworks.contract import BuildContext
from arena.frameworks.onnxruntime import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("llama", config, weights, ctx, inputs)


# The exported graphs' steps (arena/frameworks/graph_steps.py).
inference = graph_steps.llama_inference
latency = graph_steps.llama_latency
