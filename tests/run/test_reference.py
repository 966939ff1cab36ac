"""A verdict does not depend on whether torch was in the same run: the reference runs on demand."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_reference_is_computed_on_demand_and_cached(run_matrix, tmp_path):
    cache = tmp_path / "fresh-cache"
    results = run_matrix(["smollm2-135m"], ["tests.faults-plain", "tests.faults-perturb"], cache_dir=cache)
    plain, perturbed = results["smollm2-135m:tests.faults-plain"], results["smollm2-135m:tests.faults-perturb"]
    assert plain.correctness.verdict == "pass", plain.correctness.reason
    assert perturbed.correctness.verdict == "fail"
    assert plain.correctness.reference == perturbed.correctness.reference
    references = list((cache / "reference").glob("smollm2-135m-tiny-*.npz"))
    assert len(references) == 1, "one reference, computed once and reused"
    logits = next(c for c in plain.correctness.checks if c.name == "inference/logits")
    assert logits.figures["max_abs"] == 0.0, "the same implementation in another process is bit-identical"
