"""One page per model: its architecture from the spec, then per platform the charts and the full table.

In the table the best value of each column among verified rows is bold; a `fail` row is marked and
followed by a detail row with the checks that failed; a stale row (an older spec, changed code or
tolerances) is marked and says why; a row made from an uncommitted tree says so beside its name; a cell
that did not run shows its status and reason instead of figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from arena.families import load_family
from arena.families.base import WORKLOADS
from arena.results import roofline
from arena.results.machine import MachinePeak
from arena.results.report import format_bytes, format_ms, peak_memory, verdict_label
from arena.results.schema import MIN_SAMPLES_FOR_CI, WorkloadMetrics
from arena.site import charts
from arena.site.collect import Entry, by_group, describe_platform, group_title, label, median_ms, output_error
from arena.site.html import block, caveat_lines, esc, md, slug, table, tag
from arena.specs import ModelSpec

COLUMNS = ("framework (version, backend)", "prepare", "inference (p10–p90)", "latency", "training", "throughput", "GFLOP/s", "of roof", "peak memory", "verdict")
WORKLOAD_SHORT = {"inference": "inf", "latency": "lat", "training": "train"}


def _prepare(e: Entry) -> float | None:
    p = e.result.metrics.prepare
    return p.total_ms if p else None


def _inference(e: Entry, field: str) -> float | None:
    w = e.result.metrics.inference
    return getattr(w, field) if w and w.status == "ok" else None


# The numeric columns: how to read each from an entry, and whether lower or higher is better.
METRICS: dict[str, tuple[Callable[[Entry], float | None], Callable]] = {
    "prepare": (_prepare, min),
    "inference": (lambda e: median_ms(e, "inference"), min),
    "latency": (lambda e: median_ms(e, "latency"), min),
    "training": (lambda e: median_ms(e, "training"), min),
    "throughput": (lambda e: _inference(e, "throughput"), max),
    "gflops": (lambda e: _inference(e, "gflops_per_s"), max),
    "memory": (lambda e: peak_memory(e.result.metrics)[0], min),
}


def page(model: str, spec: ModelSpec | None, entries: Sequence[Entry], colors: dict[str, str], machines: dict[str, MachinePeak] | None = None) -> str:
    # The results table is wide: give it the table-of-contents column too.
    lines = ["---", "hide: [toc]", "---", "", f"# {md(model)}", ""]
    lines += architecture(spec) if spec else [f"No spec named {md(model)} in the specs folder: these results cannot be checked against one.", ""]
    for group, members in by_group(entries).items():
        peak = (machines or {}).get(group[0])
        placed = {e.path: roofline.place(e.result, spec, peak) for e in members} if peak and spec else {}
        lines += [f"## {md(group_title(group))} {{#{slug('-'.join(group))}}}", "", md(describe_platform(members[0].result)), ""]
        lines += ["**Median time per call**, verified results; hover a bar for the spread.", "", block(bars_chart(members, colors), class_="arena-figure")]
        lines += ["**Speed against numerical error**: the largest absolute difference of the inference outputs from the reference; a cross is a `fail`.", "",
                  block(error_chart(members, colors), class_="arena-figure")]
        if peak:
            lines += [peak_text(peak, {e.result.threads for e in members}), "", block(roofline_chart(members, placed, peak, colors), class_="arena-figure")]
        lines += [block(results_table(members, placed), class_="arena-table"), ""]
    return "\n".join(lines)


def peak_text(peak: MachinePeak, threads: set[int]) -> str:
    counts = sorted(threads & peak.thread_counts())
    figures = "; ".join(f"{n} thread{'s' if n > 1 else ''}: GEMM {peak.gemm_gflops(n):,.0f} GFLOP/s ({md(peak.best_gemm(n).library.split(' (')[0])}), "
                        f"triad {peak.bandwidth_gb_s(n):,.1f} GB/s" for n in counts)
    return (f"**Against this machine's measured peak** ({md(peak.cpu_model)}, {md(', '.join(peak.isa))}; the best of the fp32 GEMMs at hand and a STREAM triad, "
            f"measured {md(peak.measured[:10])}: {figures or 'not on these results’ thread counts'}). Each point is one workload of a verified result at its "
            "arithmetic intensity (its FLOPs over the bytes of weights it must read at least); the dashed line is the roof, the lower of the "
            "GEMM peak and bandwidth × intensity. The table's *of roof* column gives each workload's share of it "
            "([methodology](../methodology.md#roofline)).")


def roofline_chart(entries: Sequence[Entry], placed: dict, peak: MachinePeak, colors: dict[str, str]) -> str:
    points = [charts.Point(f"{label(e.result)} {WORKLOAD_SHORT[p.workload]}", p.intensity, p.achieved_gflops, colors[e.result.framework], f"{label(e.result)}, {p.describe()}")
              for e in entries if e.verified for p in placed.get(e.path, [])]
    roofs = [charts.Roof(f"{n} thread(s): GEMM {peak.gemm_gflops(n):,.1f} GFLOP/s, triad {peak.bandwidth_gb_s(n):,.1f} GB/s", peak.gemm_gflops(n), peak.bandwidth_gb_s(n))
             for n in sorted({e.result.threads for e in entries if e.verified} & peak.thread_counts())]
    return charts.scatter(points, "roofline: GFLOP/s against arithmetic intensity", "FLOP per byte of weights (log)", "GFLOP/s (log)",
                          x_fmt=lambda t: f"{t:g}", y_fmt=lambda t: f"{t:g}", roofs=roofs)


# ---- architecture ---------------------------------------------------------------------------------


def architecture(spec: ModelSpec) -> list[str]:
    """Family, reference, the full preset's config, its size and FLOPs per workload (from the family module)."""
    preset = spec.presets["full"]
    family = load_family(spec.family)
    values = roofline.state_dict_values(spec, "full")
    config_rows = [tag("tr", tag("td", tag("code", esc(k))) + tag("td", esc("—" if v is None else v))) for k, v in preset.config.model_dump().items()]
    workload_rows = []
    for w in WORKLOADS:
        count, unit = family.work_items(preset.workloads, w)
        workload_rows.append(tag("tr", tag("td", w) + tag("td", f"{family.flops(preset.config, preset.workloads, w) / 1e9:,.1f}") + tag("td", esc(f"{count:g} {unit}"))))
    return [
        "## Architecture {#architecture}",
        "",
        md(spec.description),
        "",
        f"Family **{md(spec.family)}** · reference: {md(spec.reference)} · "
        f"**{values / 1e6:,.1f} M** values in the state dict (parameters and buffers) · "
        f"workload sizes and tolerances: [methodology](../methodology.md#{slug(spec.name)})",
        "",
        block(table(("config field (full preset)", "value"), config_rows), class_="arena-table"),
        block(table(("workload", "GFLOP per call", "items per call"), workload_rows), class_="arena-table"),
        "",
    ]


