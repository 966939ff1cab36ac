"""LLaMA in ExecuTorch: transformers' LlamaForCausalLM (the reference module), exported as the ONNX path's
graphs (arena/frameworks/onnxruntime/export/llama.py): all-position logits, a prefill method returning
the prompt's K/V, and a decode method with past K/V in and present K/V out."""

from __future__ import annotations

import numpy as np

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.executorch import common


def methods(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list:
    from arena.frameworks.onnxruntime.export.llama import graphs  # torch + transformers: only when converting

    return graphs(config, weights, inputs, threads)


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(methods, config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("inference", inputs, returns=("logits",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt: the prefill method fills the cache (untimed); every timed call
    feeds the same prompt-length cache and produces logits plus the grown cache."""
    cache = model.call("prefill", {"input_ids": inputs["input_ids"]})
    feeds = {"input_ids": inputs["next_input_ids"], "past_keys": cache["present_keys"], "past_values": cache["present_values"]}
    return model.step("decode", feeds, returns=("logits",))
