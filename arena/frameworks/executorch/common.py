"""What the ExecuTorch family files share: the cached conversion (torch.export -> XNNPACK-lowered .pte),
one loaded method per exported graph, and steps that execute a method on inputs prepared once.

The graphs are the ONNX path's wrapper modules around the reference modules (`Graph`, from
arena/frameworks/onnxruntime/export/): plain tensors in and out, KV caches built inside from stacked past
K/V inputs. Each family file says which graphs its program holds (`methods`); they are imported and
traced only when the conversion is not cached.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import json
import operator
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from executorch.runtime import Runtime

from arena.frameworks.contract import BuildContext, Conversion, Step
from arena.frameworks.conversion import cached_conversion, conversion_folder

CONVERTER_DISTRIBUTIONS = ("executorch", "torch", "torchao")
WRAPPERS = Path(__file__).parents[1] / "onnxruntime" / "export"  # the wrapper modules the programs are traced from
PROGRAM, METHODS = "model.pte", "methods.json"

# A family's graphs for its program: (config, weights, inputs by workload, threads) -> list of Graph.
Methods = Callable[[Any, dict[str, np.ndarray], dict[str, dict[str, np.ndarray]], int], list]


class Model:
    """One loaded ExecuTorch program; each method with its input and output names (in call order)."""

    def __init__(self, folder: Path, conversion: Conversion):
        self.conversion = conversion
        self.signatures = json.loads((folder / METHODS).read_text())
        self.program = Runtime.get().load_program(folder / PROGRAM)
        self.methods = {name: self.program.load_method(name) for name in self.signatures}
        # What ran outside XNNPACK, for the result's settings: {method: {edge operator: count}}.
        self.settings = {"not_delegated": {name: s["not_delegated"] for name, s in self.signatures.items()}}

    def arguments(self, method: str, feeds: Mapping[str, np.ndarray | torch.Tensor]) -> list[torch.Tensor]:
        """The method's positional arguments (a torch tensor, such as a prefill's output, passes as a view)."""
        return [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.signatures[method]["inputs"]]

    def method_for(self, graph: str, feeds: Mapping[str, np.ndarray | torch.Tensor]) -> str:
        """The method that runs `graph` on these feeds: a graph with a symbolic batch is one method per batch size."""
        return graph if graph in self.methods else batched_method(graph, batch_size(feeds))

    def call(self, graph: str, feeds: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
        """Execute a graph's method once (untimed set-up, such as filling a KV cache), outputs by name."""
        method = self.method_for(graph, feeds)
        out = self.methods[method].execute(self.arguments(method, feeds))
        return dict(zip(self.signatures[method]["outputs"], out, strict=True))

    def step(self, graph: str, feeds: Mapping[str, np.ndarray | torch.Tensor], returns: tuple[str, ...]) -> Step:
        """A timed step: the argument tensors are made once, here; `returns` are the outputs compared
        (a decode method's present K/V are computed and copied out every call, but not compared).
        `execute` is synchronous and copies the outputs out of the method's planned memory."""
        method = self.method_for(graph, feeds)
        executable, arguments = self.methods[method], self.arguments(method, feeds)
        names = self.signatures[method]["outputs"]

        def fetch(out: list[torch.Tensor]) -> dict[str, np.ndarray]:
            return {n: v.numpy().astype(np.float32) for n, v in zip(names, out, strict=True) if n in returns}

        return Step(run=lambda: executable.execute(arguments), fetch=fetch)