# ---- charts ---------------------------------------------------------------------------------------


def bars_chart(entries: Sequence[Entry], colors: dict[str, str]) -> str:
    """Median time per workload, one bar per verified framework (log scale where the range is wide)."""
    groups = []
    for w in WORKLOADS:
        timed = sorted((e for e in entries if e.verified and median_ms(e, w) is not None), key=lambda e: median_ms(e, w))
        bars = [charts.Bar(label(e.result), median_ms(e, w), colors[e.result.framework], f"{label(e.result)}, {w}: {_stats_title(getattr(e.result.metrics, w))}") for e in timed]
        if bars:
            groups.append((w, bars))
    return charts.grouped_bars(groups, "median time per workload and framework")


def error_chart(entries: Sequence[Entry], colors: dict[str, str]) -> str:
    """Inference time against the largest absolute output error; failed results are crosses."""
    points = []
    for e in entries:
        t, err = median_ms(e, "inference"), output_error(e)
        if t is None or not err or e.stale or e.result.status != "ok":
            continue  # the reference itself has no error; a stale result's numbers are not comparable
        r = e.result
        points.append(charts.Point(label(r), t, err, colors[r.framework], f"{label(r)}: {format_ms(t)}, max abs error {err:.2e} ({verdict_label(r)})", r.correctness.verdict == "fail"))
    return charts.scatter(points, "inference time against numerical error", "inference median (log)", "max abs error (log)")


