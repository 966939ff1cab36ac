"""SLURM through Hydra's submitit launcher: arena's `hydra/launcher=slurm` configuration, and a sweep run
by submitit's local executor (the same launcher machinery without a SLURM cluster)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arena.results.store import result_files
from tests.conftest import REPO

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def arena(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "arena", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_the_slurm_launcher_allocates_one_whole_node_per_job(tmp_path):
    run = arena("+matrix=cpu", "hydra/launcher=slurm", "hydra.launcher.partition=bench", "--cfg", "hydra", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    launcher = yaml.safe_load(run.stdout)["hydra"]["launcher"]
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["additional_parameters"] == {"exclusive": True}, "sbatch --exclusive: nothing else runs beside the cells"
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["partition"]) == (1, 1, "bench")
    assert launcher["submitit_folder"].startswith("${hydra.sweep.dir}")


@pytest.mark.slow
@pytest.mark.cluster
def test_a_sweep_through_submitit_runs_one_job_per_model(tmp_path, shared_cache):
    pytest.importorskip("torch")
    results_dir = tmp_path / "results"
    run = arena("+matrix=smoke", "frameworks=[torch]", "models=[smollm2-135m],[resnet-50]", "hydra/launcher=submitit_local",
                f"results_dir={results_dir}", f"cache_dir={shared_cache}", f"hydra.sweep.dir={tmp_path / 'sweep'}", "--multirun",
                cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in result_files(results_dir)]
    assert [r["model"] for r in results] == ["resnet-50", "smollm2-135m"]
    assert all(r["status"] == "ok" and r["correctness"]["verdict"] == "reference" for r in results)
    assert len(list((tmp_path / "sweep" / ".submitit").rglob("*_result.pkl"))) == 2, "two submitit jobs"
    # The local executor starts both jobs at once; the machine's timing slot still runs one cell at a time.
    spans = sorted((dt.datetime.fromisoformat(r["created"]).timestamp() - r["wall_s"], dt.datetime.fromisoformat(r["created"]).timestamp()) for r in results)
    assert spans[1][0] >= spans[0][1] - 1.0, f"the two cells overlapped: {spans}"
    assert sorted(os.listdir(tmp_path)) == ["results", "sweep"], "nothing else lands in the working directory"
