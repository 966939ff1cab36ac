"""The catch table: which injected bug the verdict catches, per family and preset, and by which check.

Written by `python -m tests.bugs.table` (the bugs and their injections live in tests/bugs/), committed
as `site/partials/catch-table.json`, and rendered by the methodology page and the README. Only data
crosses over: the site reads this file and imports neither the tests nor a framework.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from arena.results.store import write_json_atomic

FILE = "partials/catch-table.json"  # under the docs folder (site/)
INJECTED = {
    "config": "the family config the implementation is built from",
    "weights": "the weights handed to the implementation, before it converts or loads them",
    "process": "a function the implementation calls, replaced in the cell's process",
    "model": "the built model, patched in place (a module attribute, a hook, a forward, the training step)",
}


class CatchBug(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    what: str
    caught_by: list[str] = Field(description="check-name prefixes of which at least one is expected to fail")


class CatchRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bug: str
    framework: str = Field(description="the implementation the bug was injected into")
    family: str
    model: str
    preset: str
    injected: str = Field(description=f"where the bug went in: {'; '.join(f'{k}: {v}' for k, v in INJECTED.items())}")
    caught: bool = Field(description="the verdict was `fail`")
    failed_checks: list[str] = Field(description="the names of the checks that failed")
    note: str = Field("", description="why a row is not caught (declared, or the cell's status)")


class CatchRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: str
    created: str
    wall_s: float
    models: list[str]


class CatchTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bugs: list[CatchBug]
    rows: list[CatchRow]
    runs: list[CatchRun] = Field(description="the last run of each preset and set of models (a slow preset may run a model at a time)")

    @property
    def models(self) -> list[str]:
        return sorted({r.model for r in self.rows})

    def grid(self) -> dict[tuple[str, str], dict[str, list[CatchRow]]]:
        """(bug, framework) -> model -> its rows, one per preset: the published table's layout."""
        order = {b.name: i for i, b in enumerate(self.bugs)}
        cells: dict[tuple[str, str], dict[str, list[CatchRow]]] = {}
        for r in sorted(self.rows, key=lambda r: (order[r.bug], r.framework, r.model, r.preset)):
            cells.setdefault((r.bug, r.framework), {}).setdefault(r.model, []).append(r)
        return cells

    def runs_summary(self) -> str:
        """`tiny 2026-12-04, 5.3 min; full (sd15-unet) ...`: each run, naming its models where it had not all of them."""
        return "; ".join(f"{r.preset}{'' if set(r.models) >= set(self.models) else ' (' + ', '.join(r.models) + ')'} "
                         f"{r.created[:10]}, {r.wall_s / 60:.1f} min" for r in self.runs)

    def injected_into(self, bug: str, framework: str) -> str:
        """`torch: model, process`: the implementation and where the bug went in (it may differ by family)."""
        kinds = sorted({r.injected for r in self.rows if (r.bug, r.framework) == (bug, framework)})
        return f"{framework}: {', '.join(kinds)}"

    def merged(self, newer: CatchTable) -> CatchTable:
        """This table with a newer run's rows (same bug, framework, model, preset) and bugs replacing its own."""
        key = lambda r: (r.bug, r.framework, r.model, r.preset)  # noqa: E731
        replaced = {key(r) for r in newer.rows}
        runs = {(r.preset, *sorted(r.models)): r for r in [*self.runs, *newer.runs]}
        return CatchTable(bugs=newer.bugs, rows=sorted([r for r in self.rows if key(r) not in replaced] + newer.rows, key=key),
                          runs=[runs[k] for k in sorted(runs)])


def read(path: Path) -> CatchTable | None:
    return CatchTable.model_validate_json(path.read_text()) if path.exists() else None


def write(path: Path, table: CatchTable) -> None:
    write_json_atomic(path, table.model_dump(mode="json"))


def checks_summary(names: list[str]) -> str:
    """Failed check names in short: inference/logits, latency/logits, training/grads -> inference, latency, grads."""
    kinds = {n.split("/")[1] if n.startswith("training/") else n.split("/")[0] for n in names}
    return ", ".join(k for k in ("inference", "latency", "loss", "grads") if k in kinds)
