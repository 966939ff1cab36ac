"""LLaMA in TensorFlow. The architecture is `arena.functional.llama` (transformers' LlamaForCausalLM,
written once for JAX, TensorFlow and tinygrad; its deviations are listed there); this file is the
TensorFlow wiring: variables on the device, one tf.function per workload (tracing unrolls the decoder
layers into one graph; XLA compiles it in the xla variant), and a prefilled cache for `latency`, whose
decode position is a Python int, so static in the graph.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow import layers as nn
from arena.frameworks.tensorflow.common import Model, Params, build_model, device, forward_step, function, to_device, training_step
from arena.functional import llama


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    ids = to_device(inputs, model.ctx)["input_ids"]
    return forward_step(model, lambda p, ids: {"logits": llama.forward(nn, p, model.config, ids)[0]}, ids)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt. The prompt's cache is filled once (untimed); every timed call
    decodes the next token against that same cache (tensors are immutable: nothing to crop)."""
    tensors = to_device(inputs, model.ctx)
    prompt_len = tensors["input_ids"].shape[1]
    with tf.device(device(model.ctx)):
        _, cache = function(model.ctx, lambda ids: llama.forward(nn, model.params, model.config, ids))(tensors["input_ids"])

    def decode(p: Params, cache: llama.KVCache, token: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": llama.forward(nn, p, model.config, token, prompt_len, cache)[0]}

    return forward_step(model, decode, cache, tensors["next_input_ids"])


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`llama.loss` (causal-LM cross-entropy), differentiated by `training_step`."""
    ids = to_device(inputs, model.ctx)["input_ids"]
    return training_step(model, lambda p, ids: llama.loss(nn, p, model.config, ids), ids)
