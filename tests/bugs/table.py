"""`python -m tests.bugs.table --preset tiny|full [--models ...]`: run every injected bug, write the catch table.

Each bug of tests/bugs/catalogue.py runs as its own cell (`tests.bugs-<bug>-<framework>`, every
workload, one call each and no timing loop: the verdict is what is measured here) for each model whose
family it applies to, and is judged against the PyTorch reference (computed once per model, cached).
The control, the same wrapper with nothing injected, runs first for each model and must pass: else the
run stops, since a `fail` would then prove nothing.
The rows go into site/partials/catch-table.json (the site's methodology page renders it) and the
README's catch-table block. `full` runs the published sizes: SD 1.5 UNet training and its ONNX export
alone take minutes, so expect an hour or more on a CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

from arena import weights
from arena.errors import ArenaError
from arena.results import catch
from arena.results.catch import INJECTED, CatchBug, CatchRow, CatchRun, CatchTable, checks_summary
from arena.results.schema import Result
from arena.run.config import RunConfig
from arena.run.orchestrate import measure_and_judge, plan
from arena.run.system import describe
from arena.site.readme import README, replace_block
from arena.specs import load_specs
from tests.bugs import CONTROL, applicable
from tests.bugs.catalogue import BUGS, UNCAUGHT

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "site" / catch.FILE


def catch_table(models: list[str], preset: str, cache_dir: Path, log: Callable[[str], None] = print, threads: int | None = None) -> CatchTable:
    """Run every bug that applies to the models at the preset; the rows say which were caught, and how."""
    started = time.monotonic()
    specs = load_specs(names=models)
    variants = {name: applicable(spec.family) for name, spec in specs.items()}
    frameworks = [f"tests.bugs-{v}" for v in [CONTROL, *sorted({v for vs in variants.values() for v in vs})]]
    run = plan(RunConfig(matrix="bugs", devices=dict.fromkeys(frameworks, "cpu"), models=models, frameworks=frameworks,
                         preset=preset, cache_dir=str(cache_dir), force=True, threads=threads))
    run.cells = [c for c in run.cells if c.framework.removeprefix("tests.bugs-") in [CONTROL, *variants[c.model]]]
    system, rows = describe(), []
    for cell in run.cells:
        spec = run.specs[cell.model]
        result = measure_and_judge(run, cell, weights.materialize(spec, preset, run.cache_dir), system, mode="reference")
        if cell.framework.endswith(CONTROL):
            if result.status != "ok" or result.correctness.verdict != "pass":
                raise ArenaError(f"{cell.id}: the wrapper with nothing injected gets {result.status}, verdict "
                                 f"{result.correctness.verdict}: {result.reason or result.correctness.reason}; a `fail` would prove nothing")
            continue
        rows.append(row_of(result))
        log(f"{cell.model} {rows[-1].bug} ({rows[-1].framework}): " + (f"caught by {', '.join(rows[-1].failed_checks)}" if rows[-1].caught else f"NOT caught: {rows[-1].note}"))
    bugs = [CatchBug(name=b.name, what=b.what, caught_by=list(b.caught_by)) for b in BUGS.values()]
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return CatchTable(bugs=bugs, rows=rows, runs=[CatchRun(preset=preset, created=created, wall_s=time.monotonic() - started, models=models)])


def row_of(result: Result) -> CatchRow:
    bug, _, framework = result.framework.removeprefix("tests.bugs-").partition("-")
    caught = result.status == "ok" and result.correctness.verdict == "fail"
    failed = [c.name for c in result.correctness.checks if not c.passed]
    note = "" if caught else UNCAUGHT.get(row_id(bug, framework, result.family, result.preset), "") or (
        f"status {result.status}: {result.reason}" if result.status != "ok" else f"verdict {result.correctness.verdict}")
    return CatchRow(bug=bug, framework=framework, family=result.family, model=result.model, preset=result.preset,
                    injected=BUGS[bug].families[result.family].kind, caught=caught, failed_checks=failed, note=note[:500])


def row_id(bug: str, framework: str, family: str, preset: str) -> str:
    """How UNCAUGHT names a row."""
    return f"{bug}-{framework}/{family}/{preset}"


def markdown(table: CatchTable) -> str:
    """The README's table: one row per bug and framework, one column per model, a line per preset."""
    what = {b.name: b.what for b in table.bugs}
    lines = ["| bug | injected into | " + " | ".join(table.models) + " |", "|---" * (len(table.models) + 2) + "|"]
    for (bug, framework), by_model in table.grid().items():
        verdicts = ["<br>".join(verdict(r) for r in by_model.get(m, [])) or "—" for m in table.models]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in [f"`{bug}`: {what[bug]}", table.injected_into(bug, framework), *verdicts]) + " |")
    kinds = "; ".join(f"{k}: {v}" for k, v in INJECTED.items())
    return "\n".join(lines) + f"\n\n✓ caught (by the checks named), ✗ not caught (why), — no such bug in that model. Injected into {kinds}. Runs: {table.runs_summary()}.\n"


def verdict(r: CatchRow) -> str:
    return f"{r.preset}: " + (f"✓ {checks_summary(r.failed_checks)}" if r.caught else f"✗ {r.note}")


def update_readme(table: CatchTable) -> None:
    README.write_text(replace_block(README.read_text(), "catch-table", markdown(table)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bugs.table", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--preset", required=True, help="tiny or full")
    parser.add_argument("--models", nargs="*", default=None, help="spec names (default: every spec)")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/arena").expanduser(), help="weights and references (default: ~/.cache/arena)")
    args = parser.parse_args(argv)
    models = args.models or sorted(load_specs())
    table = catch_table(models, args.preset, args.cache_dir)
    previous = catch.read(TABLE)
    table = previous.merged(table) if previous else table
    catch.write(TABLE, table)
    update_readme(table)
    missed = [r for r in table.rows if not r.caught and r.preset == args.preset]
    print(f"{len(table.rows)} rows → {TABLE.relative_to(REPO)} and README.md; {len(missed)} not caught at {args.preset}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