# ---- table ----------------------------------------------------------------------------------------


def results_table(entries: Sequence[Entry], placed: dict | None = None) -> str:
    """`placed`: each entry's workloads under its machine's roof, by the entry's path (none: no peak measured)."""
    best = {name: pick([v for e in entries if e.verified and (v := read(e)) is not None]) for name, (read, pick) in METRICS.items() if any(e.verified and read(e) is not None for e in entries)}
    order = sorted(entries, key=_row_order)
    return table(COLUMNS, [row for e in order for row in rows(e, best, (placed or {}).get(e.path, []))])


def _row_order(e: Entry) -> tuple:
    """Verified rows fastest first, then the other measured rows (failed, unverified, stale), then cells that did not run."""
    rank = 0 if e.verified else 1 if e.result.status == "ok" else 2
    return rank, median_ms(e, "inference") or math.inf, e.result.framework


def rows(e: Entry, best: dict[str, float], placed: Sequence[roofline.Placement] = ()) -> list[str]:
    """The entry's row, plus a detail row for a failed verdict or a stale result."""
    r = e.result
    about = ", ".join(x for x in (r.framework_version, r.backend) if x)
    first = tag("td", esc(label(r)) + uncommitted_mark(e) + ("<br>" + tag("small", esc(about)) if about else ""))
    if r.status != "ok":
        main = tag("tr", first + tag("td", tag("strong", esc(r.status)) + " — " + esc(e.reason), colspan=len(COLUMNS) - 1), class_=f"arena-status arena-{r.status}")
        return [main]
    cells = [
        tag("td", _value(e, "prepare", best, format_ms), title=_prepare_title(e)),
        _workload(e, "inference", best, spread=True),
        _workload(e, "latency", best),
        _workload(e, "training", best),
        tag("td", _value(e, "throughput", best, lambda v: f"{v:,.1f} {r.metrics.inference.throughput_unit}")),
        tag("td", _value(e, "gflops", best, lambda v: f"{v:,.1f}")),
        tag("td", "<br>".join(f"{WORKLOAD_SHORT[p.workload]} {p.fraction:.0%}" for p in placed) or "—", title="\n".join(p.describe() for p in placed)),
        tag("td", _value(e, "memory", best, lambda v: format_bytes(int(v)) + (" dev" if peak_memory(r.metrics)[1] else "")), title=_memory_title(e)),
        tag("td", tag("span", esc(("✗ " if r.correctness.verdict == "fail" else "") + verdict_label(r)), title=verdict_title(e), class_="arena-verdict") + _error_note(e)),
    ]
    classes = " ".join(c for c, on in (("arena-fail", r.correctness.verdict == "fail"), ("arena-stale", bool(e.stale))) if on)
    out = [tag("tr", first + "".join(cells), class_=classes)]
    details = [*(_failed_checks(e) if r.correctness.verdict == "fail" else []), *([f"Stale: {esc(e.stale)}; not ranked."] if e.stale else [])]
    if details:
        out.append(tag("tr", tag("td", "<br>".join(details), colspan=len(COLUMNS)), class_="arena-detail"))
    return out


def uncommitted_mark(e: Entry) -> str:
    """A mark beside the name of a result made from a working tree with uncommitted changes."""
    if not e.uncommitted:
        return ""
    why = f"arena {e.result.system.arena_commit}: the working tree had uncommitted changes, so the commit alone does not say which code ran"
    return " " + tag("small", "uncommitted tree", title=why, class_="arena-uncommitted")


def _value(e: Entry, metric: str, best: dict[str, float], fmt: Callable[[float], str]) -> str:
    """The formatted figure, bold where it is the column's best among verified rows."""
    value = METRICS[metric][0](e)
    if value is None:
        return "—"
    shown = esc(fmt(value))
    return tag("strong", shown) if e.verified and best.get(metric) == value else shown


