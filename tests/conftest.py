"""Shared fixtures: a weights/reference cache shared by the session, and a way to run a matrix in-process."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import psutil
import pytest

from arena.results.schema import Result
from arena.run.config import RunConfig
from arena.run.orchestrate import execute, plan
from arena.specs import spec_files

REPO = Path(__file__).resolve().parents[1]
SPEC_NAMES = [p.stem for p in spec_files()]


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


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """Generated weights and reference outputs, reused by every test of the session."""
    return tmp_path_factory.mktemp("arena-cache")


@pytest.fixture
def run_matrix(tmp_path, shared_cache):
    """Run a matrix in-process (each cell still in its own child process); returns results by framework."""

    def run(models: list[str], frameworks: list[str], specs_dir: Path | None = None, **overrides) -> dict[str, Result]:
        config = RunConfig(
            matrix="test", devices={fw: "cpu" for fw in frameworks}, models=models, frameworks=frameworks,
            preset=overrides.pop("preset", "tiny"), results_dir=str(overrides.pop("results_dir", tmp_path / "results")),
            cache_dir=str(overrides.pop("cache_dir", shared_cache)), specs_dir=str(specs_dir) if specs_dir else None,
            **overrides,
        )
        return {f"{r.model}:{r.framework}": r for r in execute(plan(config), log=lambda *_: None)}

    return run


@pytest.fixture
def specs_copy(tmp_path) -> Path:
    """A private copy of specs/models that a test may edit."""
    target = tmp_path / "specs"
    shutil.copytree(REPO / "specs" / "models", target)
    return target
