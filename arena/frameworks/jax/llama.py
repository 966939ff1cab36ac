"""LLaMA in JAX. The architecture is `arena.functional.llama` (transformers' LlamaForCausalLM, written
once for JAX, TensorFlow and tinygrad; its deviations are listed there); this file is the JAX wiring:
parameters on the device, one jitted program per workload (jit unrolls the decoder layers, so XLA
compiles the whole model once; the compile time is in `prepare`), and a prefilled cache for `latency`.
Attention is jax.nn.dot_product_attention, which takes grouped K/V heads as they are.
"""

from __future__ import annotations

import jax
import numpy as np

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.jax import layers as nn
from arena.frameworks.jax.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.functional import llama


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    ids = to_device(inputs, model.dtype)["input_ids"]
    return forward_step(lambda p, ids: {"logits": llama.forward(nn, p, model.config, ids)[0]}, model.params, ids)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt. The prompt's cache is filled once (untimed); every timed call
    decodes the next token against that same cache (JAX arrays are immutable, so nothing to crop)."""
    tensors = to_device(inputs, model.dtype)
    prompt_len = tensors["input_ids"].shape[1]
    _, cache = jax.jit(lambda p, ids: llama.forward(nn, p, model.config, ids))(model.params, tensors["input_ids"])
    jax.block_until_ready(cache)

    def decode(p: Params, cache: llama.KVCache, token: jax.Array) -> dict[str, jax.Array]:
        return {"logits": llama.forward(nn, p, model.config, token, prompt_len, cache)[0]}

    return forward_step(decode, model.params, cache, tensors["next_input_ids"])


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`llama.loss` (causal-LM cross-entropy), differentiated by `training_step`."""
    ids = to_device(inputs, model.dtype)["input_ids"]
    return training_step(model, lambda p, ids: llama.loss(nn, p, model.config, ids), ids)
