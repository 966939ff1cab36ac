"""The torch side of the ONNX path: graphs traced from the PyTorch reference modules (the very modules
the reference runs, built by `arena.frameworks.torch`) and written with torch.onnx's dynamo exporter.

Each family file here returns its `Graph`s: a small wrapper module whose forward takes and returns
plain tensors (no cache objects or ModelOutputs cross the graph boundary; KV caches are built inside
from stacked past K/V inputs), the example inputs that fix the static shapes, and the output names.
Only this package imports torch, and only when a conversion is not cached.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arena.frameworks.contract import BuildContext

OPSET = 20  # torch.onnx's dynamo default in torch 2.9+, pinned so a torch upgrade cannot change it silently


@dataclass
class Graph:
    name: str  # the file stem, and how the run side asks for the session
    module: torch.nn.Module  # forward(**inputs) -> a tensor or a tuple of tensors, in `outputs` order
    inputs: dict[str, np.ndarray]  # example inputs: their names are the graph's input names
    outputs: tuple[str, ...]
    dynamic_batch: bool = False  # dim 0 of every input is symbolic (one graph for several batch sizes)


def reference_module(family: str, config: Any, weights: dict[str, np.ndarray], threads: int):
    """The PyTorch reference model (fp32, CPU, eval) that the graphs are traced from."""
    torch.set_num_threads(threads)
    impl = importlib.import_module(f"arena.frameworks.torch.{family}")
    return impl.build(config, weights, BuildContext(device="cpu", dtype="fp32", threads=threads))


def export(graphs: list[Graph], folder: Path) -> None:
    """Each graph to `<folder>/<name>.onnx` (+ `.onnx.data`: weights go to external data, which also
    lifts protobuf's 2 GB limit for the SD UNet)."""
    for graph in graphs:
        kwargs = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in graph.inputs.items()}
        dynamic = None
        if graph.dynamic_batch:
            batch = torch.export.Dim("batch", min=1, max=4096)
            dynamic = {name: {0: batch} for name in kwargs}
        with torch.no_grad():
            torch.onnx.export(
                graph.module.eval(), (), str(folder / f"{graph.name}.onnx"), kwargs=kwargs, dynamo=True, opset_version=OPSET,
                output_names=list(graph.outputs), dynamic_shapes=dynamic, external_data=True, optimize=True,
            )
