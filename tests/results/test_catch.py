"""The catch table merges runs: a slow preset may run a model at a time, and each run keeps its own
line while a later run of the same models replaces it."""

from __future__ import annotations

from arena.results.catch import CatchBug, CatchRow, CatchRun, CatchTable


def table(preset: str, models: list[str], minutes: float, caught: bool = True) -> CatchTable:
    rows = [CatchRow(bug="b", framework="torch", family=m, model=m, preset=preset, injected="model", caught=caught, failed_checks=["inference/x"])
            for m in models]
    return CatchTable(bugs=[CatchBug(name="b", what="a bug", caught_by=["inference/"])], rows=rows,
                      runs=[CatchRun(preset=preset, created="2026-12-05T10:00:00+00:00", wall_s=minutes * 60, models=models)])


def test_runs_of_single_models_add_up_and_a_rerun_replaces_its_own():
    merged = table("tiny", ["m1", "m2"], 5).merged(table("full", ["m1"], 10)).merged(table("full", ["m2"], 20))
    assert merged.runs_summary() == "full (m1) 2026-12-05, 10.0 min; full (m2) 2026-12-05, 20.0 min; tiny 2026-12-05, 5.0 min"
    again = merged.merged(table("full", ["m2"], 30, caught=False))
    assert again.runs_summary().count("full (m2)") == 1 and "30.0 min" in again.runs_summary()
    assert [r.caught for r in again.rows if r.preset == "full"] == [True, False], "the newer run's rows replace the older ones"
    assert len(again.rows) == 4
