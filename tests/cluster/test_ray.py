"""A real Ray cluster on this machine (Ray's multi-node test utility: a head and two worker nodes, each
with the resources `python -m arena.cluster resources --matrix smoke` prints) runs arena the way a user
does: `python -m arena +matrix=smoke executor=ray executor.address=...`, from a process of its own,
as a driver on the head (as from a machine joined to the cluster) or through Ray Client (ray://, as from
a machine outside it).

The tests share one cluster; the last one kills a worker node mid-cell.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from arena.cluster.resources import node_resources
from arena.results.store import result_files
from arena.specs import spec_files
from tests.conftest import REPO, gone

pytestmark = pytest.mark.cluster  # a real Ray cluster on this machine: -m cluster

ray = pytest.importorskip("ray")
pytest.importorskip("torch")
pytest.importorskip("jax")

MODELS = [path.stem for path in spec_files()]  # every model, as +matrix=smoke runs them
NODE = {"num_cpus": 0, "object_store_memory": 80 * 2**20}  # the slot limits a node, not Ray's CPU count


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        client_port = probe.getsockname()[1]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", str(REPO))  # the nodes' workers import this checkout's arena, as cells do
        head = Cluster(initialize_head=True, head_node_args=NODE | {"include_dashboard": False, "ray_client_server_port": client_port})
        workers = [head.add_node(**NODE, resources=node_resources(["smoke"])) for _ in range(2)]
        head.wait_for_nodes()
        yield head, workers, f"ray://127.0.0.1:{client_port}"
        head.shutdown()


def arena(address: str, *args: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    matrix = [] if any(a.startswith("+matrix=") for a in args) else ["+matrix=smoke"]
    return subprocess.Popen([sys.executable, "-m", "arena", *matrix, "executor=ray", f"executor.address={address}", *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def stored(results_dir: Path) -> dict[str, dict]:
    return {f"{p.parts[-3]}:{p.stem}": json.loads(p.read_text()) for p in result_files(results_dir)}


@pytest.mark.slow
def test_smoke_runs_on_both_workers_and_results_arrive_here(cluster, tmp_path, shared_cache):
    head, workers, _ = cluster
    results_dir = tmp_path / "results"
    rc, out, err = finish(arena(head.address, "frameworks=[torch,jax]", f"results_dir={results_dir}", f"cache_dir={shared_cache}",
                                cwd=tmp_path))
    assert rc == 0, err[-3000:]
    results = stored(results_dir)
    assert sorted(results) == sorted(f"{model}:{fw}-cpu-fp32" for model in MODELS for fw in ("torch", "jax")), "every cell of the smoke matrix"
    worker_ids = {w.node_id for w in workers}
    for key, result in results.items():
        assert result["status"] == "ok", (key, result["reason"])
        assert result["correctness"]["verdict"] == ("reference" if "torch" in key else "pass"), key
        assert result["system"]["node_id"] in worker_ids, "each result names the worker node that ran it"
    assert {r["system"]["node_id"] for r in results.values()} == worker_ids, "both workers took cells"
    assert "2 node(s) serve this run" in out and "smollm2-135m (tiny)" in out, "the summary is printed here"

    rc, out, _ = finish(arena(head.address, "frameworks=[torch,jax]", f"results_dir={results_dir}", f"cache_dir={shared_cache}",
                              cwd=tmp_path))
    assert rc == 0 and out.count(": kept (ok, ") == len(results), "a re-run on the cluster keeps every valid result"
    assert stored(results_dir) == results


@pytest.mark.slow
def test_through_ray_client_results_arrive_here(cluster, tmp_path, shared_cache):
    """From outside the cluster: the driver talks to the head's Ray Client server (ray://)."""
    _, workers, client = cluster
    results_dir = tmp_path / "results"
    rc, out, err = finish(arena(client, "models=[smollm2-135m]", "frameworks=[torch]", f"results_dir={results_dir}",
                                f"cache_dir={shared_cache}", "force=true", cwd=tmp_path))
    assert rc == 0, err[-3000:]
    (result,) = stored(results_dir).values()
    assert result["status"] == "ok" and result["system"]["node_id"] in {w.node_id for w in workers}
    assert ": running on " in out, "the node's start reaches the driver through Ray Client"


def test_a_matrix_no_node_serves_is_a_clear_error(cluster, tmp_path, shared_cache):
    head = cluster[0]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-m", "arena", "+matrix=nvidia", "preset=tiny", "models=[smollm2-135m]", "frameworks=[torch]",
                          "executor=ray", f"executor.address={head.address}", f"cache_dir={shared_cache}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "no node of the Ray cluster" in run.stderr and "arena_matrix_nvidia" in run.stderr and "arena_device_cuda" in run.stderr
    assert "python -m arena.cluster resources --matrix nvidia" in run.stderr
    assert not (tmp_path / "results").exists()


