"""A framework that is not installed is a recorded `unavailable` cell with the install hint, and the
rest of the run goes on. The child process is made to see no jax / mlx / onnxruntime / llama_cpp by shadowing them on its path
with packages whose import fails exactly as a missing distribution does."""

from __future__ import annotations

import pytest

from arena.frameworks import load_adapter

pytest.importorskip("torch")

HIDDEN = {"jax": "jax", "mlx": "mlx", "onnxruntime": "onnxruntime", "ggml": "llama_cpp"}


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
