"""A cell that raises, segfaults, hangs or dies mid-way gets its status; the other cells keep theirs."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("torch")

FAULTS = ["tests.faults-raise", "tests.faults-segfault", "tests.faults-hang", "tests.faults-exit", "tests.faults-nan", "tests.faults-trainerror"]


@pytest.fixture
def short_deadline_specs(specs_copy):
    path = specs_copy / "smollm2-135m.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["presets"]["tiny"]["timeout_s"] = 20
    path.write_text(yaml.safe_dump(raw))
    return specs_copy


@pytest.mark.slow
def test_each_failure_is_recorded_and_the_others_survive(run_matrix, short_deadline_specs):
    results = run_matrix(["smollm2-135m"], ["torch", *FAULTS], specs_dir=short_deadline_specs)
    by = {key.split(":", 1)[1]: r for key, r in results.items()}

    assert by["torch"].status == "ok" and by["torch"].correctness.verdict == "reference"

    assert by["tests.faults-raise"].status == "error"
    assert "deliberate failure in build" in by["tests.faults-raise"].reason

    assert by["tests.faults-segfault"].status == "crashed"
    assert "SIGSEGV" in by["tests.faults-segfault"].reason

    assert by["tests.faults-hang"].status == "timeout"
    assert "timeout_s = 20" in by["tests.faults-hang"].reason

    died = by["tests.faults-exit"]
    assert died.status == "crashed" and "exited with code 3" in died.reason
    assert died.metrics.inference.stats.n >= 1, "what was measured before the crash is kept"

    errored = by["tests.faults-trainerror"]
    assert errored.status == "error" and "deliberate failure in training" in errored.reason
    assert errored.correctness.verdict == "fail", "outputs that matched do not make an errored cell pass"
    assert "status error" in errored.correctness.reason
    assert {c.name for c in errored.correctness.checks if c.passed} >= {"inference/logits", "latency/logits"}

    nan = by["tests.faults-nan"]
    assert nan.status == "ok" and nan.correctness.verdict == "fail"
    assert "non-finite" in nan.correctness.reason
