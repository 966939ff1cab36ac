"""The framework x platform matrix: what runs where, and for everything that does not, why.

Categories (`collect.Entry.category`): runs (verified), unverified (ran, no verdict), failed (error,
timeout, crash or a `fail` verdict), unsupported (the framework cannot do this model or workload),
unavailable (not installed, or no working device on this machine), not run here (this machine was not
set up for the framework: the lab's limit, with the operator's reason, never the framework's). A cell of the matrix is one
framework on one platform; its squares are the models, and the note names the devices it used, which is
where a missing accelerator shows (a framework that ran on `cpu` on a GPU machine).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from arena.site import charts
from arena.site.collect import CATEGORIES, Entry, group_title
from arena.site.html import block, esc, md, table, tag


def page(entries: Sequence[Entry], models: Sequence[str]) -> str:
    columns = _columns(entries)
    lines = [
        "# Accessibility", "",
        "Which framework runs which model on which machine. Each square is one model "
        f"({md(', '.join(models))}, in that order); hover for the device and the reason.", "",
        block(chart(entries, models), class_="arena-figure"), "",
        "## Summary {#summary}", "",
        block(table(("framework", *columns), _summary_rows(entries, columns)), class_="arena-table"), "",
        "## Everything that does not run, with its reason {#reasons}", "",
    ]
    # Whole cells that do not run, then single workloads a running cell could not do (e.g. training).
    exceptions = [(e, e.category, e.reason) for e in entries if e.category != "runs"]
    exceptions += [(e, f"{workload} {status}", reason) for e in entries if e.result.status == "ok" for workload, status, reason in e.gaps]
    rows = [
        tag("tr", "".join(tag("td", esc(v)) for v in (e.result.framework, group_title(e.group), e.result.model, e.result.device, what, reason)))
        for e, what, reason in sorted(exceptions, key=lambda x: (x[0].result.framework, x[0].group, x[0].result.model, x[1]))
    ]
    lines.append(block(table(("framework", "platform", "model", "device", "what happened", "reason"), rows), class_="arena-table") if rows else "Every cell runs every workload and is verified.")
    return "\n".join(lines)


def chart(entries: Sequence[Entry], models: Sequence[str]) -> str:
    frameworks = sorted({e.result.framework for e in entries})
    columns = _columns(entries)
    cells: dict[tuple[str, str], list[charts.Square]] = {}
    devices: dict[tuple[str, str], set[str]] = {}
    by_cell = {(e.result.framework, group_title(e.group), e.result.model): e for e in entries}
    for fw in frameworks:
        for column in columns:
            for model in models:
                e = by_cell.get((fw, column, model))
                if e is None:
                    continue
                title = f"{model} on {column} ({e.result.device}): {e.category}" + (f": {e.reason}" if e.reason else "")
                cells.setdefault((fw, column), []).append(charts.Square(charts.CATEGORY_COLORS[e.category], title))
                if e.category in ("runs", "unverified", "failed"):
                    devices.setdefault((fw, column), set()).add(e.result.device)
    notes = {key: ", ".join(sorted(d)) for key, d in devices.items()}
    return charts.square_matrix(frameworks, columns, cells, notes, "framework by platform: what runs where")


def _columns(entries: Sequence[Entry]) -> list[str]:
    return sorted({group_title(e.group) for e in entries})


def _summary_rows(entries: Sequence[Entry], columns: Sequence[str]) -> list[str]:
    rows = []
    for fw in sorted({e.result.framework for e in entries}):
        counts = {c: Counter(e.category for e in entries if e.result.framework == fw and group_title(e.group) == c) for c in columns}
        cells = ["; ".join(f"{n} {cat}" for cat in CATEGORIES if (n := counts[c][cat])) or "—" for c in columns]
        rows.append(tag("tr", tag("td", esc(fw)) + "".join(tag("td", esc(x)) for x in cells)))
    return rows
