"""`python -m arena.results rejudge` judges stored outputs again when only tolerances or the verdict's
code changed, leaves alone what only a re-run can update, and a later run keeps what it re-judged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from arena.results.__main__ import main as results_cli
from arena.results.store import load_result, result_files, write_json_atomic
from arena.run import fingerprint
from arena.run.orchestrate import outputs_path
from arena.specs import load_specs

MODEL, BUGGY = "smollm2-135m", "tests.bugs-residual_scaled-torch"  # a real bug: fails at the spec's tolerances
LOOSE = {"output": {"atol": 100.0, "rtol": 1.0, "min_cosine": -1.0}, "loss": {"atol": 100.0, "rtol": 1.0},
         "grad": {"norm_rtol": 10.0, "sample_rel_l2": 10.0, "projection_rel": 10.0, "min_cosine": -1.0}}


def rejudge(results_dir, cache, specs, capsys) -> list[str]:
    assert results_cli(["rejudge", str(results_dir), "--cache-dir", str(cache), "--specs-dir", str(specs)]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.slow
def test_rejudge_updates_verdicts_from_stored_outputs(run_matrix, specs_copy, shared_cache, tmp_path, capsys):
    pytest.importorskip("torch")
    results_dir = tmp_path / "results"
    first = run_matrix([MODEL], ["torch", BUGGY], specs_dir=specs_copy, results_dir=results_dir)[f"{MODEL}:{BUGGY}"]
    assert first.correctness.verdict == "fail" and outputs_path(shared_cache, first.correctness.outputs).exists()
    path = next(results_dir.glob(f"*/{MODEL}/tiny/{BUGGY}-cpu-fp32.json"))

    assert all(line.startswith("current") for line in rejudge(results_dir, shared_cache, specs_copy, capsys)[:-1]), "nothing changed: nothing to do"

    spec_file = specs_copy / f"{MODEL}.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["presets"]["tiny"]["tolerances"]["fp32"] |= LOOSE
    spec_file.write_text(yaml.safe_dump(raw))
    lines = rejudge(results_dir, shared_cache, specs_copy, capsys)
    assert any(line.startswith("rejudged") and BUGGY in line and "fail → pass" in line for line in lines), lines
    after = load_result(path)
    assert after.correctness.verdict == "pass" and after.correctness.rejudged and after.run_id == first.run_id
    assert after.metrics == first.metrics, "re-judging measures nothing"
    moved = {k for k, v in after.fingerprint.components.items() if first.fingerprint.components.get(k) != v}
    assert moved == {"tolerances"}

    kept = run_matrix([MODEL], ["torch", BUGGY], specs_dir=specs_copy, results_dir=results_dir)[f"{MODEL}:{BUGGY}"]
    assert kept.run_id == first.run_id and kept.correctness.verdict == "pass", "a re-judged result is current: a run keeps it"

    # What only a re-run can update is left as it is, with the reason.
    recorded = json.loads(path.read_text())
    recorded["fingerprint"]["components"]["code:arena/families/llama.py"] = "0" * 12
    path.write_text(json.dumps(recorded))
    raw["presets"]["tiny"]["tolerances"]["fp32"]["output"]["atol"] = 50.0
    spec_file.write_text(yaml.safe_dump(raw))
    lines = rejudge(results_dir, shared_cache, specs_copy, capsys)
    assert any(line.startswith("re-run") and BUGGY in line and "arena/families/llama.py" in line for line in lines), lines
    assert json.loads(path.read_text()) == recorded

    reference = next(results_dir.glob(f"*/{MODEL}/tiny/torch-cpu-fp32.json"))
    outputs_path(shared_cache, load_result(reference).correctness.outputs).unlink()
    lines = rejudge(results_dir, shared_cache, specs_copy, capsys)
    assert any(line.startswith("re-run") and "torch-cpu-fp32" in line and "outputs are not in" in line for line in lines), lines


def test_judging_components_are_the_only_ones_a_rejudge_replaces():
    recorded = fingerprint.of({"code:arena/results/compare.py": "a" * 12, "tolerances": "b" * 12, "code:arena/run/child.py": "c" * 12,
                               "version:torch": "2.0"})
    spec_tol = (None, "")
    updated = fingerprint.rejudged(recorded, spec_tol, fingerprint.Tree())
    assert updated.components["code:arena/run/child.py"] == "c" * 12 and updated.components["version:torch"] == "2.0"
    assert updated.components["tolerances"] == fingerprint.tolerances(None, "")["tolerances"]
    # Hashed by the scheme the result recorded: none here, so byte for byte, as results were before it.
    assert updated.components["code:arena/results/compare.py"] == fingerprint.Tree().digest("arena/results/compare.py", fingerprint.BYTES)
    assert fingerprint.measured_changed(recorded, fingerprint.Tree()) == ["code:arena/run/child.py"]
    current = fingerprint.of(recorded.components | {"scheme": fingerprint.SCHEME})
    assert fingerprint.rejudged(current, spec_tol, fingerprint.Tree()).components["code:arena/results/compare.py"] == fingerprint.Tree().digest("arena/results/compare.py")


def test_rehash_restates_unchanged_results_and_leaves_the_others(tmp_path, capsys):
    """`python -m arena.results rehash DIR`: a result hashed byte for byte from this very tree is restated
    (and stays current); one whose recorded code differs from the tree is left as it was."""
    committed = result_files(Path(__file__).resolve().parents[2] / "results")[0]
    result = load_result(committed)
    judged_by = load_specs()[result.model].tolerances_for(result.framework, result.dtype, result.preset)
    family = load_specs()[result.model].family
    unchanged = result.model_copy(update={"fingerprint": fingerprint.cell(result.framework, family, judged_by, fingerprint.Tree(), fingerprint.BYTES)})
    edited = fingerprint.of(unchanged.fingerprint.components | {"code:arena/run/child.py": "0" * 12})
    write_json_atomic(tmp_path / "a" / "unchanged.json", unchanged.model_dump(mode="json"))
    write_json_atomic(tmp_path / "b" / "edited.json", unchanged.model_copy(update={"fingerprint": edited}).model_dump(mode="json"))
    assert results_cli(["rehash", str(tmp_path)]) == 0
    assert "1 rehashed, 0 already current, 1 left" in capsys.readouterr().out
    restated = load_result(tmp_path / "a" / "unchanged.json").fingerprint
    assert fingerprint.scheme_of(restated) == fingerprint.SCHEME and fingerprint.changed(restated, judged_by, fingerprint.Tree()) == []
    assert load_result(tmp_path / "b" / "edited.json").fingerprint == edited
    assert results_cli(["rehash", str(tmp_path / "missing")]) == 2
