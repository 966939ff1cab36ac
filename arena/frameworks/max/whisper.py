"""Whisper in MAX: the architecture is `arena.functional.whisper` (transformers'
WhisperForConditionalGeneration; its docstring lists what it follows), traced into MAX graphs with this
package's layers, the mel input channels-last (NLC, the layout of MAX's convolution). One graph per
workload: encoder output and teacher-forced logits; for `latency`, a prefill graph (cross-attention
K/V of the encoded mel and the prefix's self-attention cache, run once, untimed, left on the device)
and the decode graph of the next token.
"""

from __future__ import annotations

import numpy as np

from arena.families.whisper import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.max import common
from arena.frameworks.max import layers as nn
from arena.functional import whisper

MEL = ["input_features"]  # channels-last on the way in


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.prepare(common.build_model(config, weights, ctx), {"inference": inference, "latency": latency}, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    def forward(p, mel, ids):
        return whisper.forward(nn, p, model.config, mel, ids)

    feeds = {k: inputs[k] for k in ("input_features", "decoder_input_ids")}
    return common.step(model, "inference", forward, feeds, channels_last=MEL)


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step at position decoder_len against the prefill's cross K/V and prefix cache."""
    config, prefix_len, layers = model.config, inputs["decoder_input_ids"].shape[1], model.config.decoder_layers

    def prefill(p, mel, ids):
        cross, past = whisper.prefill(nn, p, config, mel, ids)
        return common.flat_cache(cross, "cross") | common.flat_cache(past)

    def decode(p, token, *caches):
        cross, past = common.layer_cache(caches[: 2 * layers]), common.layer_cache(caches[2 * layers :])
        return {"logits": whisper.decode(nn, p, config, token, cross, prefix_len, past)[0]}

    feeds = {k: inputs[k] for k in ("input_features", "decoder_input_ids")}
    caches = common.call(model, "prefill", prefill, feeds, channels_last=MEL)
    return common.step(model, "decode", decode, {"next_decoder_input_ids": inputs["next_decoder_input_ids"], **caches})