def _workload(e: Entry, workload: str, best: dict[str, float], spread: bool = False) -> str:
    w: WorkloadMetrics | None = getattr(e.result.metrics, workload)
    if w is None:
        return tag("td", "—")
    if w.status != "ok" or w.stats is None:
        return tag("td", tag("span", esc(w.status), title=w.reason, class_="arena-reason"))
    s = w.stats
    # p10–p90 of fewer than MIN_SAMPLES_FOR_CI calls would be an interpolation between two or three
    # values: the caveat that takes its place says how many there were.
    spread_note = "<br>" + tag("small", esc(f"{format_ms(s.p10_ms)}–{format_ms(s.p90_ms)}")) if spread and not s.low_sample else ""
    return tag("td", _value(e, workload, best, format_ms) + spread_note + caveat_lines(s), title=_stats_title(w))


def _stats_title(w: WorkloadMetrics | None) -> str:
    if w is None or w.stats is None:
        return ""
    s = w.stats
    calls = _count(s.n, "call") + (f" after {_count(len(w.warmup_ms), 'warm-up')}" if w.warmup_ms else "")
    problems = f"; problems: {'; '.join(w.problems)}" if w.problems else ""
    if s.low_sample:
        values = ", ".join(format_ms(v) for v in s.samples_ms)
        return f"median {format_ms(s.median_ms)} of {calls}: {values}; no confidence interval under {MIN_SAMPLES_FOR_CI} calls{problems}"
    return (f"median {format_ms(s.median_ms)} over {calls}: 95 % CI of the median {format_ms(s.ci95_low_ms)}–{format_ms(s.ci95_high_ms)}, "
            f"p10 {format_ms(s.p10_ms)}, p90 {format_ms(s.p90_ms)}, CV {s.cv:.1%}{problems}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("s" if n != 1 else "")


def _memory_title(e: Entry) -> str:
    """Each workload's peak, and the whole process's (which also counts the lab's own copies)."""
    m = e.result.metrics
    parts = [f"{w} {format_bytes(x.peak_device_memory_bytes)} dev" if x.peak_device_memory_bytes else f"{w} {format_bytes(x.peak_rss_bytes)}"
             for w in WORKLOADS if (x := getattr(m, w)) and (x.peak_device_memory_bytes or x.peak_rss_bytes)]
    if m.prepare and m.prepare.peak_rss_bytes:
        parts.append(f"load and build {format_bytes(m.prepare.peak_rss_bytes)}")
    if m.peak_memory_bytes:
        parts.append(f"whole process {format_bytes(m.peak_memory_bytes)} (with the weights load and build, and the comparison's copies of the outputs)")
    return ", ".join(parts)


def _prepare_title(e: Entry) -> str:
    p = e.result.metrics.prepare
    if p is None:
        return ""
    parts = [f"load {format_ms(p.load_ms)}", f"build {format_ms(p.build_ms)}"] + ([f"first call {format_ms(p.first_call_ms)}"] if p.first_call_ms else [])
    if p.conversion:
        c = p.conversion
        parts.append(f"conversion ({c.tool}, not included) {format_ms(c.ms)}, {format_bytes(c.bytes)}" + (", cached" if c.cached else ""))
    return ", ".join(parts)


def verdict_title(e: Entry) -> str:
    """Every check with its figures, for the hover text."""
    c = e.result.correctness
    lines = [f"{check.name}: {'ok' if check.passed else 'FAILED'} " + ", ".join(f"{k} {v:.3g}" for k, v in check.figures.items()) + (f" ({check.detail})" if check.detail else "") for check in c.checks]
    notes = [n for n in (c.reason, c.tolerance_note and f"own output tolerance: {c.tolerance_note}", c.reference and f"reference: {c.reference}") if n]
    return "\n".join(lines + notes)


def _error_note(e: Entry) -> str:
    err = output_error(e)
    return "<br>" + tag("small", f"max abs {err:.1e}") if err else ""


def _failed_checks(e: Entry) -> list[str]:
    c = e.result.correctness
    failed = [f"{esc(ch.name)}: " + esc(", ".join(f"{k} {v:.3g}" for k, v in ch.figures.items()) + (f" — {ch.detail}" if ch.detail else "")) for ch in c.checks if not ch.passed]
    return ["<strong>fail</strong>: " + esc(c.reason or "a check failed"), *failed]
