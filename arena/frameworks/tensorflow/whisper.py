"""Whisper in TensorFlow: the architecture is `arena.functional.whisper` (transformers'
WhisperForConditionalGeneration as pure functions; its docstring lists what it follows), called with
this package's layers on the official-named `tf.Variable`s. What is TensorFlow's own: the mel input
channels-last (NLC), `tf.function` of every timed call (tracing unrolls the layers' Python loops), the
prefix's caches computed once by a traced prefill on the cell's device, and `tf.GradientTape` over the
trainable variables (the sinusoid table is a non-trainable variable).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from arena.families.whisper import ENCODER_POSITIONS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow import layers as nn
from arena.frameworks.tensorflow.common import Model, Params, build_model, device, forward_step, function, to_device, training_step
from arena.functional import whisper
from arena.functional.whisper import KV


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=(ENCODER_POSITIONS,))


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    tensors = to_device(inputs, model.ctx, channels_last=["input_features"])
    return forward_step(
        model, lambda p, mel, ids: whisper.forward(nn, p, model.config, mel, ids),
        tensors["input_features"], tensors["decoder_input_ids"],
    )  # fmt: skip


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix. The encoder output's cross-attention K/V and the prefix's
    self-attention cache are computed once (untimed); every timed call decodes the next token at
    position decoder_len against those same tensors (immutable: nothing to crop)."""
    config, p, tensors = model.config, model.params, to_device(inputs, model.ctx, channels_last=["input_features"])
    prefix_len = tensors["decoder_input_ids"].shape[1]
    prefill = function(model.ctx, lambda mel, ids: whisper.prefill(nn, p, config, mel, ids))
    with tf.device(device(model.ctx)):
        cross, past = prefill(tensors["input_features"], tensors["decoder_input_ids"])

    def step(p: Params, token: tf.Tensor, cross: list[KV], past: list[KV]) -> dict[str, tf.Tensor]:
        return {"logits": whisper.decode(nn, p, config, token, cross, prefix_len, past)[0]}

    return forward_step(model, step, tensors["next_decoder_input_ids"], cross, past)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`whisper.loss`, backward through decoder and encoder; the sinusoid table is frozen (a
    non-trainable variable)."""
    tensors = to_device(inputs, model.ctx, channels_last=["input_features"])

    def loss(p: Params, mel: tf.Tensor, ids: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return whisper.loss(nn, p, model.config, mel, ids, labels)

    return training_step(model, loss, tensors["input_features"], tensors["decoder_input_ids"], tensors["labels"])
