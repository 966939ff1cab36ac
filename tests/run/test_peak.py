"""The machine's peaks (arena/run/peak.py): measured for real, kept per platform, reused, and never in a
run's way."""

from __future__ import annotations

import importlib.util

import pytest

from arena.errors import ArenaError
from arena.results.machine import FILE, MachinePeak, load
from arena.results.store import write_json_atomic
from arena.run import peak
from arena.run.malloc import Malloc
from arena.run.orchestrate import child_env
from arena.run.system import describe


def refuse(threads: int) -> dict:
    raise AssertionError(f"measured on {threads} thread(s): the kept figures cover the run")


def test_measured_on_one_thread_kept_beside_the_results_and_reused(tmp_path):
    measured = peak.ensure(tmp_path, 1, remeasure=False, env_for=lambda threads: child_env(threads, Malloc()), log=lambda *_: None)
    path = tmp_path / describe().platform_id / FILE
    assert load(path) == measured and measured.thread_counts() == {1}
    assert measured.gemm_gflops(1) > 1 and measured.bandwidth_gb_s(1) > 0.5, "a real GEMM and a real triad"
    assert {g.n for g in measured.gemm} == set(peak.GEMM_SIZES)
    libraries = {g.library.split(" (")[0].split(" ")[0] for g in measured.gemm}
    assert {"torch.mm", "numpy.matmul"} <= libraries, "the reference's GEMM and NumPy's are always at hand"
    assert "gemm" in libraries or importlib.util.find_spec("arena._native") is None, "Candle's and Burn's GEMM, where built"
    assert set(measured.isa) <= set(peak.ISA_FLAGS)
    assert peak.ensure(tmp_path, 1, remeasure=False, env_for=refuse, log=lambda *_: None) == measured


def test_a_probe_that_fails_is_reported_and_the_run_goes_on(tmp_path):
    told = []
    broken = lambda threads: child_env(threads, Malloc()) | {"PYTHONHOME": "/nonexistent"}  # the child's Python cannot start
    assert peak.ensure(tmp_path, 1, remeasure=False, env_for=broken, log=told.append) is None
    assert "measuring the machine on 1 thread(s) failed" in told[-1] and "not placed" in told[-1]
    assert not (tmp_path / describe().platform_id / FILE).exists()


def test_a_damaged_file_names_itself_and_another_probe_version_is_measured_again(tmp_path):
    path = tmp_path / describe().platform_id / FILE
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ArenaError, match=f"{path}: not a machine peak file"):
        load(path)
    old = MachinePeak(probe_version=0, platform_id="x", cpu_model="", isa=[], torch_cpu_capability="", gemm=[], triad=[],
                      measured="", arena_commit="", torch_version="")
    write_json_atomic(path, old.model_dump(mode="json"))
    assert load(path) is None, "figures of another probe version are not compared with"
