"""LLaMA in MAX: the architecture is `arena.functional.llama` (transformers' LlamaForCausalLM; its
deviations are listed there), traced into MAX graphs with this package's layers. One graph per
workload: the prompt's logits; for `latency`, a prefill graph that returns every layer's K/V (run once,
untimed; the K/V stay on the device) and the decode graph, which reads them and returns the next
token's logits.
"""

from __future__ import annotations

import numpy as np

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.max import common
from arena.frameworks.max import layers as nn
from arena.functional import llama


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.prepare(common.build_model(config, weights, ctx), {"inference": inference, "latency": latency}, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    def logits(p, ids):
        return {"logits": llama.forward(nn, p, model.config, ids)[0]}

    return common.step(model, "inference", logits, {"input_ids": inputs["input_ids"]})


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt, against the prompt's cache (the step never writes into it)."""
    config, prompt_len = model.config, inputs["input_ids"].shape[1]

    def prefill(p, ids):
        _, cache = llama.forward(nn, p, config, ids)
        return common.flat_cache(cache)

    def decode(p, token, *cache):
        return {"logits": llama.forward(nn, p, config, token, prompt_len, common.layer_cache(cache))[0]}

    cache = common.call(model, "prefill", prefill, {"input_ids": inputs["input_ids"]})
    return common.step(model, "decode", decode, {"next_input_ids": inputs["next_input_ids"], **cache})
