"""What a node offers and what a cell asks for decide where a cell may land (no Ray needed here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from arena.cluster.resources import SLOT, cell_requirement, missing, node_resources
from arena.errors import ArenaError
from arena.run.cell import Cell
from tests.conftest import REPO


def cell(device: str, framework: str = "torch") -> Cell:
    return Cell(model="smollm2-135m", preset="tiny", framework=framework, device=device, dtype="fp32")


def test_every_cell_takes_the_nodes_one_slot():
    for matrix, device in [("smoke", "cpu"), ("nvidia", "cuda"), ("apple", "mps")]:
        assert cell_requirement(matrix, cell(device)).resources[SLOT] == 1
    assert node_resources(["cpu", "smoke"])[SLOT] == 1


def test_cells_land_only_on_nodes_serving_their_matrix_and_device():
    linux, gpu_server, mac = node_resources(["cpu", "smoke"]), node_resources(["nvidia", "smoke"]) | {"GPU": 1}, node_resources(["apple", "smoke"])
    cuda = cell_requirement("nvidia", cell("cuda"))
    assert cuda.num_gpus == 1, "Ray shows a GPU only to a task that asks for one"
    assert missing(cuda, linux) == ["arena_matrix_nvidia", "arena_device_cuda", "GPU"]
    assert missing(cuda, gpu_server) == []
    assert missing(cuda, mac) == ["arena_matrix_nvidia", "arena_device_cuda", "GPU"]

    # A CPU cell of the apple matrix stays on the Mac, so the Mac's table is whole.
    apple_cpu = cell_requirement("apple", cell("cpu", "jax"))
    assert [bool(missing(apple_cpu, node)) for node in (linux, gpu_server, mac)] == [True, True, False]
    # The smoke matrix goes anywhere, but a device override still needs the device.
    assert not any(missing(cell_requirement("smoke", cell("cpu")), node) for node in (linux, gpu_server, mac))
    assert missing(cell_requirement("smoke", cell("cuda")), linux) == ["arena_device_cuda", "GPU"]


def test_node_resources_cover_every_device_of_its_matrices():
    offered = node_resources(["apple"])
    assert {"arena_device_mps", "arena_device_gpu", "arena_device_coreml", "arena_device_cpu"} <= set(offered)
    with pytest.raises(ArenaError, match="unknown matrix 'nvdia'. Did you mean nvidia"):
        node_resources(["nvdia"])


def test_resources_command_prints_ray_start_json():
    run = subprocess.run([sys.executable, "-m", "arena.cluster", "resources", "--matrix", "nvidia"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr
    # the devices the nvidia matrix names: cuda, and gpu (OpenVINO's Intel GPU, recorded unavailable there)
    assert json.loads(run.stdout) == {"arena_slot": 1, "arena_matrix_nvidia": 1, "arena_device_cuda": 1, "arena_device_gpu": 1}
