"""Reading results for the site: strict files, merged machines, older specs flagged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from arena.errors import ArenaError
from arena.results.schema import SCHEMA_VERSION
from arena.site.collect import Entry, load_entries, ranked
from arena.specs import load_specs

from tests.site.conftest import EVIL, FIXTURES, REPO


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return load_entries([REPO / "results", FIXTURES], load_specs())


def find(entries: list[Entry], platform: str, framework: str, model: str = "smollm2-135m") -> Entry:
    return next(e for e in entries if e.result.system.platform_id == platform and e.result.framework == framework and e.result.model == model)


def test_every_status_maps_to_a_category(entries):
    seen = {(e.result.status, e.result.correctness.verdict): e.category for e in entries}
    assert seen[("ok", "reference")] == seen[("ok", "pass")] == "runs"
    assert seen[("ok", "fail")] == seen[("error", "n/a")] == seen[("timeout", "n/a")] == seen[("crashed", "n/a")] == "failed"
    assert seen[("ok", "n/a")] == "unverified"
    assert seen[("unsupported", "n/a")] == "unsupported" and seen[("unavailable", "n/a")] == "unavailable"


def test_an_older_spec_is_flagged_and_never_ranked(entries):
    stale = find(entries, "fixture-x86-4c", "jax", "whisper-tiny")
    assert "older version of the spec" in stale.spec_note and "0123456789abcdef" in stale.spec_note
    assert stale.category == "runs" and not stale.verified
    assert stale not in ranked(entries)
    assert not find(entries, "intel-xeon-2c", "jax", "whisper-tiny").spec_note, "the committed results match the current specs"


def test_ranking_keeps_only_verified_results_fastest_first(entries):
    order = ranked(e for e in entries if e.group == ("fixture-x86-4c", "full") and e.result.model == "smollm2-135m")
    assert {e.result.framework for e in order} == {"torch", "jax", "ggml", EVIL}, "fail, n/a and error rows are not ranked"
    times = [e.result.metrics.inference.stats.median_ms for e in order]
    assert times == sorted(times)


def test_the_same_cell_from_two_folders_keeps_the_newest_run(tmp_path):
    source = FIXTURES / "fixture-x86-4c" / "smollm2-135m" / "full" / "torch-cpu-fp32.json"
    for folder, created in (("a", "2026-01-01T00:00:00+00:00"), ("b", "2026-02-01T00:00:00+00:00")):
        data = json.loads(source.read_text()) | {"created": created, "run_id": folder}
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "torch.json").write_text(json.dumps(data))
    entries = load_entries([tmp_path / "a", tmp_path / "b"], load_specs())
    assert [e.result.run_id for e in entries] == ["b"]


def test_a_malformed_file_stops_the_build_naming_it(tmp_path):
    shutil.copytree(FIXTURES / "fixture-apple-m2", tmp_path / "fixture-apple-m2")
    bad = tmp_path / "fixture-apple-m2" / "smollm2-135m" / "full" / "torch-mps-fp32.json"
    bad.write_text(bad.read_text().replace('"status": "ok"', '"status": "fine"'))
    with pytest.raises(ArenaError, match=rf"{bad}: not a result of schema v{SCHEMA_VERSION}: status"):
        load_entries([tmp_path], load_specs())
    bad.write_text("{ truncated")
    with pytest.raises(ArenaError, match=str(bad)):
        load_entries([tmp_path], load_specs())


def test_a_missing_folder_is_an_error():
    with pytest.raises(ArenaError, match="no such results folder"):
        load_entries([Path("/nonexistent/results")], load_specs())
