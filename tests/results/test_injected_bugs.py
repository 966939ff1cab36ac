"""Every realistic bug of tests/bugs/catalogue.py, injected into a real implementation, turns the verdict
to `fail` at the tiny presets, with one of the checks the bug names among the failed ones. A row the
catalogue declares uncaught must stay uncaught (else its entry goes). One run per model: every bug of its
family is a cell (every workload once, untimed), judged against one cached reference."""

from __future__ import annotations

import pytest

from arena.results.catch import CatchTable
from arena.site.readme import read_block
from tests.bugs import applicable
from tests.bugs.catalogue import BUGS, FAMILIES, UNCAUGHT
from tests.bugs.table import README, TABLE, catch_table, markdown, row_id
from tests.conftest import SPEC_NAMES, cell_threads

pytest.importorskip("torch")


@pytest.mark.slow
@pytest.mark.parametrize("model", SPEC_NAMES)
def test_every_injected_bug_fails_the_verdict(shared_cache, model):
    table = catch_table([model], "tiny", shared_cache, log=lambda *_: None, threads=cell_threads())
    (family,) = {r.family for r in table.rows}
    assert {f"{r.bug}-{r.framework}" for r in table.rows} == set(applicable(family)), "every bug of the family ran"
    problems = []
    for r in table.rows:
        declared = UNCAUGHT.get(row_id(r.bug, r.framework, r.family, r.preset))
        if declared:
            print(f"{row_id(r.bug, r.framework, r.family, r.preset)}: not caught, as declared: {declared}")
            if r.caught:
                problems.append(f"{r.bug} ({r.framework}) is caught now, by {r.failed_checks}: remove it from UNCAUGHT")
        elif not r.caught:
            problems.append(f"{r.bug} ({r.framework}) was not caught: {r.note}")
        elif not any(c.startswith(BUGS[r.bug].caught_by) for c in r.failed_checks):
            problems.append(f"{r.bug} ({r.framework}) failed {r.failed_checks}, none of the expected {BUGS[r.bug].caught_by}")
    assert not problems, "\n".join(problems)


def test_every_family_has_bugs_and_every_bug_a_family():
    assert all(applicable(family) for family in FAMILIES)
    assert all(set(bug.families) <= set(FAMILIES) and bug.families for bug in BUGS.values())


def test_the_committed_table_covers_the_catalogue_and_the_readme_shows_it():
    table = CatchTable.model_validate_json(TABLE.read_text())
    assert [(b.name, b.what, tuple(b.caught_by)) for b in table.bugs] == [(b.name, b.what, b.caught_by) for b in BUGS.values()]
    tiny = {(r.bug, r.framework, r.family) for r in table.rows if r.preset == "tiny"}
    assert tiny == {(v.partition("-")[0], v.partition("-")[2], f) for f in FAMILIES for v in applicable(f)}
    assert read_block(README.read_text(), "catch-table") == markdown(table), "README's catch-table block is python -m tests.bugs.table's"
