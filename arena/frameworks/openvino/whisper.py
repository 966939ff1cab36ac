"""Whisper in OpenVINO: the exported transformers WhisperForConditionalGeneration
(onnxruntime/export/whisper.py) as IR."""

from __future__ import annotations

import numpy as np

from arena.families.whisper import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.openvino import common


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build("whisper", config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("inference", inputs, returns=("encoder_hidden_states", "logits"))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix: encoder, cross K/V and the prefix's cache come from the
    prefill graph (untimed); every timed call feeds the same prefix-length cache."""
    cache = model.call("prefill", {k: inputs[k] for k in ("input_features", "decoder_input_ids")})
    feeds = {"decoder_input_ids": inputs["next_decoder_input_ids"], "past_keys": cache["present_keys"], "past_values": cache["present_values"],
             "cross_keys": cache["cross_keys"], "cross_values": cache["cross_values"]}
    return model.step("decode", feeds, returns=("logits",))
