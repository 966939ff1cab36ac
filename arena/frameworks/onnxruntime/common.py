"""What the ONNX Runtime family files share: the cached export, one session per graph, and steps that
feed device-resident inputs and return when the session's run has finished."""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from arena.frameworks.contract import BuildContext, Conversion, Step
from arena.frameworks.conversion import cached_conversion, conversion_folder
from arena.frameworks.onnxruntime import providers

EXPORTER_DISTRIBUTIONS = ("torch", "onnxscript", "onnx")


def exporter_versions() -> dict[str, str]:
    return {d: importlib.metadata.version(d) for d in EXPORTER_DISTRIBUTIONS}


class Model:
    """One session per exported graph ("inference", "prefill", "decode", ...), all on the cell's provider."""

    def __init__(self, sessions: dict[str, ort.InferenceSession], ctx: BuildContext, conversion: Conversion):
        self.sessions, self.ctx, self.conversion = sessions, ctx, conversion
        kind = ctx.device.split(":")[0]
        # Inputs live where the provider computes: CUDA memory for CUDA, host memory otherwise.
        self.memory = ("cuda", int(ctx.device.split(":")[1]) if ":" in ctx.device else 0) if kind == "cuda" else ("cpu", 0)

    def on_device(self, array: np.ndarray | ort.OrtValue) -> ort.OrtValue:
        if isinstance(array, ort.OrtValue):
            return array
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), *self.memory)

    def call(self, graph: str, feeds: Mapping[str, Any]) -> dict[str, ort.OrtValue]:
        """Run a graph once (untimed set-up, such as filling a KV cache); outputs stay on the device."""
        session = self.sessions[graph]
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run_with_ort_values(names, {n: self.on_device(a) for n, a in feeds.items()}), strict=True))

    def step(self, graph: str, feeds: Mapping[str, Any], returns: tuple[str, ...]) -> Step:
        """A timed step: inputs are copied to the device once, here; `returns` are the outputs compared
        (a decode graph's present K/V are computed and produced every call, but not compared)."""
        session = self.sessions[graph]
        names = [o.name for o in session.get_outputs()]
        values = {n: self.on_device(a) for n, a in feeds.items()}

        def run() -> list[ort.OrtValue]:
            return session.run_with_ort_values(names, values)  # synchronous: the provider has finished

        def fetch(out: list[ort.OrtValue]) -> dict[str, np.ndarray]:
            return {n: v.numpy().astype(np.float32) for n, v in zip(names, out, strict=True) if n in returns}

        return Step(run=run, fetch=fetch)


def session(path: Path, ctx: BuildContext) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads, options.inter_op_num_threads = ctx.threads, 1
    chosen = providers(ctx)
    created = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    # ORT falls back to the CPU provider with only a warning when an accelerator's provider fails to
    # load; a CUDA cell that ran on the CPU would be a lie.
    if created.get_providers()[0] != chosen[0][0]:
        raise RuntimeError(f"{path.name}: asked for {chosen[0][0]}, the session runs on {created.get_providers()}")
    return created


def build(family: str, config: Any, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> Model:
    """Export the family's graphs (or reuse a cached export of the same spec, weights and exporter
    versions), then open one session per graph."""
    versions = exporter_versions()
    tool_id = "onnx-" + "-".join(f"{d}{v}" for d, v in versions.items())
    folder = conversion_folder(ctx.convert_dir, tool_id, Path(__file__).parent / "export")

    def make(scratch: Path) -> None:
        export = importlib.import_module("arena.frameworks.onnxruntime.export")
        family_graphs = importlib.import_module(f"arena.frameworks.onnxruntime.export.{family}")
        export.export(family_graphs.graphs(config, weights, inputs, ctx.threads), scratch)

    tool = "torch.onnx.export(dynamo=True, opset 20) with " + ", ".join(f"{d} {v}" for d, v in versions.items())
    conversion = cached_conversion(folder, tool, make)
    sessions = {path.stem: session(path, ctx) for path in sorted(folder.glob("*.onnx"))}
    return Model(sessions, ctx, conversion)
