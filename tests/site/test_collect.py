"""Reading results for the site: strict files, merged machines, stale results (older spec, changed
code, no fingerprint) flagged, uncommitted trees marked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from arena.errors import ArenaError
from arena.run import fingerprint
from arena.results.schema import SCHEMA_VERSION
from arena.site.collect import Entry, load_entries, ranked
from arena.specs import load_specs

from tests.site.conftest import EVIL, FIXTURES, REPO


@pytest.fixture(scope="module")
def entries(results_dirs) -> list[Entry]:
    return load_entries(results_dirs, load_specs())


def find(entries: list[Entry], platform: str, framework: str, model: str = "smollm2-135m") -> Entry:
    return next(e for e in entries if e.result.system.platform_id == platform and e.result.framework == framework and e.result.model == model)


def test_every_status_maps_to_a_category(entries):
    seen = {(e.result.status, e.result.correctness.verdict): e.category for e in entries}
    assert seen[("ok", "reference")] == seen[("ok", "pass")] == "runs"
    assert seen[("ok", "fail")] == seen[("error", "n/a")] == seen[("timeout", "n/a")] == seen[("crashed", "n/a")] == "failed"
    assert seen[("ok", "n/a")] == "unverified"
    assert seen[("unsupported", "n/a")] == "unsupported" and seen[("unavailable", "n/a")] == "unavailable"
    assert seen[("not_run", "n/a")] == "not run here", "the lab's limit is never shown as the framework's"


def test_an_older_spec_is_flagged_and_never_ranked(entries):
    stale = find(entries, "fixture-x86-4c", "jax", "whisper-tiny")
    assert "older version of the spec" in stale.stale and "0123456789abcdef" in stale.stale
    assert stale.category == "runs" and not stale.verified
    assert stale not in ranked(entries)
    assert not find(entries, "intel-xeon-2c", "jax", "whisper-tiny").stale, "the committed results match the current specs"


def test_a_result_of_changed_code_is_flagged_with_what_changed_and_never_ranked(entries):
    stale = find(entries, "fixture-nvidia-h100", "jax")
    assert "code or tolerances that have changed since: arena/results/compare.py, tolerances" in stale.stale
    assert stale.result.status == "ok" and stale.result.correctness.verdict == "pass" and not stale.verified
    assert stale not in ranked(entries) and find(entries, "fixture-nvidia-h100", "torch") in ranked(entries)


def test_a_result_without_a_fingerprint_is_stale():
    entries = load_entries([FIXTURES / "fixture-apple-m2"], load_specs())
    torch = find(entries, "fixture-apple-m2", "torch")
    assert "made before results recorded a code fingerprint" in torch.stale and not torch.verified


def test_an_edit_to_the_tree_makes_a_result_stale(tmp_path):
    """The site hashes the tree it is given: a result stays current until a file it recorded changes."""
    tree = tmp_path / "tree"
    for path in ("arena/results/compare.py", "arena/families/llama.py"):
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tree / path)
    folder = tmp_path / "results"
    shutil.copytree(FIXTURES / "fixture-apple-m2", folder)
    path = folder / "smollm2-135m" / "full" / "torch-mps-fp32.json"
    data = json.loads(path.read_text())
    judged_by = load_specs()["smollm2-135m"].tolerances_for("torch", "fp32", "full")
    recorded = fingerprint.of(fingerprint.Tree(tree).code(["arena/results/compare.py", "arena/families/llama.py"]) | fingerprint.tolerances(*judged_by))
    path.write_text(json.dumps(data | {"fingerprint": recorded.model_dump()}))

    assert not find(load_entries([folder], load_specs(), fingerprint.Tree(tree)), "fixture-apple-m2", "torch").stale
    (tree / "arena/families/llama.py").write_text("# edited\n")
    stale = find(load_entries([folder], load_specs(), fingerprint.Tree(tree)), "fixture-apple-m2", "torch").stale
    assert stale.endswith("changed since: arena/families/llama.py")


def test_a_result_from_an_uncommitted_tree_is_marked_not_demoted(entries):
    ggml = find(entries, "fixture-x86-4c", "ggml")
    assert ggml.result.system.arena_commit.endswith("-dirty") and ggml.uncommitted
    assert ggml.verified and ggml in ranked(entries), "the fingerprint, not the commit, decides whether it is current"
    assert not find(entries, "fixture-x86-4c", "torch").uncommitted


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
