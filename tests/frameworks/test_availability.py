"""A framework that is not installed is a recorded `unavailable` cell with the install hint, and the
rest of the run goes on. The child process is made to see no jax / tensorflow / mlx / onnxruntime /
llama_cpp / openvino / executorch / ctranslate2 / tinygrad / max by shadowing them on its path with packages
whose import fails exactly as a missing distribution does."""

from __future__ import annotations

import pytest

from arena.frameworks import load_adapter

pytest.importorskip("torch")

HIDDEN = {"jax": "jax", "tensorflow": "tensorflow", "mlx": "mlx", "onnxruntime": "onnxruntime", "ggml": "llama_cpp", "openvino": "openvino",
          "executorch": "executorch", "ctranslate2": "ctranslate2", "tinygrad": "tinygrad", "max": "max"}


@pytest.mark.slow
def test_missing_frameworks_are_unavailable_with_the_install_hint(run_matrix, tmp_path, monkeypatch):
    shadow = tmp_path / "shadow"
    for framework, package in HIDDEN.items():
        (shadow / package).mkdir(parents=True)
        (shadow / package / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named '{package}'\", name={package!r})\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))

    results = run_matrix(["smollm2-135m"], ["torch", *HIDDEN])

    assert results["smollm2-135m:torch"].status == "ok"
    for framework, package in HIDDEN.items():
        cell = results[f"smollm2-135m:{framework}"]
        adapter, _ = load_adapter(framework)
        assert cell.status == "unavailable", (framework, cell.status, cell.reason)
        assert f"{package} is not installed" in cell.reason and adapter.INSTALL_HINT in cell.reason


BLOCK_EXTENSION = '''
import importlib.abc, sys

class _NoNativeExtension(importlib.abc.MetaPathFinder):
    """As if the Rust extension had never been built."""

    def find_spec(self, name, path=None, target=None):
        if name == "arena._native":
            raise ModuleNotFoundError("No module named 'arena._native'", name=name)
        return None

sys.meta_path.insert(0, _NoNativeExtension())
'''


@pytest.mark.slow
def test_without_the_rust_extension_candle_is_unavailable_and_the_rest_runs(run_matrix, tmp_path, monkeypatch):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "sitecustomize.py").write_text(BLOCK_EXTENSION)
    monkeypatch.setenv("PYTHONPATH", str(shadow))

    results = run_matrix(["smollm2-135m"], ["torch", "candle"])

    assert results["smollm2-135m:torch"].status == "ok"
    cell = results["smollm2-135m:candle"]
    adapter, _ = load_adapter("candle")
    assert cell.status == "unavailable", (cell.status, cell.reason)
    assert "arena._native is not installed" in cell.reason and adapter.INSTALL_HINT in cell.reason
