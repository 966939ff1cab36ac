"""LLaMA graphs: all-position logits (inference), and for the KV-cache decode step a prefill graph that
returns the prompt's K/V and a decode graph with past K/V as inputs and present K/V as outputs."""

from __future__ import annotations

import numpy as np
import torch
from transformers import DynamicCache

from arena.families.llama import Config
from arena.frameworks.onnxruntime.export import Graph, reference_module


class Logits(torch.nn.Module):
    def __init__(self, lm: torch.nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits


def stacked(cache: DynamicCache) -> tuple[torch.Tensor, torch.Tensor]:
    """A cache as two tensors [layers, batch, kv_heads, length, head_dim]."""
    return torch.stack([layer.keys for layer in cache.layers]), torch.stack([layer.values for layer in cache.layers])


def unstacked(keys: torch.Tensor, values: torch.Tensor) -> DynamicCache:
    """Two stacked tensors as a cache (built inside the graph, so no cache object crosses its boundary)."""
    return DynamicCache(ddp_cache_data=list(zip(keys.unbind(0), values.unbind(0), strict=True)))


class Prefill(Logits):
    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return stacked(self.lm(input_ids=input_ids, use_cache=True).cache)


class Decode(Logits):
    """One token after a cache of fixed length (the graph is static in the prompt length)."""

    def forward(self, input_ids: torch.Tensor, past_keys: torch.Tensor, past_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        position = torch.full_like(input_ids, past_keys.shape[3])
        out = self.lm(input_ids=input_ids, position_ids=position, cache=unstacked(past_keys, past_values), use_cache=True)
        return (out.logits, *stacked(out.cache))


def graphs(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list[Graph]:
    lm = reference_module("llama", config, weights, threads).module
    prompt, step = inputs["latency"]["input_ids"], inputs["latency"]["next_input_ids"]
    with torch.no_grad():
        keys, values = Prefill(lm)(torch.from_numpy(prompt))
    return [
        Graph("inference", Logits(lm), inputs["inference"], ("logits",)),
        Graph("prefill", Prefill(lm), {"input_ids": prompt}, ("present_keys", "present_values")),
        Graph("decode", Decode(lm), {"input_ids": step, "past_keys": keys.numpy(), "past_values": values.numpy()},
              ("logits", "present_keys", "present_values")),
    ]
