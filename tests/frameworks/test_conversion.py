"""The conversion cache: made once, reused with its original record, never half-written, made again when
damaged, and keyed by the converting code as well as by the folder the cell gives (spec hash + weights hash)."""

from __future__ import annotations

import os

import pytest

from arena.frameworks.contract import unsupported_reason
from arena.frameworks.conversion import RECORD, cached_conversion, conversion_folder


def converter():
    """A stand-in converter writing one 100-byte file, and the folders it was called with."""
    calls = []

    def make(folder):
        calls.append(folder)
        (folder / "model.bin").write_bytes(b"x" * 100)

    return calls, make


def test_a_conversion_is_made_once_then_reused_with_its_record(tmp_path):
    calls, make = converter()
    folder = tmp_path / "tool-v1"
    first = cached_conversion(folder, "tool 1.0", make)
    second = cached_conversion(folder, "tool 1.0", make)
    assert len(calls) == 1 and calls[0] != folder, "made in a scratch folder, then moved into place"
    assert not first.cached and second.cached
    assert first.bytes == second.bytes == 100 and first.files == second.files == ["model.bin"]
    assert second.ms == first.ms, "a cached conversion reports how long it took when it was made"


@pytest.mark.parametrize("name", ["model.bin", RECORD])
def test_a_damaged_conversion_is_made_again_with_one_line(tmp_path, capsys, name):
    calls, make = converter()
    folder = tmp_path / "tool-v1"
    first = cached_conversion(folder, "tool 1.0", make)
    size = (folder / name).stat().st_size
    os.truncate(folder / name, 40)
    again = cached_conversion(folder, "tool 1.0", make)
    assert capsys.readouterr().err == f"arena: cached conversion {folder} damaged ({name}: size 40 of {size} bytes); converting again\n"
    assert len(calls) == 2 and not again.cached and again.files == first.files
    assert (folder / "model.bin").read_bytes() == b"x" * 100
    assert cached_conversion(folder, "tool 1.0", make).cached and len(calls) == 2, "healed: reused"


def test_a_failed_conversion_leaves_nothing_behind(tmp_path):
    def make(folder):
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError):
        cached_conversion(tmp_path / "tool", "tool", make)
    assert list(tmp_path.iterdir()) == []


def test_editing_the_converting_code_changes_the_folder(tmp_path):
    code = tmp_path / "writer.py"
    code.write_text("VERSION = 1\n")
    before = conversion_folder(str(tmp_path / "cell"), "gguf0.19", code)
    assert conversion_folder(str(tmp_path / "cell"), "gguf0.19", code) == before
    code.write_text("VERSION = 2\n")
    assert conversion_folder(str(tmp_path / "cell"), "gguf0.19", code) != before
    assert before.parent == tmp_path / "cell"


def test_unsupported_declarations_by_family_workload_wildcard_and_variant():
    declared = {"resnet": "no runtime", "*/training": "inference only", "llama/latency": "no cache", "fast:whisper": "not in fast"}
    assert unsupported_reason(declared, "resnet") == "no runtime"
    assert unsupported_reason(declared, "llama") == ""
    assert unsupported_reason(declared, "llama", "training") == "inference only"
    assert unsupported_reason(declared, "llama", "latency") == "no cache"
    assert unsupported_reason(declared, "llama", "inference") == ""
    assert unsupported_reason(declared, "whisper") == ""
    assert unsupported_reason(declared, "whisper", variant="fast") == "not in fast"


def test_a_cell_that_converts_is_measured_again_from_the_cached_artifact(run_matrix, tmp_path):
    """The converter's memory (torch.export's heap) must not sit under the runtime's workloads: the child
    that converted ends there, and a second one builds from the cache and measures."""
    converted = tmp_path / "cache" / "converted"
    result = run_matrix(["resnet-50"], ["onnxruntime"], cache_dir=tmp_path / "cache")["resnet-50:onnxruntime"]
    assert result.status == "ok", result.reason
    assert list(converted.glob("*/*/" + RECORD)), "this run made the conversion"
    conversion = result.metrics.prepare.conversion
    assert conversion.cached and conversion.ms > 0, "measured from the cache, with the conversion's own time"
