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


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["jax", "mlx"])
@pytest.mark.parametrize("model", SPEC_NAMES)
def test_framework_passes_and_a_perturbed_weight_fails(run_matrix, model, framework):
    """Outputs, loss and every gradient of the hand-written implementation match the reference; the
    same implementation with one weight scaled by 1.01 does not."""
    pytest.importorskip({"jax": "jax", "mlx": "mlx.core"}[framework])
    perturbed_name = f"tests.faults-perturb-{framework}"
    results = run_matrix([model], ["torch", framework, perturbed_name])
    cell, perturbed = results[f"{model}:{framework}"], results[f"{model}:{perturbed_name}"]

    assert cell.status == "ok", cell.reason
    assert cell.correctness.verdict == "pass", cell.correctness.reason
    checked = {c.name for c in cell.correctness.checks}
    for compared in ("inference/", "latency/", "training/loss", "training/grads"):
        assert any(name.startswith(compared) for name in checked), f"nothing compared for {compared}: {checked}"
    for workload in ("inference", "latency", "training"):
        assert getattr(cell.metrics, workload).problems == [], "no compilation inside the timed calls"

    assert perturbed.status == "ok", perturbed.reason
    assert perturbed.correctness.verdict == "fail", "a weight scaled by 1.01 must not pass"
