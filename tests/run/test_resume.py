"""Re-running keeps valid results, re-runs what changed (the spec, the result schema), and force=true re-runs everything."""

from __future__ import annotations

import pytest
import yaml

from arena.results.schema import SCHEMA_VERSION, Result
from arena.run.orchestrate import still_valid
from arena.run.system import describe
from arena.specs import load_specs


@pytest.mark.slow
def test_rerun_resumes_and_respects_changes(run_matrix, specs_copy, tmp_path):
    pytest.importorskip("torch")
    results_dir = tmp_path / "results"
    first = run_matrix(["smollm2-135m"], ["torch", "tests.faults-raise"], specs_dir=specs_copy, results_dir=results_dir)
    again = run_matrix(["smollm2-135m"], ["torch", "tests.faults-raise"], specs_dir=specs_copy, results_dir=results_dir)
    key, failed = "smollm2-135m:torch", "smollm2-135m:tests.faults-raise"
    assert again[key].run_id == first[key].run_id, "a valid result is kept"
    assert again[failed].run_id != first[failed].run_id, "a failed cell is tried again"

    forced = run_matrix(["smollm2-135m"], ["torch"], specs_dir=specs_copy, results_dir=results_dir, force=True)
    assert forced[key].run_id != first[key].run_id

    path = specs_copy / "smollm2-135m.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["presets"]["tiny"]["workloads"]["prompt_len"] = 12
    path.write_text(yaml.safe_dump(raw))
    changed = run_matrix(["smollm2-135m"], ["torch"], specs_dir=specs_copy, results_dir=results_dir)
    assert changed[key].run_id != forced[key].run_id, "a changed spec invalidates the result"
    assert changed[key].spec_hash != first[key].spec_hash


def test_a_result_of_an_older_schema_is_measured_again():
    spec = load_specs(names=["smollm2-135m"])["smollm2-135m"]
    result = Result(run_id="r1", created="", model=spec.name, family=spec.family, preset="tiny", framework="torch", device="cpu",
                    dtype="fp32", threads=2, status="ok", spec_hash=spec.spec_hash("tiny"), weights_hash="w", system=describe())
    assert result.schema_version == SCHEMA_VERSION and still_valid(result, spec, "tiny", "w")
    assert not still_valid(result.model_copy(update={"schema_version": SCHEMA_VERSION - 1}), spec, "tiny", "w")
