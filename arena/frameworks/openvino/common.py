"""What the OpenVINO family files share: the cached IR, one compiled model per graph at static shapes,
and steps whose inputs are bound to the infer request once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.openvino import PRECISIONS, compile_config, device_name
from arena.frameworks.openvino.convert import ir
from arena.results.schema import Conversion


def shapes(feeds: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(np.shape(a)) for name, a in feeds.items()}


class Model:
    """The family's IR graphs ("inference", "prefill", "decode", "model", ...), each compiled for the
    cell's device at static shapes. A graph with a symbolic batch holds one compiled model at a time:
    feeds of another batch size compile it anew and let the old one go."""

    def __init__(self, folder: Path, ctx: BuildContext, conversion: Conversion):
        self.core, self.ctx, self.conversion = ov.Core(), ctx, conversion
        self.files = {path.stem: path for path in sorted(folder.glob("*.xml"))}
        self.compiled: dict[str, ov.CompiledModel] = {}

    def compiled_for(self, graph: str, feeds: Mapping[str, np.ndarray] | None = None) -> ov.CompiledModel:
        """The graph compiled for these feeds' shapes (None: the graph's own, which must be static)."""
        wanted = shapes(feeds) if feeds is not None else None
        compiled = self.compiled.get(graph)
        if compiled and (wanted is None or wanted == {p.get_any_name(): tuple(p.get_shape()) for p in compiled.inputs}):
            return compiled
        self.compiled.pop(graph, None)
        model = self.core.read_model(self.files[graph])
        if model.is_dynamic():
            if wanted is None:
                raise ValueError(f"{graph} has a symbolic dimension: it needs feeds to be compiled for")
            model.reshape(wanted)
        compiled = self.core.compile_model(model, device_name(self.ctx), compile_config(self.ctx))
        # The plugin takes a precision hint it cannot honour without a word; an fp32 cell computed in
        # bf16 would be judged as fp32.
        precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if precision != PRECISIONS[self.ctx.dtype][0]:
            raise RuntimeError(f"{graph}: asked for {PRECISIONS[self.ctx.dtype][0]} inference, the compiled model has {precision}")
        self.compiled[graph] = compiled
        return compiled

    def call(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a graph once (untimed set-up, such as filling a KV cache); outputs by name."""
        compiled = self.compiled_for(graph, feeds)
        out = compiled.create_infer_request().infer(dict(feeds))
        return {port.get_any_name(): np.array(value) for port, value in out.items()}

    def step(self, graph: str, feeds: Mapping[str, np.ndarray], returns: tuple[str, ...]) -> Step:
        """A timed step: inputs are bound to the request once, here; `returns` are the outputs compared
        (a decode graph's present K/V are computed every call, but not compared)."""
        request = self.compiled_for(graph, feeds).create_infer_request()
        for name, array in feeds.items():
            request.set_tensor(name, ov.Tensor(np.ascontiguousarray(array)))

        def run() -> Any:
            # Synchronous: returns when the outputs are written. Shared outputs: no copy in the timed call.
            return request.infer(share_outputs=True)

        def fetch(out: Any) -> dict[str, np.ndarray]:
            return {name: np.array(out[name], dtype=np.float32) for name in returns}

        return Step(run=run, fetch=fetch)


def build(family: str, config: Any, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]],
          batch: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> Model:
    """Convert the family's graphs (or reuse the cached IR), then compile each one: a graph with a
    symbolic batch for the feeds `batch` gives it (the inference workload's), every other as it is."""
    folder, conversion = ir(family, config, weights, ctx, inputs)
    model = Model(folder, ctx, conversion)
    for graph in model.files:
        model.compiled_for(graph, (batch or {}).get(graph))
    return model
