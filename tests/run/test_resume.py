"""Re-running keeps valid results, re-runs what changed (spec, code fingerprint, result schema), and force=true re-runs everything."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from arena.results.schema import SCHEMA_VERSION
from arena.results.store import load_result, write_json_atomic
from arena.run import fingerprint
from arena.run.orchestrate import still_valid
from arena.specs import load_specs

FIXTURE = Path(__file__).resolve().parents[1] / "site/fixtures/results/fixture-x86-4c/smollm2-135m/full/torch-cpu-fp32.json"


@pytest.mark.slow
def test_rerun_resumes_and_respects_changes(run_matrix, specs_copy, tmp_path):
    pytest.importorskip("torch")
    results_dir = tmp_path / "results"
    first = run_matrix(["smollm2-135m"], ["torch", "tests.faults-raise"], specs_dir=specs_copy, results_dir=results_dir)
    again = run_matrix(["smollm2-135m"], ["torch", "tests.faults-raise"], specs_dir=specs_copy, results_dir=results_dir)
    key, failed = "smollm2-135m:torch", "smollm2-135m:tests.faults-raise"
    assert again[key].run_id == first[key].run_id, "a valid result is kept"
    assert again[failed].run_id != first[failed].run_id, "a failed cell is tried again"
    assert first[key].fingerprint and "code:arena/frameworks/torch" in first[key].fingerprint.components

    # A result hashed byte for byte (made before fingerprint.SCHEME) is kept while its files are unchanged.
    stored = next(results_dir.rglob("torch-cpu-fp32.json"))
    judged_by = load_specs(specs_copy)["smollm2-135m"].tolerances_for("torch", "fp32", "tiny")
    old = fingerprint.cell("torch", "llama", judged_by, fingerprint.Tree(), fingerprint.BYTES, first[key].fingerprint.components["malloc"])
    write_json_atomic(stored, load_result(stored).model_copy(update={"fingerprint": old}).model_dump(mode="json"))
    assert run_matrix(["smollm2-135m"], ["torch"], specs_dir=specs_copy, results_dir=results_dir)[key].run_id == first[key].run_id

    path = specs_copy / "smollm2-135m.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["presets"]["tiny"]["tolerances"]["fp32"]["output"]["atol"] *= 2
    path.write_text(yaml.safe_dump(raw))
    retuned = run_matrix(["smollm2-135m"], ["torch"], specs_dir=specs_copy, results_dir=results_dir)
    assert retuned[key].run_id != first[key].run_id, "a changed fingerprint (here: the tolerances) re-runs the cell"
    assert retuned[key].spec_hash == first[key].spec_hash
    moved = {k for k, v in retuned[key].fingerprint.components.items() if first[key].fingerprint.components[k] != v}
    assert moved == {"tolerances"}

    forced = run_matrix(["smollm2-135m"], ["torch"], specs_dir=specs_copy, results_dir=results_dir, force=True)
    assert forced[key].run_id != first[key].run_id

    raw["presets"]["tiny"]["workloads"]["prompt_len"] = 12
    path.write_text(yaml.safe_dump(raw))
    changed = run_matrix(["smollm2-135m"], ["torch"], specs_dir=specs_copy, results_dir=results_dir)
    assert changed[key].run_id != forced[key].run_id, "a changed spec invalidates the result"
    assert changed[key].spec_hash != first[key].spec_hash


def test_a_result_is_kept_only_with_the_current_fingerprint_and_schema():
    spec = load_specs()["smollm2-135m"]
    previous = load_result(FIXTURE)  # a final status, recorded before results had a fingerprint
    current = fingerprint.of({"code:arena/results/compare.py": "1" * 12, "tolerances": "2" * 12})
    ours = previous.model_copy(update={"spec_hash": spec.spec_hash("full"), "fingerprint": current, "schema_version": SCHEMA_VERSION})
    assert still_valid(ours, spec, "full", previous.weights_hash, current)
    assert not still_valid(ours.model_copy(update={"fingerprint": None}), spec, "full", previous.weights_hash, current), "no fingerprint: re-run"
    moved = fingerprint.of(current.components | {"code:arena/results/compare.py": "3" * 12})
    assert not still_valid(ours, spec, "full", previous.weights_hash, moved)
    older = ours.model_copy(update={"schema_version": SCHEMA_VERSION - 1})
    assert not still_valid(older, spec, "full", previous.weights_hash, current), "v1 timed with no warm-up: re-run"
