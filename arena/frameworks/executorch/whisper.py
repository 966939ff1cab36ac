"""Whisper in ExecuTorch: transformers' WhisperForConditionalGeneration (the reference module), exported as
the ONNX path's graphs (arena/frameworks/onnxruntime/export/whisper.py): encoder output and all-position
decoder logits, a prefill method returning the prefix's self-attention K/V and the cross-attention K/V,
and a decode method taking both and returning logits plus the grown self-attention K/V."""

from __future__ import annotations

import numpy as np

from arena.families.whisper import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.executorch import common


def methods(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list:
    from arena.frameworks.onnxruntime.export.whisper import graphs  # torch + transformers: only when converting

    return graphs(config, weights, inputs, threads)


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(methods, config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    return model.step("inference", inputs, returns=("encoder_hidden_states", "logits"))


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix: encoder, cross K/V and the prefix's cache come from the
    prefill method (untimed); every timed call feeds the same prefix-length cache."""
    cache = model.call("prefill", {k: inputs[k] for k in ("input_features", "decoder_input_ids")})
    feeds = {"decoder_input_ids": inputs["next_decoder_input_ids"], "past_keys": cache["present_keys"], "past_values": cache["present_values"],
             "cross_keys": cache["cross_keys"], "cross_values": cache["cross_values"]}
    return model.step("decode", feeds, returns=("logits",))
