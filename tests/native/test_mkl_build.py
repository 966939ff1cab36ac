"""`candle-mkl`: Candle built with its `mkl` feature into arena._native_mkl (rust_ext/mkl/build.sh).

Every run checks what a machine without the build records (the cell is unavailable and says how to
build it) and, where the module is built (.ci/run builds it before the suite, whose conformance tests
then run candle-mkl as every framework), what a cell records of MKL. The `mkl_build` group
(python -m pytest -q -m mkl_build -n 0) builds the module itself and runs every model at its tiny preset
through `python -m arena`: the same verdicts as plain Candle, with MKL's version and the cell's threads."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys

import pytest

from arena.frameworks import rust_native
from arena.frameworks.contract import BuildContext
from tests.conftest import REPO

MODELS = ["smollm2-135m", "smolvla-expert", "sd15-unet", "resnet-50", "whisper-tiny"]
ON_X86 = platform.machine().lower() in ("x86_64", "amd64")  # as rust_native.variant_missing asks


def test_without_the_mkl_build_candle_mkl_is_unavailable_and_says_how_to_build_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "arena._native_mkl", None)  # an import of it fails, as on a fresh install
    probe = rust_native.probe("candle", BuildContext(device="cpu", dtype="fp32", threads=1, variant="mkl"), "Candle", {})
    assert not probe.available
    if ON_X86:
        assert "arena._native_mkl is not built here" in probe.reason and "bash rust_ext/mkl/build.sh" in probe.reason
    else:
        assert probe.reason.startswith(rust_native.MKL_NOT_X86)


def test_the_mkl_variant_sizes_intel_openmp_from_the_cell_and_lets_its_threads_sleep():
    plain, mkl = (rust_native.thread_env(BuildContext(device="cpu", dtype="fp32", threads=3, variant=v)) for v in ("", "mkl"))
    assert plain == {"RAYON_NUM_THREADS": "3", "CANDLE_NUM_THREADS": "3"}
    assert mkl == plain | {"MKL_NUM_THREADS": "3", "OMP_NUM_THREADS": "3", "KMP_BLOCKTIME": "0"}


def test_the_mkl_build_is_candle_on_intel_mkl_with_the_cells_threads():
    """Where the module is built (CI builds it before the suite): what a candle-mkl cell records."""
    if not ON_X86:
        pytest.skip(rust_native.MKL_NOT_X86)
    mkl = pytest.importorskip("arena._native_mkl")
    assert mkl.versions() == [("candle", dict(rust_native.extension().versions())["candle"])]  # Candle alone, the same release
    with pytest.raises(RuntimeError, match='arena._native_mkl has no framework "burn"'):
        mkl.devices("burn")
    ctx = BuildContext(device="cpu", dtype="fp32", threads=1, variant="mkl")
    probe = rust_native.probe("candle", ctx, "Candle", {})
    assert probe.available, probe.reason
    assert probe.settings["mkl"].startswith("Intel(R) oneAPI Math Kernel Library Version") and probe.settings["mkl"] == probe.settings["mkl"].strip()
    assert probe.settings["matmul"].startswith("Intel MKL sgemm") and "mkl_threads" in probe.settings["threads"]


@pytest.fixture(scope="module")
def mkl_build():
    if shutil.which("cargo") is None:
        pytest.skip("the MKL build needs cargo")
    subprocess.run(["bash", "rust_ext/mkl/build.sh"], cwd=REPO, check=True, timeout=3600)
    return REPO / "arena" / "_native_mkl.abi3.so"


@pytest.mark.slow
@pytest.mark.mkl_build
def test_candle_mkl_runs_every_model_with_intel_mkl_and_passes_the_same_verdicts(mkl_build, tmp_path):
    out = tmp_path / "results"
    models = ",".join(MODELS)
    done = subprocess.run([sys.executable, "-m", "arena", "+matrix=smoke", "frameworks=[candle-mkl,candle]", f"models=[{models}]",
                           f"results_dir={out}", "threads=2", "machine_peak=false"], cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {(r["model"], r["framework"]): r for r in (json.loads(p.read_text()) for p in out.rglob("*.json")) if "framework" in r}
    for model in MODELS:
        mkl = results[(model, "candle-mkl")]
        assert mkl["status"] == "ok", (model, mkl["reason"])
        assert mkl["correctness"]["verdict"] == results[(model, "candle")]["correctness"]["verdict"] == "pass", model
        settings = mkl["settings"]
        assert settings["variant"] == "mkl" and settings["mkl"].startswith("Intel(R) oneAPI Math Kernel Library"), settings
        assert settings["matmul"].startswith("Intel MKL sgemm") and settings["threads"]["mkl_threads"] == 2, settings
        assert "binary:arena._native_mkl" in mkl["fingerprint"]["components"]
