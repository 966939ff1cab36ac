"""`python -m arena.site.readme [RESULTS_DIR ...] [--readme README.md]`: the README's figures, rendered from result files.

The README is hand-written prose around generated blocks, each between `<!-- name -->` and
`<!-- /name -->`: `results` holds the measured tables (a section per machine and preset, a table per
model), `frameworks` is the hand-written frameworks table whose `version` column is filled from the
results, and `catch-table` is written by `python -m tests.bugs.table`. tests/site/test_readme.py renders
the blocks from results/ and fails when the README's differ, so a figure is never typed. A stale result
(older spec, changed code or tolerances) is listed, marked, without rank or ratio, as on the site.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

from arena.errors import ArenaError
from arena.frameworks.contract import REFERENCE_FRAMEWORK
from arena.results.compare import worst_margin
from arena.results.report import format_peak_memory, format_ratios, format_workload, verdict_label
from arena.site.collect import Entry, by_group, describe_platform, group_title, label, load_entries, ranked
from arena.specs import DEFAULT_SPECS_DIR, load_specs

README = Path(__file__).resolve().parents[2] / "README.md"
COLUMNS = ("#", "framework", "status", "inference", "latency", "training", "× torch eager", "GFLOP/s", "peak memory", "verdict", "worst margin")
LEGEND = (
    "Median time of the timed calls per workload (what each is: [What is measured](#what-is-measured)); "
    "× torch eager: each median ÷ torch eager's on the same machine, device and dtype (2.0 = twice as slow); "
    "GFLOP/s of inference from the family's analytic FLOPs; peak memory: the resident peak while a workload ran, "
    "the largest of the three (dev: the accelerator's; the whole process's, with the lab's own copies of weights "
    "and outputs, is in each result); worst margin: the largest error ÷ tolerance over the verdict's checks (under 1 passes). "
    "`#` ranks the verified results (`pass` or `reference`, current spec and code) by inference time; a stale result "
    "is listed without rank or ratio. Every figure comes from `results/`: `python -m arena.site.readme` writes this block."
)
REASON_CHARS = 160  # a cell that did not run says why, briefly; the site has the whole reason


# ---- blocks ---------------------------------------------------------------------------------------


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {re.escape(name)} -->\n)(.*?)(<!-- /{re.escape(name)} -->)", re.S)


def read_block(text: str, name: str) -> str:
    found = _block(name).search(text)
    if not found:
        raise ArenaError(f"the README has no <!-- {name} --> … <!-- /{name} --> block")
    return found[2]


def replace_block(text: str, name: str, body: str) -> str:
    """The text with the block's content replaced by `body` (the markers stay)."""
    read_block(text, name)  # a missing block is an error, never a silent no-op
    return _block(name).sub(lambda m: m[1] + body + m[3], text, count=1)


def render(text: str, entries: Sequence[Entry]) -> str:
    """The README text with its `results` and `frameworks` blocks rendered from the entries."""
    text = replace_block(text, "results", results_markdown(entries))
    return replace_block(text, "frameworks", with_versions(read_block(text, "frameworks"), versions(entries)))


# ---- the measured tables --------------------------------------------------------------------------


def results_markdown(entries: Sequence[Entry]) -> str:
    lines = [LEGEND, ""]
    if not entries:
        lines += ["No results yet: `python -m arena` writes them under `results/`.", ""]
    for group, members in by_group(entries).items():
        lines += [f"### {cell(group_title(group))}", "", about(members), ""]
        for model, rows in groupby(sorted(members, key=lambda e: e.result.model), key=lambda e: e.result.model):
            lines += [f"#### {cell(model)}", "", *model_table(list(rows)), ""]
    return "\n".join(lines)


def about(entries: Sequence[Entry]) -> str:
    """The machine, how many results and when, and what is stale among them."""
    results = [e.result for e in entries]
    days = sorted(r.created[:10] for r in results)
    threads = "/".join(str(t) for t in sorted({r.threads for r in results}))
    line = cell(f"{describe_platform(results[0])} · {threads} threads · {len(results)} results made {days[0]}" + (f" – {days[-1]}" if days[-1] != days[0] else ""))
    stale = Counter(stale_kind(e.stale) for e in entries if e.stale)
    if stale:
        kinds = "; ".join(f"{kind} ({n})" for kind, n in stale.items())
        line += f". **{stale.total()} stale**, listed without rank or ratio until re-run: {cell(kinds)}"
    return line + "."