def test_no_cluster_at_the_address_is_a_clear_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "arena", "+matrix=smoke", "executor=ray", "executor.address=127.0.0.1:1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "no Ray cluster at 127.0.0.1:1" in run.stderr
    assert time.monotonic() - started < 60, "an unreachable address fails at once, not after Ray's retries"


@pytest.mark.slow
def test_cells_left_without_a_node_are_named_and_the_run_ends(cluster, tmp_path, shared_cache):
    """The only node serving `apple` is lost while its first cell hangs: that cell is recorded, the one
    queued behind it is reported as not run (instead of waiting for ever), and the run still ends."""
    head, _, _ = cluster
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", str(REPO))
        mac = head.add_node(**NODE, resources=node_resources(["apple"]))
    head.wait_for_nodes()
    results_dir = tmp_path / "results"
    driver = arena(head.address, "+matrix=apple", "preset=tiny", "models=[smollm2-135m,resnet-50]", "frameworks=[tests.faults-hang]",
                   f"results_dir={results_dir}", f"cache_dir={shared_cache}", cwd=tmp_path)
    hang = wait_for_cell_process(shared_cache, "tests.faults-hang", driver)
    head.remove_node(mac, allow_graceful=False)
    rc, out, err = finish(driver)
    assert rc == 0, err[-3000:]
    assert gone(hang.pid)
    (started,) = stored(results_dir).values()
    assert started["status"] == "crashed" and started["system"]["node_id"] == mac.node_id
    queued = ({"smollm2-135m", "resnet-50"} - {started["model"]}).pop()
    assert f"1 cell(s) not run, no node of the cluster could take them any more: {queued}/tiny/tests.faults-hang@cpu/fp32" in out


@pytest.mark.slow
def test_a_lost_worker_keeps_finished_results_and_records_its_cell(cluster, tmp_path, shared_cache, specs_copy):
    """torch and jax take the two workers' slots first; the hanging cell waits for a free slot, so it runs
    on a worker that has already finished a cell. That worker is killed while the cell hangs. The driver
    runs on the head (the GCS address), the other way of submitting."""
    head, workers, _ = cluster
    results_dir = tmp_path / "results"
    settings = ["models=[smollm2-135m]", "frameworks=[torch,jax,tests.faults-hang]", f"results_dir={results_dir}",
                f"cache_dir={shared_cache}", f"specs_dir={specs_copy}"]
    driver = arena(head.address, *settings, cwd=tmp_path)
    hang = wait_for_cell_process(shared_cache, "tests.faults-hang", driver)
    before = stored(results_dir)
    job = json.loads(Path(hang.cmdline()[-1]).read_text())
    lost = next(w for w in workers if w.node_id == job["system"]["node_id"])
    head.remove_node(lost, allow_graceful=False)

    rc, out, err = finish(driver)
    assert rc == 0, err[-3000:]
    assert gone(hang.pid), "the cell's process does not outlive its worker"
    results = stored(results_dir)
    for key, result in before.items():
        assert results[key] == result, f"{key}, finished before the kill, is kept as it was"
    assert results["smollm2-135m:torch-cpu-fp32"]["status"] == "ok"
    assert results["smollm2-135m:jax-cpu-fp32"]["status"] == "ok"
    interrupted = results["smollm2-135m:tests.faults-hang-cpu-fp32"]
    assert interrupted["status"] == "crashed"
    assert "lost with its node" in interrupted["reason"] and lost.node_id[:8] in interrupted["reason"]
    assert interrupted["system"]["node_id"] == lost.node_id
    assert any(r["system"]["node_id"] == lost.node_id and r["status"] == "ok" for r in results.values()), \
        "the lost worker's own finished result survives it"

    # Re-running resumes: the two results are kept, the interrupted cell runs again (on the surviving
    # worker; a 5 s deadline ends its hang — the deadline is no part of the spec hash).
    path = specs_copy / "smollm2-135m.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["presets"]["tiny"]["timeout_s"] = 5
    path.write_text(yaml.safe_dump(raw))
    rc, out, err = finish(arena(head.address, *settings, cwd=tmp_path))
    assert rc == 0, err[-3000:]
    again = stored(results_dir)
    for key in ("smollm2-135m:torch-cpu-fp32", "smollm2-135m:jax-cpu-fp32"):
        assert again[key] == results[key]
    rerun = again["smollm2-135m:tests.faults-hang-cpu-fp32"]
    assert rerun["status"] == "timeout" and rerun["run_id"] != interrupted["run_id"]
    assert rerun["system"]["node_id"] != lost.node_id


def wait_for_cell_process(cache: Path, framework: str, driver: subprocess.Popen, timeout: float = 300) -> psutil.Process:
    """The running child process of a cell (`python -m arena.run.child <cache>/cells/.../<framework>-...job.json`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info["cmdline"] or []
            if "arena.run.child" in cmdline and cmdline[-1].startswith(str(cache)) and f"/{framework}-" in cmdline[-1]:
                return process
        time.sleep(0.2)
    raise AssertionError(f"no {framework} cell process within {timeout} s")
