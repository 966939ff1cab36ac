"""What a node offers and what a cell needs, as Ray custom resources (pure functions, no Ray import).

A node joins a cluster with `ray start --address=HEAD:6379 --resources="$(python -m arena.cluster resources)"`,
which offers:

- `arena_slot: 1`, the node's timing slot. Every cell takes it, so Ray never runs two cells on one node
  (and arena/run/slot.py's lock makes that true of the machine, whatever Ray was told);
- `arena_matrix_<name>: 1` for each matrix the node serves: by default the one `python -m arena` picks on
  that machine (cpu, nvidia or apple) and `smoke`. A `+matrix=nvidia` cell then lands only on a GPU
  server and an `apple` cell only on a Mac, its CPU-only cells included, so each machine's table is whole;
- `arena_device_<device>: 1` for each device those matrices use, so a cell whose device was overridden
  (`+devices.torch=cuda`) still lands only where that device is.

A CUDA cell also asks Ray for one GPU: Ray hides the GPUs (CUDA_VISIBLE_DEVICES) from a task that does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from arena.errors import unknown_name
from arena.run.cell import Cell

SLOT = "arena_slot"
GPU = "GPU"  # Ray's own resource name
MATRICES = Path(__file__).resolve().parents[1] / "conf" / "matrix"


class Requirement(BaseModel):
    """The resources one cell's Ray task asks for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resources: dict[str, float]
    num_gpus: int = 0

    def needs(self) -> dict[str, float]:
        """Everything a node must offer, Ray's GPU count included."""
        return self.resources | ({GPU: float(self.num_gpus)} if self.num_gpus else {})


def matrix_resource(matrix: str) -> str:
    return f"arena_matrix_{_slug(matrix)}"


def device_resource(device: str) -> str:
    return f"arena_device_{_slug(device)}"


def cell_requirement(matrix: str, cell: Cell) -> Requirement:
    return Requirement(
        resources={SLOT: 1.0, matrix_resource(matrix): 1.0, device_resource(cell.device): 1.0},
        num_gpus=1 if cell.device.split(":")[0] == "cuda" else 0,
    )


def node_resources(matrices: Iterable[str]) -> dict[str, float]:
    """What a node serving these matrices offers: its slot, the matrices, and every device they use."""
    matrices = list(dict.fromkeys(matrices))
    devices = sorted({device for m in matrices for device in matrix_devices(m)})
    return {SLOT: 1.0} | {matrix_resource(m): 1.0 for m in matrices} | {device_resource(d): 1.0 for d in devices}


def matrix_devices(matrix: str) -> list[str]:
    path = MATRICES / f"{matrix}.yaml"
    if not path.exists():
        raise unknown_name("matrix", matrix, (p.stem for p in MATRICES.glob("*.yaml")))
    return sorted(set((yaml.safe_load(path.read_text()) or {}).get("devices", {}).values()))


def missing(requirement: Requirement, offered: dict[str, float]) -> list[str]:
    """The resources a node lacks (or has too little of) for this cell; empty if it can run it."""
    return [name for name, amount in requirement.needs().items() if offered.get(name, 0.0) < amount]


def resources_json(resources: dict[str, float]) -> str:
    """The JSON `ray start --resources=...` takes, whole amounts written as integers."""
    return json.dumps({name: int(v) if float(v).is_integer() else v for name, v in resources.items()})


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)
