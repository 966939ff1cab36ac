"""ResNet graph: images -> logits (eval-mode BatchNorm, which ORT folds into the convolutions), one
graph with a symbolic batch for inference and the batch-1 latency workload."""

from __future__ import annotations

import numpy as np
import torch

from arena.families.resnet import Config
from arena.frameworks.graph_steps import BATCHED
from arena.frameworks.onnxruntime.export import Graph, reference_module


class Classify(torch.nn.Module):
    """torchvision's forward(x) with the input named as the family names it (the graph's input name)."""

    def __init__(self, resnet: torch.nn.Module):
        super().__init__()
        self.resnet = resnet

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.resnet(images)


def graphs(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list[Graph]:
    resnet = reference_module("resnet", config, weights, threads).module
    return [Graph(BATCHED, Classify(resnet), inputs["inference"], ("logits",), dynamic_batch=True)]
