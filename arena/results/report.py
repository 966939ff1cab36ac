"""The terminal summary: one table per model and preset."""

from __future__ import annotations

from itertools import groupby

from arena.families.base import WORKLOADS
from arena.frameworks.contract import REFERENCE_FRAMEWORK
from arena.results.schema import Conversion, Metrics, Result, WorkloadMetrics
from arena.results.stats import caveats

COLUMNS = ("framework", "device", "status", "convert", "prepare", "inference", "latency", "training", "GFLOP/s", "peak mem", f"× {REFERENCE_FRAMEWORK}", "verdict")


def print_summary(results: list[Result], out=print) -> None:
    """One table per model and preset, and per machine when the results come from several (a cluster run)."""
    platforms = {r.system.platform_id for r in results}
    key = lambda r: (r.model, r.preset, r.system.platform_id)  # noqa: E731
    for (model, preset, platform), group in groupby(sorted(results, key=key), key=key):
        group = sorted(group, key=lambda r: (r.framework != REFERENCE_FRAMEWORK, r.framework, r.device, r.dtype))
        # ratios are to the reference framework on the same device and dtype
        baselines = {(r.device, r.dtype): r for r in group if r.framework == REFERENCE_FRAMEWORK}
        rows = [_row(r, baselines.get((r.device, r.dtype))) for r in group]
        widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(COLUMNS)]
        out(f"\n{model} ({preset})" + (f" on {platform}" if len(platforms) > 1 else ""))
        out("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
        out("  ".join("-" * w for w in widths))
        for row in rows:
            out("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    problems = [r for r in results if r.status not in ("ok", "unsupported", "unavailable", "not_run") or r.correctness.verdict == "fail"]
    for r in problems:
        reason = r.reason or r.correctness.reason
        out(f"  ! {r.model}/{r.preset}/{r.framework}@{r.device}: {r.status}/{r.correctness.verdict}: {reason[:300]}")


def _row(r: Result, baseline: Result | None) -> list[str]:
    m = r.metrics
    gflops = m.inference.gflops_per_s if m.inference and m.inference.gflops_per_s else None
    return [
        r.framework,
        r.device,
        r.status,
        _conversion(m.prepare.conversion if m.prepare else None),
        format_ms(m.prepare.total_ms) if m.prepare else "—",
        format_workload(m.inference),
        format_workload(m.latency),
        format_workload(m.training),
        f"{gflops:.1f}" if gflops else "—",
        format_peak_memory(m),
        format_ratios(r, baseline),
        verdict_label(r),
    ]


def verdict_label(r: Result) -> str:
    """The verdict, marked where the cell was judged by its framework's own declared output tolerance."""
    return r.correctness.verdict + (" (own output tol.)" if r.correctness.tolerance_note else "")


def ratio_to(r: Result, baseline: Result | None, workload: str) -> float | None:
    """Median time relative to the baseline's (2.0 = twice as slow); None where either has no median."""
    mine = getattr(r.metrics, workload, None)
    theirs = getattr(baseline.metrics, workload, None) if baseline else None
    if not (mine and theirs and mine.stats and theirs.stats):
        return None
    return mine.stats.median_ms / theirs.stats.median_ms


def format_ratios(r: Result, baseline: Result | None) -> str:
    if baseline is None or r is baseline:
        return "—"
    ratios = [ratio_to(r, baseline, w) for w in WORKLOADS]
    return " / ".join(f"{x:.2f}" if x is not None else "—" for x in ratios)


def _conversion(c: Conversion | None) -> str:
    """The one-off conversion a deployment runtime needs (ONNX export, GGUF writing), apart from prepare."""
    return "—" if c is None else format_ms(c.ms) + (" (cached)" if c.cached else "")


def format_workload(w: WorkloadMetrics | None) -> str:
    if w is None:
        return "—"
    if w.status != "ok" or w.stats is None:
        return w.status
    notes = caveats(w.stats)
    return format_ms(w.stats.median_ms) + (f" ({'; '.join(notes)})" if notes else "") + (" !" if w.problems else "")


def format_ms(ms: float) -> str:
    return f"{ms / 1e3:.2f} s" if ms >= 1e4 else f"{ms:.1f} ms" if ms >= 1 else f"{ms * 1e3:.0f} µs"


def peak_memory(m: Metrics) -> tuple[int | None, bool]:
    """The framework's peak over its workloads: the accelerator's where the cell ran on one (True), else the
    process's resident peak while a workload ran (False).

    Not the whole process's high-water mark (`peak_memory_bytes`, kept in the result): that one also counts
    what the lab does around the workloads, in amounts that differ between frameworks: the numpy weights
    held while the model is built, and the comparison's numpy copies of each workload's outputs, made while
    the framework still holds them (free where `.numpy()` shares memory, as torch's does on the CPU; a
    second set of SD-1.5 gradients, 3.2 GiB, where it copies). A result without workload peaks (none
    recorded) falls back to it."""
    workloads = [x for w in WORKLOADS if (x := getattr(m, w))]
    device = max((w.peak_device_memory_bytes or 0 for w in workloads), default=0)
    if device:
        return device, True
    return max((w.peak_rss_bytes or 0 for w in workloads), default=0) or m.peak_memory_bytes, False


def format_peak_memory(m: Metrics) -> str:
    value, on_device = peak_memory(m)
    return format_bytes(value) + (" dev" if on_device else "")


def format_bytes(n: int | None) -> str:
    return f"{n / 2**30:.2f} GiB" if n else "—"
