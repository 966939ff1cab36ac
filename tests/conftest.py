"""Shared fixtures: a weights/reference cache shared by the session, and a way to run a matrix in-process."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import pytest

# TensorFlow and triton (torch.compile's compiler, loaded by torch._inductor and ExecuTorch's exir) each
# link LLVM: a process that loads TensorFlow first aborts when triton loads ("LLVM ERROR: inconsistency
# in registered CommandLine options"), while triton first works (checked with tensorflow-cpu 2.21 and
# torch 2.15). Cells never load both, but a test process imports every framework's adapter
# (tests/test_contracts.py) and lowers ExecuTorch programs, in whatever order xdist deals the tests: so
# triton goes first, here.
with contextlib.suppress(ImportError):
    import triton  # noqa: F401

from arena.results.schema import Result
from arena.run.config import RunConfig
from arena.run.orchestrate import execute, plan
from arena.run.slot import LOCK_ENV
from arena.run.system import default_threads
from arena.specs import spec_files

REPO = Path(__file__).resolve().parents[1]
SPEC_NAMES = [p.stem for p in spec_files()]

pytest_plugins = ["tests.skips"]  # in CI, a skip for anything but the hardware fails the run


def gone(pid: int, timeout: float = 30) -> bool:
    """The process exits within the timeout (a zombie waiting for a reaper counts: it runs nothing)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def pytest_configure(config) -> None:
    """This test process's own timing slot (arena/run/slot.py), inherited by every cell it starts: the
    suite's timings are not results, so its workers run cells side by side and never wait behind a
    benchmark on the machine (do not run the suite beside one: it would disturb the benchmark's timings)."""
    # Every process its own: pytest-xdist's workers inherit the environment of the process that starts them.
    folder = tempfile.mkdtemp(prefix="arena-test-slot-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ[LOCK_ENV] = str(Path(folder) / "slot.lock")


@pytest.fixture(autouse=True)
def grouped_as_marked(request) -> None:
    """A test marked xdist_group stops, under pytest-xdist's loadgroup, if it was not grouped: loadgroup keeps
    a framework's conformance tests on one worker by renaming each grouped test `<id>@<group>`, and with
    pytest 9.2 the renaming silently stopped (pytest-xdist#1386): every worker ran every framework's matrix."""
    item = request.node
    if getattr(request.config.option, "loadgroup", False) and item.get_closest_marker("xdist_group") and "@" not in item.nodeid.rpartition("]")[2]:
        pytest.fail("pytest-xdist's loadgroup did not group this test: this pytest and pytest-xdist do not work together "
                    "(pytest-xdist#1386; pyproject.toml's dev extra pins pytest below 9.2)", pytrace=False)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """Generated weights, reference outputs and conversions, reused by every test of the session (of the
    pytest-xdist worker: each has its own, so no two processes build one cache entry side by side)."""
    return tmp_path_factory.mktemp("arena-cache")


def cell_threads() -> int:
    """Threads per test cell: the cores shared out among pytest-xdist's workers, so that two cells side by
    side do not oversubscribe them (measured on 2 cores: two 2-thread cells each ran 2-2.5x slower)."""
    return max(1, default_threads() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def run_matrix_in(results_dir: Path, cache_dir: Path, models: list[str], frameworks: list[str],
                  specs_dir: Path | None = None, **overrides) -> dict[str, Result]:
    """Run a matrix in-process (each cell still in its own child process); results by "model:framework".
    A result already in `results_dir` that is still valid is kept, as in any re-run. The machine's peaks
    are not measured (tests/run/test_peak.py and the smoke matrix's test do): they place results, and a
    test's timings are none."""
    overrides.setdefault("machine_peak", False)
    config = RunConfig(
        matrix="test", devices={fw: "cpu" for fw in frameworks}, models=models, frameworks=frameworks,
        preset=overrides.pop("preset", "tiny"), results_dir=str(results_dir), cache_dir=str(cache_dir),
        specs_dir=str(specs_dir) if specs_dir else None, threads=overrides.pop("threads", cell_threads()), **overrides,
    )
    return {f"{r.model}:{r.framework}": r for r in execute(plan(config), log=lambda *_: None)}


@pytest.fixture
def run_matrix(tmp_path, shared_cache):
    """`run_matrix_in` a private results folder (the session's weights and reference cache)."""

    def run(models: list[str], frameworks: list[str], specs_dir: Path | None = None, **overrides) -> dict[str, Result]:
        results_dir = overrides.pop("results_dir", tmp_path / "results")
        return run_matrix_in(results_dir, overrides.pop("cache_dir", shared_cache), models, frameworks, specs_dir, **overrides)

    return run


@pytest.fixture
def specs_copy(tmp_path) -> Path:
    """A private copy of specs/models that a test may edit."""
    target = tmp_path / "specs"
    shutil.copytree(REPO / "specs" / "models", target)
    return target
