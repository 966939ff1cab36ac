"""Whisper in JAX: the architecture is `arena.functional.whisper` (transformers'
WhisperForConditionalGeneration as pure functions; its docstring lists what it follows), called with
this package's layers. What is JAX's own: the mel input channels-last (NLC, XLA's convolution layout),
`jax.jit` of every timed call (the layers' Python loops unroll into one XLA program), the prefix's
caches computed once by a jitted prefill, and `jax.value_and_grad` of the loss over the trainable
parameters (the sinusoid table is frozen at build).
"""

from __future__ import annotations

import jax
import numpy as np

from arena.families.whisper import ENCODER_POSITIONS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.jax import layers as nn
from arena.frameworks.jax.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.functional import whisper
from arena.functional.whisper import KV


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=(ENCODER_POSITIONS,))


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    tensors = to_device(inputs, model.dtype, channels_last=["input_features"])
    return forward_step(
        lambda p, mel, ids: whisper.forward(nn, p, model.config, mel, ids),
        model.params, tensors["input_features"], tensors["decoder_input_ids"],
    )  # fmt: skip


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix. The encoder output's cross-attention K/V and the prefix's
    self-attention cache are computed once (untimed); every timed call decodes the next token at
    position decoder_len against those same arrays (immutable, so nothing to crop)."""
    config, tensors = model.config, to_device(inputs, model.dtype, channels_last=["input_features"])
    prefix_len = tensors["decoder_input_ids"].shape[1]
    prefill = jax.jit(lambda p, mel, ids: whisper.prefill(nn, p, config, mel, ids))
    cross, past = jax.block_until_ready(prefill(model.params, tensors["input_features"], tensors["decoder_input_ids"]))

    def step(p: Params, token: jax.Array, cross: list[KV], past: list[KV]) -> dict[str, jax.Array]:
        return {"logits": whisper.decode(nn, p, config, token, cross, prefix_len, past)[0]}

    return forward_step(step, model.params, tensors["next_decoder_input_ids"], cross, past)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`whisper.loss`, backward through decoder and encoder; the sinusoid table is frozen."""
    tensors = to_device(inputs, model.dtype, channels_last=["input_features"])

    def loss(p: Params, mel: jax.Array, ids: jax.Array, labels: jax.Array) -> jax.Array:
        return whisper.loss(nn, p, model.config, mel, ids, labels)

    return training_step(model, loss, tensors["input_features"], tensors["decoder_input_ids"], tensors["labels"])