def stale_kind(note: str) -> str:
    """The kind of staleness without its particulars (hashes, changed paths): these change with every
    edit, and the README would then change with them; the site gives the whole note."""
    return note.split(":")[0].split(" (")[0]


def model_table(entries: Sequence[Entry]) -> list[str]:
    """The ranked results fastest first, then the rest by name (stale, failed, unverified; then cells that did not run)."""
    order = ranked(entries)
    rank = {id(e): i for i, e in enumerate(order, 1)}
    order += sorted((e for e in entries if id(e) not in rank), key=lambda e: (e.result.status != "ok", label(e.result)))
    baselines = {(e.result.device, e.result.dtype): e.result for e in entries if e.result.framework == REFERENCE_FRAMEWORK and not e.stale}
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for e in order:
        r, m = e.result, e.result.metrics
        ran = r.status == "ok"
        gflops = m.inference.gflops_per_s if ran and m.inference and m.inference.gflops_per_s else None
        margin = worst_margin(r.correctness.checks)
        baseline = None if e.stale else baselines.get((r.device, r.dtype))
        row = [
            str(rank.get(id(e), "")),
            label(r),
            r.status + (" · stale" if e.stale else "") + (" · uncommitted tree" if e.uncommitted else ""),
            *(format_workload(getattr(m, w)) if ran else "—" for w in ("inference", "latency", "training")),
            format_ratios(r, baseline) if ran else "—",
            f"{gflops:.1f}" if gflops else "—",
            format_peak_memory(m) if ran else "—",
            verdict_label(r) if ran else brief(e.reason),
            f"{margin:.2g}" if margin is not None else "—",
        ]
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return lines


def brief(reason: str) -> str:
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"


def cell(text: str) -> str:
    """Text from a result file, safe inside a Markdown table: one line, no Markdown or HTML syntax."""
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", " ".join(str(text).split()))


# ---- the frameworks table's versions --------------------------------------------------------------


def versions(entries: Sequence[Entry]) -> dict[str, str]:
    """Per framework, the version it reported; where machines ran different ones, each with its machines."""
    seen: dict[str, dict[str, set[str]]] = {}
    for e in entries:
        if e.result.status == "ok" and e.result.framework_version:  # the version that made the figures
            seen.setdefault(e.result.framework, {}).setdefault(e.result.framework_version, set()).add(e.result.system.platform_id)
    return {framework: next(iter(by_version)) if len(by_version) == 1 else
            ", ".join(f"{v} ({', '.join(sorted(platforms))})" for v, platforms in sorted(by_version.items()))
            for framework, by_version in seen.items()}


def with_versions(table: str, found: dict[str, str]) -> str:
    """The hand-written frameworks table with its `version` column rewritten: a row's first cell names
    the framework (`torch`); a framework without results gets "—"."""
    lines = table.rstrip("\n").split("\n")
    column = row_cells(lines[0]).index("version")
    out = lines[:2]
    for line in lines[2:]:
        cells = row_cells(line)
        cells[column] = cell(found.get(cells[0].strip("`"), "—"))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def row_cells(row: str) -> list[str]:
    """A Markdown table row's cells (an escaped `\\|` stays inside its cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


# ---- command --------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m arena.site.readme", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("results", nargs="*", type=Path, default=[Path("results")], help="results folders (default: results)")
    parser.add_argument("--readme", type=Path, default=README, help="the README to write into (default: this repository's)")
    parser.add_argument("--specs", type=Path, default=DEFAULT_SPECS_DIR, help="the model specs the results are checked against")
    args = parser.parse_args(argv)
    try:
        entries = load_entries(args.results, load_specs(args.specs))
        text = args.readme.read_text()
        rendered = render(text, entries)
    except ArenaError as err:
        print(f"arena.site.readme: error: {err}", file=sys.stderr)
        return 1
    args.readme.write_text(rendered)
    stale = sum(1 for e in entries if e.stale)
    print(f"{len(entries)} results ({stale} stale) → {args.readme}" + ("" if rendered != text else " (unchanged)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
