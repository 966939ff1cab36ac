"""Whisper graphs: encoder output + all-position decoder logits (inference); for the decoder's KV-cache
step, a prefill graph that returns the prefix's self-attention K/V and the cross-attention K/V, and a
decode graph that takes both as inputs and returns logits plus the grown self-attention K/V."""

from __future__ import annotations

import numpy as np
import torch
from transformers import EncoderDecoderCache

from arena.families.whisper import Config
from arena.frameworks.onnxruntime.export import Graph, reference_module
from arena.frameworks.onnxruntime.export.llama import stacked, unstacked


class Forward(torch.nn.Module):
    def __init__(self, whisper: torch.nn.Module):
        super().__init__()
        self.whisper = whisper

    def forward(self, input_features: torch.Tensor, decoder_input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.whisper(input_features=input_features, decoder_input_ids=decoder_input_ids, use_cache=False)
        return out.encoder_last_hidden_state, out.logits


class Prefill(Forward):
    def forward(self, input_features: torch.Tensor, decoder_input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cache = self.whisper(input_features=input_features, decoder_input_ids=decoder_input_ids, use_cache=True).cache
        return (*stacked(cache.self_attention_cache), *stacked(cache.cross_attention_cache))


class Decode(Forward):
    """One decoder token after a fixed-length prefix. The cross-attention cache is full, so the decoder
    reuses its K/V (`is_updated`) and never reads the encoder states: a zero placeholder stands in for
    them (built inside the graph, not an input), as the encoder is not run again in a decode step."""

    def forward(self, decoder_input_ids, past_keys, past_values, cross_keys, cross_values) -> tuple[torch.Tensor, ...]:
        cache = EncoderDecoderCache(unstacked(past_keys, past_values), unstacked(cross_keys, cross_values))
        batch = decoder_input_ids.shape[0]
        placeholder = torch.zeros(batch, 1, self.whisper.config.d_model, dtype=cross_keys.dtype)
        position = torch.full_like(decoder_input_ids, past_keys.shape[3])
        out = self.whisper(encoder_outputs=(placeholder,), decoder_input_ids=decoder_input_ids, decoder_position_ids=position, cache=cache, use_cache=True)
        return (out.logits, *stacked(out.cache.self_attention_cache))


def graphs(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list[Graph]:
    whisper = reference_module("whisper", config, weights, threads).module
    prefix = {k: inputs["latency"][k] for k in ("input_features", "decoder_input_ids")}
    with torch.no_grad():
        keys, values, cross_keys, cross_values = (t.numpy() for t in Prefill(whisper)(**{k: torch.from_numpy(a) for k, a in prefix.items()}))
    step = {"decoder_input_ids": inputs["latency"]["next_decoder_input_ids"], "past_keys": keys, "past_values": values,
            "cross_keys": cross_keys, "cross_values": cross_values}
    return [
        Graph("inference", Forward(whisper), inputs["inference"], ("encoder_hidden_states", "logits")),
        Graph("prefill", Prefill(whisper), prefix, ("present_keys", "present_values", "cross_keys", "cross_values")),
        Graph("decode", Decode(whisper), step, ("logits", "present_keys", "present_values")),
    ]
