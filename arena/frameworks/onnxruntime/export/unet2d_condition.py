"""UNet graph: (latents, timestep [batch], text context) -> predicted noise; one graph with a symbolic
batch for inference and the batch-1 latency workload. The timestep is an input tensor, never a
constant folded into the graph. The latents input is named `latents` because ONNX names must be unique
and the output is the family's `sample`."""

from __future__ import annotations

import numpy as np
import torch

from arena.families.unet2d_condition import Config
from arena.frameworks.graph_steps import BATCHED, unet_feeds
from arena.frameworks.onnxruntime.export import Graph, reference_module


class Denoise(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        return self.unet(latents, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


def graphs(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list[Graph]:
    unet = reference_module("unet2d_condition", config, weights, threads).module
    return [Graph(BATCHED, Denoise(unet), unet_feeds(inputs["inference"]), ("sample",), dynamic_batch=True)]
