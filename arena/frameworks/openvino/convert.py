"""The OpenVINO conversion: the family's ONNX graphs (exported by arena/frameworks/onnxruntime/export,
into the folder ONNX Runtime's adapter uses, so one export serves both) converted to IR, both cached.

The ONNX folder is named as onnxruntime/common.py names it (exporter versions, a hash of the export
code); were the two to drift apart, each would export for itself, which costs time, not correctness.
The recorded time is the export's (when it was made, by whichever adapter) plus the IR conversion's,
so `convert` does not depend on which adapter ran first.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from arena.frameworks.contract import BuildContext
from arena.frameworks.conversion import cached_conversion, conversion_folder
from arena.results.schema import Conversion

EXPORTER_DISTRIBUTIONS = ("torch", "onnxscript", "onnx")
EXPORT_CODE = Path(__file__).parents[1] / "onnxruntime" / "export"
STAGES = "stages.json"  # each stage's time when it was made


def onnx_folder(ctx: BuildContext) -> tuple[Path, str]:
    """Where the cell's ONNX export is (or will be), and the exporter it names."""
    versions = {d: importlib.metadata.version(d) for d in EXPORTER_DISTRIBUTIONS}
    folder = conversion_folder(ctx.convert_dir, "onnx-" + "-".join(f"{d}{v}" for d, v in versions.items()), EXPORT_CODE)
    return folder, "torch.onnx.export(dynamo=True, opset 20) with " + ", ".join(f"{d} {v}" for d, v in versions.items())


def export_onnx(family: str, config: Any, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int, scratch: Path) -> None:
    export = importlib.import_module("arena.frameworks.onnxruntime.export")  # imports torch: only when not cached
    family_graphs = importlib.import_module(f"arena.frameworks.onnxruntime.export.{family}")
    export.export(family_graphs.graphs(config, weights, inputs, threads), scratch)


def to_ir(onnx: Path, folder: Path) -> None:
    """Every `<graph>.onnx` to `<graph>.xml` + `.bin`, weights kept in fp32."""
    for graph in sorted(onnx.glob("*.onnx")):
        ov.save_model(ov.convert_model(graph), folder / f"{graph.stem}.xml", compress_to_fp16=False)


def ir(family: str, config: Any, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> tuple[Path, Conversion]:
    """The family's IR folder and its conversion record (export + IR conversion)."""
    onnx, exporter = onnx_folder(ctx)
    version = importlib.metadata.version("openvino")
    # Named after the ONNX folder too: its name carries the exporter versions and the export code's hash.
    folder = conversion_folder(ctx.convert_dir, f"openvino{version}-from-{onnx.name}", Path(__file__))

    def make(scratch: Path) -> None:
        exported = cached_conversion(onnx, exporter, partial(export_onnx, family, config, weights, inputs, ctx.threads))
        started = time.perf_counter()
        to_ir(onnx, scratch)
        stages = {"onnx_export_ms": exported.ms, "ir_ms": (time.perf_counter() - started) * 1e3}
        (scratch / STAGES).write_text(json.dumps(stages, indent=1))

    tool = f"{exporter}, then openvino.convert_model + save_model(compress_to_fp16=False) with OpenVINO {version}"
    made = cached_conversion(folder, tool, make)
    stages = json.loads((folder / STAGES).read_text())
    return folder, made.model_copy(update={"ms": stages["onnx_export_ms"] + stages["ir_ms"]})
