"""Every spec at `tiny`, through the real runner: the torch.compile variant must pass against the eager
reference on outputs, loss and gradients, and the reference with one weight scaled by 1.01 must fail.
Parametrised over specs/models, so a new spec is tested without touching this file."""

from __future__ import annotations

import pytest

from tests.conftest import SPEC_NAMES

pytest.importorskip("torch")


@pytest.mark.slow
@pytest.mark.parametrize("model", SPEC_NAMES)
def test_compile_passes_and_a_perturbed_weight_fails(run_matrix, model):
    results = run_matrix([model], ["torch", "torch-compile", "tests.faults-perturb"])
    reference, compiled, perturbed = (results[f"{model}:{fw}"] for fw in ("torch", "torch-compile", "tests.faults-perturb"))

    assert reference.status == "ok" and reference.correctness.verdict == "reference", reference.reason
    assert compiled.status == "ok", compiled.reason
    assert compiled.correctness.verdict == "pass", compiled.correctness.reason
    for workload in ("inference", "latency", "training"):
        assert getattr(compiled.metrics, workload).problems == [], "no compilation inside the timed calls"
    checked = {c.name for c in compiled.correctness.checks}
    assert "training/grads" in checked and "training/loss" in checked

    assert perturbed.status == "ok", perturbed.reason
    assert perturbed.correctness.verdict == "fail", "a weight scaled by 1.01 must not pass"
