"""The terminal summary: one table per model and preset."""

from __future__ import annotations

from itertools import groupby

from arena.results.schema import Result, WorkloadMetrics

COLUMNS = ("framework", "device", "status", "prepare", "inference", "latency", "training", "GFLOP/s", "peak mem", "verdict")


def print_summary(results: list[Result], out=print) -> None:
    key = lambda r: (r.model, r.preset)  # noqa: E731
    for (model, preset), group in groupby(sorted(results, key=key), key=key):
        rows = [_row(r) for r in group]
        widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(COLUMNS)]
        out(f"\n{model} ({preset})")
        out("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
        out("  ".join("-" * w for w in widths))
        for row in rows:
            out("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    problems = [r for r in results if r.status not in ("ok", "unsupported", "unavailable") or r.correctness.verdict == "fail"]
    for r in problems:
        reason = r.reason or r.correctness.reason
        out(f"  ! {r.model}/{r.preset}/{r.framework}@{r.device}: {r.status}/{r.correctness.verdict}: {reason[:300]}")


def _row(r: Result) -> list[str]:
    m = r.metrics
    gflops = m.inference.gflops_per_s if m.inference and m.inference.gflops_per_s else None
    return [
        r.framework,
        r.device,
        r.status,
        _ms(m.prepare.total_ms) if m.prepare else "—",
        _workload(m.inference),
        _workload(m.latency),
        _workload(m.training),
        f"{gflops:.1f}" if gflops else "—",
        _peak_memory(m),
        r.correctness.verdict,
    ]


def _workload(w: WorkloadMetrics | None) -> str:
    if w is None:
        return "—"
    if w.status != "ok" or w.stats is None:
        return w.status
    spread = f" ±{w.stats.cv:.0%}" if w.stats.cv >= 0.05 else ""
    return _ms(w.stats.median_ms) + spread + (" !" if w.problems else "")


def _ms(ms: float) -> str:
    return f"{ms / 1e3:.2f} s" if ms >= 1e4 else f"{ms:.1f} ms" if ms >= 1 else f"{ms * 1e3:.0f} µs"


def _peak_memory(m) -> str:
    """The accelerator's peak where the cell ran on one, else the process's resident peak."""
    device = max((w.peak_device_memory_bytes or 0 for w in (m.inference, m.latency, m.training) if w), default=0)
    return f"{_bytes(device)} dev" if device else _bytes(m.peak_memory_bytes)


def _bytes(n: int | None) -> str:
    return f"{n / 2**30:.2f} GiB" if n else "—"
