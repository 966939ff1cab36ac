"""Progress lines with an ETA, the same for a local run and a run spread over a cluster."""

from __future__ import annotations

import time
from collections.abc import Callable

from arena.results.schema import Result
from arena.run.cell import Cell


class Progress:
    """Counts settled cells (kept or finished) and estimates the rest from the mean cell time.

    `parallel` is how many cells run at once (1 locally; the serving nodes of a cluster), so the ETA
    of a cluster run divides the remaining work among them.
    """

    def __init__(self, total: int, log: Callable[[str], None], parallel: int = 1):
        self.total, self.log, self.parallel = total, log, max(parallel, 1)
        self.done = 0
        self.durations: list[float] = []
        self.started_at = time.monotonic()

    def kept(self, cell: Cell, result: Result) -> None:
        self.done += 1
        self.log(f"{bar(self.done, self.total)} {cell.id}: kept ({result.status}, {result.correctness.verdict}) from run {result.run_id}")

    def running(self, cell: Cell, deadline_s: float, where: str = "") -> None:
        self.log(f"{bar(self.done, self.total)} {cell.id}: running{where} (deadline {deadline_s:g} s)")

    def finished(self, cell: Cell, result: Result, seconds: float, where: str = "") -> None:
        self.done += 1
        self.durations.append(seconds)
        eta = (self.total - self.done) * (sum(self.durations) / len(self.durations)) / self.parallel
        self.log(f"{bar(self.done, self.total)} {cell.id}: {result.status}, {result.correctness.verdict}{where} "
                 f"({seconds:.1f}s; elapsed {clock(time.monotonic() - self.started_at)}, ETA {clock(eta)})"
                 + (f" — {result.reason[:200]}" if result.reason else ""))


def bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else width
    return f"[{'█' * filled}{'░' * (width - filled)}] {done}/{total}"


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
