"""Each result set against its machine's measured peak (arena/run/peak.py): a roofline.

A call of a workload does `flops` floating-point operations (the result records them) and must move at
least the model's weights through memory: once for a forward pass, three times for a training step
(read forward, read backward, one gradient written per weight). Activations and the KV cache come on
top, so this is the least traffic a call can have: its arithmetic intensity (FLOP per byte) is an upper
bound, and so is the roof drawn from it.

The roof at an intensity is what the machine allows there: the GEMM peak, or the memory bandwidth times
the intensity, whichever is lower, both measured on the result's own thread count. Below the machine's
balance point (GEMM peak / bandwidth) a call is memory-bound (a decode step: every weight read for one
token), above it compute-bound (a prompt, a batch of images). The fraction of the roof is the result's
GFLOP/s over it: 100 % is the best the measured GEMMs reach, and a framework passes it only where its
own kernels beat all of them (or do fewer FLOPs than the analytic count, as a Winograd convolution does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from arena.families import load_family
from arena.families.base import WORKLOADS
from arena.results.schema import Result
from arena.results.machine import MachinePeak
from arena.specs import ModelSpec

# Passes over the weights a call makes at least (see above).
WEIGHT_PASSES = {"inference": 1, "latency": 1, "training": 3}
BYTES_PER_VALUE = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class Placement:
    """Where one workload of one result stands under its machine's roof."""

    workload: str
    intensity: float  # FLOP per byte of the least traffic
    achieved_gflops: float
    roof_gflops: float
    bound: str  # "memory" or "compute": which roof limits a call of this intensity

    @property
    def fraction(self) -> float:
        return self.achieved_gflops / self.roof_gflops

    def describe(self) -> str:
        return (f"{self.workload}: {self.achieved_gflops:,.1f} GFLOP/s = {self.fraction:.0%} of the {self.bound} roof "
                f"{self.roof_gflops:,.1f} GFLOP/s at {self.intensity:,.2f} FLOP/byte")


def state_dict_values(spec: ModelSpec, preset: str) -> int:
    """How many values the state dict holds at the preset (parameters and buffers)."""
    shapes = load_family(spec.family).parameter_shapes(spec.presets[preset].config)
    return sum(math.prod(shape) for shape in shapes.values())


def weight_bytes(spec: ModelSpec, preset: str, dtype: str) -> int:
    """The state dict's size at the preset in the cell's dtype."""
    return state_dict_values(spec, preset) * BYTES_PER_VALUE[dtype]


def roof(machine: MachinePeak, threads: int, intensity: float) -> tuple[float, str] | None:
    """The attainable GFLOP/s at an intensity on `threads` threads and what bounds it (None: not measured)."""
    gemm, bandwidth = machine.gemm_gflops(threads), machine.bandwidth_gb_s(threads)
    if gemm is None or bandwidth is None:
        return None
    memory = intensity * bandwidth
    return (memory, "memory") if memory < gemm else (gemm, "compute")


def place(result: Result, spec: ModelSpec, machine: MachinePeak) -> list[Placement]:
    """Each measured workload of a result under the roof of its machine (none for a GPU cell: the
    probe measures the CPU, or for a thread count the probe did not run)."""
    if result.device != "cpu" or result.dtype not in BYTES_PER_VALUE or result.preset not in spec.presets:
        return []
    moved = weight_bytes(spec, result.preset, result.dtype)
    placed = []
    for workload in WORKLOADS:
        w = getattr(result.metrics, workload)
        if w is None or w.status != "ok" or not w.flops or not w.gflops_per_s:
            continue
        intensity = w.flops / (moved * WEIGHT_PASSES[workload])
        found = roof(machine, result.threads, intensity)
        if found:
            placed.append(Placement(workload, intensity, w.gflops_per_s, *found))
    return placed
