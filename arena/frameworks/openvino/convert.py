"""The OpenVINO conversion: the family's ONNX graphs (exported by arena/frameworks/onnxruntime/export,
the graphs ONNX Runtime runs) converted to IR, cached.

The export is made afresh inside this conversion, not reused from ONNX Runtime's folder: a cell's
build time leaves out the conversion it ran (arena/run/child.py subtracts a fresh conversion's `ms`),
so a conversion whose export another cell had already paid for recorded the export's time without
spending it, and the build time came out negative (-15.6 s for Whisper at full). Exporting twice costs
the matrix one more export per model; the recorded time is the whole conversion's, made here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from arena.frameworks.contract import BuildContext
from arena.frameworks.conversion import cached_conversion, conversion_folder
from arena.results.schema import Conversion

EXPORTER_DISTRIBUTIONS = ("torch", "onnxscript", "onnx")
EXPORT_CODE = Path(__file__).parents[1] / "onnxruntime" / "export"


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
    """The family's IR folder and its conversion record (export + IR conversion, both made here)."""
    onnx, exporter = onnx_folder(ctx)
    version = importlib.metadata.version("openvino")
    # Named after the ONNX folder ONNX Runtime would use: its name carries the exporter versions and the export code's hash.
    folder = conversion_folder(ctx.convert_dir, f"openvino{version}-from-{onnx.name}", Path(__file__))

    def make(scratch: Path) -> None:
        with tempfile.TemporaryDirectory(dir=scratch.parent, prefix=".onnx-") as graphs:
            export_onnx(family, config, weights, inputs, ctx.threads, Path(graphs))
            to_ir(Path(graphs), scratch)

    tool = f"{exporter}, then openvino.convert_model + save_model(compress_to_fp16=False) with OpenVINO {version}"
    return folder, cached_conversion(folder, tool, make)