def exported_graphs(family: str) -> Methods:
    """The family's graphs as the ONNX path exports them, one method each (imported only when converting:
    the wrappers import torch and the family's reference library)."""

    def graphs(config: Any, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list:
        return importlib.import_module(f"arena.frameworks.onnxruntime.export.{family}").graphs(config, weights, inputs, threads)

    return graphs


def batched_method(graph: str, batch: int) -> str:
    return f"{graph}_batch{batch}"


def batch_size(feeds: Mapping[str, np.ndarray | torch.Tensor]) -> int:
    """The batch of a symbolic-batch graph's feeds: dim 0 of the first (every input's dim 0, except the
    VLA step's stacked prefix K/V, which lead with the layer axis: its feeds put the noise first)."""
    return len(next(iter(feeds.values())))


def per_batch(graph, feeds_by_workload: list[Mapping[str, np.ndarray]]) -> list:
    """A graph with a symbolic batch as one static method per batch size its workloads feed it
    (XNNPACK plans memory for static shapes; two workloads at one batch share a method)."""
    from arena.frameworks.onnxruntime.export import Graph

    batches = {batch_size(feeds): feeds for feeds in feeds_by_workload}
    return [Graph(batched_method(graph.name, batch), graph.module, feeds, graph.outputs) for batch, feeds in batches.items()]


def converter_versions() -> dict[str, str]:
    return {d: importlib.metadata.version(d) for d in CONVERTER_DISTRIBUTIONS}


def build(methods: Methods, config: Any, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> Model:
    """Convert the family's graphs into one program (or reuse a cached conversion of the same spec,
    weights, versions and code), then load it and every method."""
    versions = converter_versions()
    # The converting code is this package and the wrappers it traces: editing either converts again.
    tool_id = "executorch-" + "-".join(f"{d}{v}" for d, v in versions.items()) + f"-wrappers{code_digest(WRAPPERS)}"
    folder = conversion_folder(ctx.convert_dir, tool_id, Path(__file__).parent)

    def make(scratch: Path) -> None:
        graphs = methods(config, weights, inputs, ctx.threads)
        # The reference module holds its own copy of the weights now, and the cell drops its arrays right
        # after build (arena/run/child.py): release them before lowering. Measured on the full SD UNet: its
        # two methods take 17.4 GiB to lower, and with the 3.4 GB of arrays beside them the cell was killed
        # for memory on a 24 GiB machine.
        weights.clear()
        convert(graphs, scratch)

    tool = "torch.export + to_edge_transform_and_lower(XnnpackPartitioner) with " + ", ".join(f"{d} {v}" for d, v in versions.items())
    return Model(folder, cached_conversion(folder, tool, make))


def code_digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(f.read_bytes() for f in sorted(folder.rglob("*.py")))).hexdigest()[:12]


def convert(graphs: list, folder: Path) -> None:
    """Every graph exported as one method of `<folder>/model.pte`, lowered to XNNPACK; beside it each
    method's input and output names and the operators left to ExecuTorch's own CPU kernels."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported, signatures = {}, {}
    for graph in graphs:
        names = list(inspect.signature(graph.module.forward).parameters)  # positional, the method's order
        args = tuple(torch.from_numpy(np.ascontiguousarray(graph.inputs[n])) for n in names)
        with torch.no_grad():
            exported[graph.name] = torch.export.export(graph.module.eval(), args)
        signatures[graph.name] = {"inputs": names, "outputs": list(graph.outputs)}
    lowered = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    for name, signature in signatures.items():
        signature["not_delegated"] = not_delegated(lowered.exported_program(name).graph)
    with open(folder / PROGRAM, "wb") as file:
        lowered.to_executorch().write_to_file(file)  # streamed: no second in-memory copy of the weights
    (folder / METHODS).write_text(json.dumps(signatures, indent=1))


def not_delegated(graph: torch.fx.Graph) -> dict[str, int]:
    """Operators the partitioner left in the method's own graph (each run by an ExecuTorch CPU kernel,
    outside XNNPACK), with their counts; the delegate calls and the reads of their outputs excluded."""
    delegate = torch.ops.higher_order.executorch_call_delegate
    calls = (n.target for n in graph.nodes if n.op == "call_function")
    ops = Counter(target.name() for target in calls if target is not delegate and target is not operator.getitem)
    return dict(sorted(ops.items()))
