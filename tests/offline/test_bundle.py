"""The offline bundle: Arena's own requirements as wheels, installed with no package index and run.

The GPU host has its own torch and no network; here the same path runs against this machine's base
interpreter, which has neither torch nor numpy: the bundle is built for it (numpy included), installed
by arena/offline/run.sh with --no-index, and `python -m arena` then plans a matrix, generates weights and
records the framework it was told this machine does not run. Building the bundle downloads wheels from
PyPI, so the test is in the `offline` group (.ci/run runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arena.errors import ArenaError
from arena.offline import bundle
from tests.conftest import REPO

pytestmark = pytest.mark.offline


def test_the_h200_bundle_brings_arenas_requirements_but_not_the_hosts_frameworks():
    wanted = bundle.requirements()
    assert {"pydantic", "hydra-core", "safetensors", "transformers", "diffusers", "torchvision"} <= wanted.keys()
    assert not {"torch", "jax", "jaxlib", "numpy", "triton"} & wanted.keys(), "the host's own stack stays the host's"
    assert wanted["torchvision"] == "==0.26.0", "built against the host's torch 2.11"
    assert not any(name.startswith("nvidia-") for name in wanted), "no CUDA libraries: they come with the host's torch"


def test_over_budget_names_the_largest_wheels(tmp_path):
    wheel = tmp_path / "big-1.0-py3-none-any.whl"
    wheel.write_bytes(b"\0" * (2 * 2**20))
    assert bundle.check_budget([wheel], tree_bytes=2**20, budget_mib=4) == 2 * 2**20
    with pytest.raises(ArenaError, match=r"exceed 2 MiB; the largest: big-1.0-py3-none-any.whl 2.0 MiB"):
        bundle.check_budget([wheel], tree_bytes=2**20, budget_mib=2)


@pytest.mark.timeout(900)
def test_a_bundle_installs_with_no_index_and_arena_runs_from_the_checkout(tmp_path):
    base = Path(sys._base_executable)  # no torch, no numpy: what Arena itself needs must all come from the bundle
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    wanted = bundle.requirements(extras=("torch",), host_has=("torch", "torchvision", "triton", "pip", "setuptools"), pins={}, python=python)
    wheels = bundle.download(wanted, tmp_path / "b" / "wheels", python)
    assert len(wheels) == len(wanted) and "numpy" in wanted

    why = "this test interpreter has no torch"
    env = dict(os.environ, PYTHON=str(base), PIP_NO_INDEX="1", HF_HUB_OFFLINE="1", PYTHONPATH="")
    env.pop("VIRTUAL_ENV", None)
    run = subprocess.run(["bash", "arena/offline/run.sh", str(tmp_path / "b"), "+matrix=nvidia", "preset=tiny", "models=[smollm2-135m]",
                          "frameworks=[torch]", f"+not_run_here.torch='{why}'", f"results_dir={tmp_path / 'results'}",
                          f"cache_dir={tmp_path / 'cache'}", "machine_peak=false"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (path,) = (tmp_path / "results").rglob("torch-cuda-fp32.json")
    result = json.loads(path.read_text())
    assert result["status"] == "not_run" and result["reason"] == f"not run on this machine: {why}"
    assert list((tmp_path / "cache").rglob("*.safetensors")), "the weights were generated there, from the bundle's numpy and safetensors"
    imported = subprocess.run([str(tmp_path / "b" / "venv" / "bin" / "python"), "-c", "import transformers, diffusers, hydra, pydantic, safetensors"],
                              env=env, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr[-2000:]
