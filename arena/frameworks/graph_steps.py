"""The workload steps of the exported deployment graphs, written once for every runtime that runs them
(ONNX Runtime, OpenVINO, ExecuTorch).

The graphs are arena/frameworks/onnxruntime/export/'s: plain tensors in and out, one graph per workload
(or one with a symbolic batch for two), KV-cache decode with past K/V in and present K/V out. Which graph
serves a workload, what feeds it and which of its outputs are compared is a property of those graphs,
not of the runtime, so it lives here; a runtime's model only says how it runs a graph (`GraphRunner`).
No framework is imported here: a cell loads only its own runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from arena.frameworks.contract import Step

# A graph with a symbolic batch that serves inference and the batch-1 latency workload alike (ResNet, the
# UNet); a runtime that needs static shapes compiles or exports it once per batch size.
BATCHED = "model"


class GraphRunner(Protocol):
    def call(self, graph: str, feeds: Mapping[str, Any]) -> Mapping[str, Any]:
        """Run a graph once, untimed (filling a KV cache); its outputs by name, kept on the runtime's side."""

    def step(self, graph: str, feeds: Mapping[str, Any], returns: tuple[str, ...]) -> Step:
        """A timed step of a graph on these feeds (prepared once); `returns` are the outputs compared."""


def resnet_classify(model: GraphRunner, inputs: dict[str, Any]) -> Step:
    """ResNet inference and latency: the one classifier graph at the workload's batch."""
    return model.step(BATCHED, inputs, returns=("logits",))


def unet_feeds(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The UNet graph's inputs: the family's `sample` is named `latents` (ONNX names are unique, and the
    output is `sample`)."""
    return {"latents": inputs["sample"], "timestep": inputs["timestep"], "encoder_hidden_states": inputs["encoder_hidden_states"]}


def unet_denoise(model: GraphRunner, inputs: dict[str, Any]) -> Step:
    """UNet inference and latency: the one denoising graph at the workload's batch."""
    return model.step(BATCHED, unet_feeds(inputs), returns=("sample",))


def llama_inference(model: GraphRunner, inputs: dict[str, Any]) -> Step:
    return model.step("inference", inputs, returns=("logits",))


def llama_latency(model: GraphRunner, inputs: dict[str, Any]) -> Step:
    """One decode step after the prompt: the prefill graph fills the cache (untimed); every timed call
    feeds the same prompt-length cache and produces logits plus the grown cache."""
    cache = model.call("prefill", {"input_ids": inputs["input_ids"]})
    feeds = {"input_ids": inputs["next_input_ids"], "past_keys": cache["present_keys"], "past_values": cache["present_values"]}
    return model.step("decode", feeds, returns=("logits",))


def whisper_inference(model: GraphRunner, inputs: dict[str, Any]) -> Step:
    return model.step("inference", inputs, returns=("encoder_hidden_states", "logits"))


def whisper_latency(model: GraphRunner, inputs: dict[str, Any]) -> Step:
    """One decoder step after the prefix: encoder, cross K/V and the prefix's cache come from the
    prefill graph (untimed); every timed call feeds the same prefix-length cache."""
    cache = model.call("prefill", {k: inputs[k] for k in ("input_features", "decoder_input_ids")})
    feeds = {"decoder_input_ids": inputs["next_decoder_input_ids"], "past_keys": cache["present_keys"], "past_values": cache["present_values"],
             "cross_keys": cache["cross_keys"], "cross_values": cache["cross_values"]}
    return model.step("decode", feeds, returns=("logits",))


def vla_expert_inference(model: GraphRunner, inputs: dict[str, Any]) -> Step:
    """The full sampling loop; `num_steps` is part of the graph (unrolled at export)."""
    return model.step("inference", {k: a for k, a in inputs.items() if k != "num_steps"}, returns=("actions",))


def vla_expert_latency(model: GraphRunner, inputs: dict[str, Any]) -> Step:
    """One denoising step at t = 1."""
    return model.step("latency", inputs, returns=("velocity",))
