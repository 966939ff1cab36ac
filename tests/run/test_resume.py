"""Re-running keeps valid results, re-runs what changed, and force=true re-runs everything."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("torch")


@pytest.mark.slow
def test_rerun_resumes_and_respects_changes(run_matrix, specs_copy, tmp_path):
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
