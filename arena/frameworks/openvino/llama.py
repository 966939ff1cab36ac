"""LLaMA in OpenVINO: the exported transformers LlamaForCausalLM (onnxruntime/export/llama.py) as IR."""

from __future__ import annotations

import numpy as np

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.openvino import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("llama", config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("inference", inputs, returns=("logits",))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt: the prefill graph fills the cache (untimed); every timed call
    feeds the same prompt-length cache and produces logits plus the grown cache."""
    cache = model.call("prefill", {"input_ids": inputs["input_ids"]})
    feeds = {"input_ids": inputs["next_input_ids"], "past_keys": cache["present_keys"], "past_values": cache["present_values"]}
    return model.step("decode", feeds, returns=("logits",))
