"""Whisper in tinygrad: the architecture is `arena.functional.whisper` (transformers'
WhisperForConditionalGeneration as pure functions; its docstring lists what it follows), called with
this package's layers on the official-named `tinygrad.Tensor`s. What is tinygrad's own: PyTorch's
layouts (the mel input NCL, K/V heads-first), `TinyJit` of every timed call through `forward_step`, the
prefix's caches computed and realised once before the step is captured, and `Tensor.gradient` of the
trainable weights (the sinusoid table is frozen at build).
"""

from __future__ import annotations

import numpy as np
from tinygrad import Tensor

from arena.families.whisper import ENCODER_POSITIONS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad import layers as nn
from arena.frameworks.tinygrad.common import Model, build_model, forward_step, to_device, training_step
from arena.functional import whisper


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=(ENCODER_POSITIONS,))


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    t = to_device(inputs, model.ctx)
    return forward_step(lambda mel, ids: whisper.forward(nn, model.params, model.config, mel, ids), model, t["input_features"], t["decoder_input_ids"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix. The encoder output's cross-attention K/V and the prefix's
    self-attention cache are computed once (untimed, realised); every timed call decodes the next token
    at position decoder_len against those same tensors (the step never writes into them)."""
    config, p, t = model.config, model.params, to_device(inputs, model.ctx)
    prefix_len = t["decoder_input_ids"].shape[1]
    cross, past = whisper.prefill(nn, p, config, t["input_features"], t["decoder_input_ids"])
    Tensor.realize(*(x for kv in cross + past for x in kv))

    def step(token: Tensor) -> dict[str, Tensor]:
        return {"logits": whisper.decode(nn, p, config, token, cross, prefix_len, past)[0]}

    return forward_step(step, model, t["next_decoder_input_ids"])


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`whisper.loss`, backward through decoder and encoder; the sinusoid table is frozen."""
    t = to_device(inputs, model.ctx)

    def loss(mel: Tensor, ids: Tensor, labels: Tensor) -> Tensor:
        return whisper.loss(nn, model.params, model.config, mel, ids, labels)

    return training_step(model, loss, t["input_features"], t["decoder_input_ids"], t["labels"])
