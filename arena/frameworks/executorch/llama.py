"""LLaMA in ExecuTorch: transformers' LlamaForCausalLM (the reference module), exported as the ONNX path's
graphs (arena/frameworks/onnxruntime/export/llama.py): all-position logits, a prefill method returning
the prompt's K/V, and a decode method with past K/V in and present K/V out."""

from __future__ import annotations

import numpy as np

from arena.families.llama import Config
from arena.frameworks import graph_steps
from arena.frameworks.contract import BuildContext
from arena.frameworks.executorch import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(common.exported_graphs("llama"), config, weights, ctx, inputs)


# The exported graphs' steps (arena/frameworks/graph_steps.py).
inference = graph_steps.llama_inference
latency = graph_steps.llama_latency
