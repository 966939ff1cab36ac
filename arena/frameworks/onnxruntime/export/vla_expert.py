"""SmolVLA expert graphs: the whole Euler sampling loop (inference; `num_steps` is unrolled) and one
denoising step at t = 1 (latency). The attention mask and positions depend only on shapes and are built
inside the graphs, as lerobot builds them."""

from __future__ import annotations

import numpy as np
import torch

from arena.families.vla_expert import Config
from arena.frameworks.onnxruntime.export import Graph, reference_module
from arena.frameworks.torch.vla_expert import suffix_mask_and_positions


class Sample(torch.nn.Module):
    def __init__(self, flow: torch.nn.Module, num_steps: int):
        super().__init__()
        self.flow, self.num_steps = flow, num_steps

    def prefix(self, prefix_keys: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return suffix_mask_and_positions(noise.shape[0], prefix_keys.shape[2], noise.shape[1], noise.device)

    def forward(self, prefix_keys: torch.Tensor, prefix_values: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.flow.sample_actions(prefix_keys, prefix_values, *self.prefix(prefix_keys, noise), noise, self.num_steps)


class DenoiseStep(Sample):
    def forward(self, prefix_keys: torch.Tensor, prefix_values: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        time = torch.ones(noise.shape[0], dtype=torch.float32)
        return self.flow.denoise_step(prefix_keys, prefix_values, *self.prefix(prefix_keys, noise), noise, time)


def graphs(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list[Graph]:
    flow = reference_module("vla_expert", config, weights, threads).module.model
    sample = {k: a for k, a in inputs["inference"].items() if k != "num_steps"}
    num_steps = int(inputs["inference"]["num_steps"])
    return [
        Graph("inference", Sample(flow, num_steps), sample, ("actions",)),
        Graph("latency", DenoiseStep(flow, num_steps), inputs["latency"], ("velocity",)),
    ]
