"""`python -m arena` through Hydra, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arena.results import machine
from arena.results.store import result_files
from arena.run.malloc import GLIBC_DEFAULT, VARIABLES
from arena.run.system import default_threads
from tests.conftest import REPO, SPEC_NAMES


def arena(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "arena", *args, f"cache_dir={cache}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_smoke_matrix_end_to_end(tmp_path, shared_cache):
    pytest.importorskip("torch")
    run = arena("+matrix=smoke", "frameworks=[torch]", f"results_dir={tmp_path / 'results'}", cwd=tmp_path, cache=shared_cache)
    assert run.returncode == 0, run.stderr[-3000:]
    files = result_files(tmp_path / "results")
    assert {f.parts[-3] for f in files} == set(SPEC_NAMES), "one result per model"
    allocator = yaml.safe_load((REPO / "arena/conf/config.yaml").read_text())["malloc"]
    for f in files:
        result = json.loads(f.read_text())
        assert result["status"] == "ok", (f, result["reason"])
        if result["settings"]["malloc"]["library"].startswith("glibc"):  # the run's allocator settings reached the cell
            for field, var in VARIABLES.items():
                assert result["settings"]["malloc"][var] == (GLIBC_DEFAULT if allocator[field] is None else str(allocator[field]))
        assert result["correctness"]["verdict"] == "reference"
        for workload in ("inference", "latency", "training"):
            assert result["metrics"][workload]["stats"]["n"] >= 1
            assert result["metrics"][workload]["gflops_per_s"] > 0
    for name in SPEC_NAMES:
        assert name in run.stdout, "the summary names every model"
    (kept,) = (tmp_path / "results").glob(f"*/{machine.FILE}")
    assert machine.load(kept).thread_counts() == {1, default_threads()}, "the machine's peaks, measured before the cells"
    assert sorted(os.listdir(tmp_path)) == ["results"], "Hydra leaves nothing in the working directory"


def test_unknown_setting_is_a_clear_error(tmp_path, shared_cache):
    run = arena("+matrix=smoke", "+colour=red", cwd=tmp_path, cache=shared_cache)
    assert run.returncode == 1
    assert "unknown setting 'colour'" in run.stderr


def test_a_wrong_allocator_setting_is_a_clear_error(tmp_path, shared_cache):
    run = arena("+matrix=smoke", "malloc.mmap_threshold=-1", cwd=tmp_path, cache=shared_cache)
    assert run.returncode == 1
    assert "malloc.mmap_threshold = -1" in run.stderr


def test_framework_outside_the_matrix_is_a_clear_error(tmp_path, shared_cache):
    run = arena("+matrix=smoke", "frameworks=[jaxx]", cwd=tmp_path, cache=shared_cache)
    assert run.returncode == 1
    assert "framework 'jaxx' has no device in matrix 'smoke'" in run.stderr


def test_unknown_model_is_a_clear_error(tmp_path, shared_cache):
    run = arena("+matrix=smoke", "models=[resnet-5]", cwd=tmp_path, cache=shared_cache)
    assert run.returncode == 1
    assert "unknown model 'resnet-5'" in run.stderr and "Did you mean" in run.stderr


def test_default_matrix_is_chosen_for_this_machine(tmp_path, shared_cache):
    from arena.run.system import detect_matrix

    run = arena("--cfg", "job", cwd=tmp_path, cache=shared_cache)
    assert run.returncode == 0, run.stderr
    assert f"matrix: {detect_matrix()}" in run.stdout
    assert "devices:" in run.stdout


@pytest.mark.slow
def test_missing_device_is_recorded_unavailable_and_the_run_succeeds(tmp_path, shared_cache):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has the device; the test needs one without")
    run = arena("+matrix=nvidia", "preset=tiny", "models=[smollm2-135m]", "frameworks=[torch]",
                f"results_dir={tmp_path / 'results'}", cwd=tmp_path, cache=shared_cache)
    assert run.returncode == 0, run.stderr[-2000:]
    (path,) = (tmp_path / "results").rglob("torch-cuda-fp32.json")
    result = json.loads(path.read_text())
    assert result["status"] == "unavailable"
    assert "CUDA" in result["reason"]
    assert result["framework_version"], "the probe still reports what is installed"


@pytest.mark.slow
def test_a_framework_this_machine_was_not_set_up_for_is_not_run_here_not_unavailable(tmp_path, shared_cache):
    """The lab's limit (a package that could not be brought to a machine) is recorded as such, with the
    operator's reason, beside a framework that cannot use the device (unavailable); nothing starts for it."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has the device; the test needs one without")
    why = "onnxruntime-gpu could not be brought here (no network)"
    run = arena("+matrix=nvidia", "preset=tiny", "models=[smollm2-135m]", "frameworks=[torch,onnxruntime]",
                f"+not_run_here.onnxruntime='{why}'", f"results_dir={tmp_path / 'results'}", cwd=tmp_path, cache=shared_cache)
    assert run.returncode == 0, run.stderr[-2000:]
    results = {p.name: json.loads(p.read_text()) for p in (tmp_path / "results").rglob("*-cuda-fp32.json")}
    assert results["torch-cuda-fp32.json"]["status"] == "unavailable", "torch was asked and answered: no CUDA here"
    not_run = results["onnxruntime-cuda-fp32.json"]
    assert not_run["status"] == "not_run" and not_run["reason"] == f"not run on this machine: {why}"
    assert not_run["framework_version"] == "", "nothing was started, so nothing was probed"
    assert not list((shared_cache / "cells").rglob("onnxruntime-cuda-fp32*")), "no cell process for it"


def test_not_run_here_names_a_framework_of_the_matrix(tmp_path, shared_cache):
    run = arena("+matrix=nvidia", "+not_run_here.onnxruntim='too large'", cwd=tmp_path, cache=shared_cache)
    assert run.returncode == 1
    assert "not_run_here.onnxruntim: not a framework of matrix 'nvidia'" in run.stderr
