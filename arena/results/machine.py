"""A machine's measured peaks, as kept beside its results (`<results>/<platform>/machine.json`), written
by arena/run/peak.py and read by the site (arena/results/roofline.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from arena.errors import ArenaError

FILE = "machine.json"
# Bumped whenever what is measured, or how, changes: a file of another version is measured again.
PROBE_VERSION = 3


class GemmPeak(BaseModel):
    library: str = Field(description="whose GEMM, with its version and kernels (arena/run/peak.py gemm_timers)")
    threads: int
    n: int = Field(description="square size of the best call")
    gflops_per_s: float


class Bandwidth(BaseModel):
    threads: int
    bytes_per_array: int
    gb_per_s: float = Field(description="STREAM triad: 3 arrays' bytes per call / best call time")


class MachinePeak(BaseModel):
    """What this platform can do at best, by thread count: the roof every result is set against."""

    probe_version: int
    platform_id: str
    cpu_model: str
    isa: list[str] = Field(description="the kernel-selecting ISA extensions the CPU reports")
    torch_cpu_capability: str = Field(description="the kernel level PyTorch dispatches to on this CPU")
    gemm: list[GemmPeak]
    triad: list[Bandwidth]
    measured: str
    arena_commit: str
    torch_version: str

    def best_gemm(self, threads: int) -> GemmPeak | None:
        """The fastest GEMM measured on `threads` threads (None: not measured at that count)."""
        return max((g for g in self.gemm if g.threads == threads), key=lambda g: g.gflops_per_s, default=None)

    def gemm_gflops(self, threads: int) -> float | None:
        best = self.best_gemm(threads)
        return best.gflops_per_s if best else None

    def bandwidth_gb_s(self, threads: int) -> float | None:
        found = [b.gb_per_s for b in self.triad if b.threads == threads]
        return max(found) if found else None

    def thread_counts(self) -> set[int]:
        return {g.threads for g in self.gemm} & {b.threads for b in self.triad}


def path_for(results_dir: Path, platform_id: str) -> Path:
    return results_dir / platform_id / FILE


def load(path: Path) -> MachinePeak | None:
    """The kept figures, or None where there are none of this probe's version (an unreadable file is an
    error naming it: it is in the results, which a user edits and commits)."""
    if not path.exists():
        return None
    try:
        found = MachinePeak.model_validate_json(path.read_text())
    except ValueError as err:
        raise ArenaError(f"{path}: not a machine peak file ({str(err).splitlines()[0]}); delete it to measure again") from None
    return found if found.probe_version == PROBE_VERSION else None
