"""Judge stored results again, without re-measuring: `python -m arena.results rejudge RESULTS_DIR`
(and `rehash RESULTS_DIR`: restate old fingerprints by the current hashing scheme, `rehash` below).

When only the verdict's code (arena/results/compare.py) or a spec's tolerances changed, the numbers a
cell measured still stand; only its verdict is out of date. Each result names its outputs artifact
(`correctness.outputs`, kept in the cache's outputs/ folder) and the reference it was compared with
(`correctness.reference`, in reference/), so the verdict can be recomputed from them exactly as the run
would have. A result whose measured code, spec or weights changed is left alone and listed: only a
re-run can update it. The new verdict records the commit that judged it (`correctness.rejudged`), and
the fingerprint's judging components become the current ones, so the result is current again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from arena import cache
from arena.results.compare import worst_margin
from arena.results.schema import Result
from arena.results.store import iter_results, write_json_atomic
from arena.run import fingerprint
from arena.run.cell import Cell
from arena.run.orchestrate import outputs_path, verdict
from arena.run.system import git_commit
from arena.specs.schema import ModelSpec

JUDGED_STATUSES = ("ok", "error")  # the statuses whose cells left outputs to judge


class Outcome(BaseModel):
    """What became of one result file."""

    path: str
    action: str  # "rejudged", "current" or "re-run"
    detail: str = ""


def rejudge(results_dir: Path, cache_dir: Path, specs: dict[str, ModelSpec], log: Callable[[str], None] = print) -> list[Outcome]:
    """Re-judge every result under `results_dir` whose judging is out of date and whose outputs are in
    `cache_dir`; rewrite those files in place and say what happened to each."""
    source, commit = fingerprint.Tree(), git_commit()
    outcomes = []
    for path, result in iter_results(results_dir):
        name = str(path.relative_to(results_dir).with_suffix(""))
        action, detail = rejudge_one(path, result, specs, cache_dir, source, commit)
        outcomes.append(Outcome(path=name, action=action, detail=detail))
        log(f"{action:9} {name}" + (f": {detail}" if detail else ""))
    return outcomes


def rejudge_one(path: Path, result: Result, specs: dict[str, ModelSpec], cache_dir: Path, source: fingerprint.Tree, commit: str) -> tuple[str, str]:
    blocker = why_not_rejudgeable(result, specs, cache_dir, source)
    if blocker:
        return "re-run", blocker
    spec = specs[result.model]
    judged_by = spec.tolerances_for(result.framework, result.dtype, result.preset)
    assert result.fingerprint is not None  # why_not_rejudgeable checked it
    updated = fingerprint.rejudged(result.fingerprint, judged_by, source)
    if updated.value == result.fingerprint.value:
        return "current", ""
    if result.status not in JUDGED_STATUSES:  # no outputs, no verdict: only its judging components move
        result.fingerprint = updated
        write_json_atomic(path, result.model_dump(mode="json"))
        return "rejudged", f"nothing to judge (status {result.status}): judging components brought current"
    cell = Cell(model=result.model, preset=result.preset, framework=result.framework, device=result.device, dtype=result.dtype)
    before = result.correctness
    candidate = dict(np.load(outputs_path(cache_dir, before.outputs)))
    after = verdict(cell, spec, result.status, candidate, cache_dir / "reference" / before.reference)
    after.outputs, after.rejudged = before.outputs, commit
    result.correctness, result.fingerprint = after, updated
    write_json_atomic(path, result.model_dump(mode="json"))
    return "rejudged", f"{before.verdict} → {after.verdict}{_margins(before, after)}"


def why_not_rejudgeable(result: Result, specs: dict[str, ModelSpec], cache_dir: Path, source: fingerprint.Tree) -> str:
    """Why only a re-run can update this result ("" if its stored outputs can be judged again)."""
    spec = specs.get(result.model)
    if spec is None:
        return "no spec of this model any more"
    if result.preset not in spec.presets or result.spec_hash != spec.spec_hash(result.preset):
        return "the spec's model or workloads changed"
    if result.fingerprint is None:
        return "made before results recorded their code"
    measured = fingerprint.measured_changed(result.fingerprint, source)
    if measured:
        return "the code that computes its numbers changed: " + ", ".join(measured)
    if result.status not in JUDGED_STATUSES:
        return ""
    c = result.correctness
    if not c.outputs or not outputs_path(cache_dir, c.outputs).exists():
        return f"its outputs are not in {cache_dir / 'outputs'} (judged before outputs were kept, or measured on another machine)"
    if c.verdict != "reference" and not (cache_dir / "reference" / c.reference).exists():
        return f"its reference {c.reference or '(none recorded)'} is not in {cache_dir / 'reference'}"
    # Checked, not removed: a damaged reference is recomputed by the next run, and outputs only a run makes.
    for what, file in (("outputs", outputs_path(cache_dir, c.outputs)), ("reference", cache_dir / "reference" / c.reference)):
        if file.is_file() and (problem := cache.damage(file)):
            return f"its {what} {file} in the cache is damaged ({problem})"
    return ""


def _margins(before, after) -> str:
    old, new = worst_margin(before.checks), worst_margin(after.checks)
    return f" (worst margin {old:.3g} → {new:.3g})" if old is not None and new is not None else ""


def rehash(results_dir: Path, log: Callable[[str], None] = print) -> list[Outcome]:
    """Restate every byte-for-byte fingerprint under `results_dir` by the current scheme
    (`fingerprint.rehashed`), where its files are byte-identical to the tree's: afterwards a comment or
    docstring edit leaves those results current too. Nothing else in a result changes."""
    source, outcomes = fingerprint.Tree(), []
    for path, result in iter_results(results_dir):
        name = str(path.relative_to(results_dir).with_suffix(""))
        if result.fingerprint is None:
            action, detail = "left", "no fingerprint"
        elif fingerprint.scheme_of(result.fingerprint) != fingerprint.BYTES:
            action, detail = "current", ""
        elif restated := fingerprint.rehashed(result.fingerprint, source):
            result.fingerprint = restated
            write_json_atomic(path, result.model_dump(mode="json"))
            action, detail = "rehashed", ""
        else:
            action, detail = "left", "its code differs from the tree's: only a re-run updates it"
        outcomes.append(Outcome(path=name, action=action, detail=detail))
        log(f"{action:9} {name}" + (f": {detail}" if detail else ""))
    return outcomes
