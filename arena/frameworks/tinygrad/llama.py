"""LLaMA in tinygrad. The architecture is `arena.functional.llama` (transformers' LlamaForCausalLM,
written once for JAX, TensorFlow and tinygrad; its deviations are listed there); this file is the
tinygrad wiring: weights on the cell's device, TinyJit per workload (the decoder layers are a Python
loop, so it captures the kernels of the whole model as one replayable list), and a prefilled, realised
cache for `latency`. K/V stay heads-first, each head broadcast over its group of query heads.
"""

from __future__ import annotations

import numpy as np
from tinygrad import Tensor

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad import layers as nn
from arena.frameworks.tinygrad.common import Model, build_model, forward_step, to_device, training_step
from arena.functional import llama


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    ids = to_device(inputs, model.ctx)["input_ids"]
    return forward_step(lambda ids: {"logits": llama.forward(nn, model.params, model.config, ids)[0]}, model, ids)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt. The prompt's cache is filled once (untimed, realised); every
    timed call decodes the next token against that same cache (the step never writes into it)."""
    tensors = to_device(inputs, model.ctx)
    prompt_len = tensors["input_ids"].shape[1]
    _, cache = llama.forward(nn, model.params, model.config, tensors["input_ids"])
    Tensor.realize(*(t for kv in cache for t in kv))

    def decode(token: Tensor) -> dict[str, Tensor]:
        return {"logits": llama.forward(nn, model.params, model.config, token, prompt_len, cache)[0]}

    return forward_step(decode, model, tensors["next_input_ids"])


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`llama.loss` (causal-LM cross-entropy), differentiated by `training_step`."""
    ids = to_device(inputs, model.ctx)["input_ids"]
    return training_step(model, lambda ids: llama.loss(nn, model.params, model.config, ids), ids)
