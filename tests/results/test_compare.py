"""The comparison itself: it must pass the same model and fail every kind of different one."""

from __future__ import annotations

import numpy as np
import pytest

from arena.results.artifact import fingerprint, sample_indices
from arena.results.compare import compare
from arena.specs.schema import GradTolerance, LossTolerance, OutputTolerance, Tolerances

TOL = Tolerances(
    output=OutputTolerance(atol=1e-4, rtol=1e-3, min_cosine=0.9999),
    loss=LossTolerance(atol=1e-5, rtol=1e-4),
    grad=GradTolerance(norm_rtol=1e-3, sample_rel_l2=1e-2, min_cosine=0.999),
)


def _artifact(seed=0, logits_scale=1.0, loss=2.5, grad_scale=1.0, drop_grad=None):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (2, 4, 50)).astype(np.float32) * logits_scale
    grads = {f"grad/w{i}": rng.normal(0, 1e-3, (64, 32)).astype(np.float32) * grad_scale for i in range(3)}
    if drop_grad:
        del grads[drop_grad]
    return fingerprint({"inference": {"logits": logits}, "training": {"loss": np.array(loss, np.float32)} | grads})


def test_same_model_passes_with_figures():
    result = compare(_artifact(), _artifact(), TOL)
    assert result.verdict == "pass", result.reason
    names = {c.name for c in result.checks}
    assert names == {"inference/logits", "training/loss", "training/grads"}
    logits = next(c for c in result.checks if c.name == "inference/logits")
    assert logits.figures["max_abs"] == 0.0 and logits.figures["cosine"] == pytest.approx(1.0)
    assert logits.figures["argmax_agree"] == 1.0


def test_one_percent_output_change_fails():
    result = compare(_artifact(logits_scale=1.01), _artifact(), TOL)
    assert result.verdict == "fail"
    assert "inference/logits" in result.reason


def test_all_zero_output_fails_even_against_a_tiny_reference():
    reference = _artifact(logits_scale=1e-9)
    candidate = dict(reference) | {"inference/logits": np.zeros_like(reference["inference/logits"])}
    result = compare(candidate, reference, TOL)
    assert result.verdict == "fail"
    assert "all-zero output" in result.reason


def test_constant_and_nan_outputs_fail():
    reference = _artifact()
    for bad, phrase in ((np.full_like(reference["inference/logits"], 0.5), "constant output"),
                        (reference["inference/logits"] * np.nan, "non-finite")):
        result = compare(dict(reference) | {"inference/logits": bad}, reference, TOL)
        assert result.verdict == "fail" and phrase in result.reason


def test_small_loss_is_compared_without_a_floor():
    """The public anchor's max(|L|, 1) floor let any near-zero loss pass; ours does not."""
    result = compare(_artifact(loss=0.002), _artifact(loss=0.001), TOL)
    assert result.verdict == "fail"
    assert "training/loss" in result.reason


def test_gradient_changes_fail():
    assert compare(_artifact(grad_scale=1.01), _artifact(), TOL).verdict == "fail"
    swapped = _artifact()
    swapped["training/grad_sample/w0"] = swapped["training/grad_sample/w0"][::-1].copy()
    assert compare(swapped, _artifact(), TOL).verdict == "fail"


def test_missing_gradient_fails():
    result = compare(_artifact(drop_grad="grad/w1"), _artifact(), TOL)
    assert result.verdict == "fail"
    assert "no gradient for 1 tensors" in result.reason


def test_shape_mismatch_fails():
    candidate = dict(_artifact()) | {"inference/logits": _artifact()["inference/logits"][:, :3]}
    assert "shape" in compare(candidate, _artifact(), TOL).reason


def test_nothing_to_compare_is_not_applicable():
    assert compare({}, _artifact(), TOL).verdict == "n/a"


def test_gradient_samples_use_the_same_indices_everywhere():
    assert np.array_equal(sample_indices("a.weight", 10_000), sample_indices("a.weight", 10_000))
    assert not np.array_equal(sample_indices("a.weight", 10_000), sample_indices("b.weight", 10_000))
    assert len(sample_indices("small", 10)) == 10


def test_an_output_missing_from_a_workload_that_ran_fails():
    rng = np.random.default_rng(1)
    logits, hidden = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    reference = fingerprint({"inference": {"logits": logits, "hidden": hidden}})
    result = compare(fingerprint({"inference": {"logits": logits}}), reference, TOL)
    assert result.verdict == "fail"
    assert [c.name for c in result.checks if not c.passed] == ["inference/hidden"]


def test_a_workload_the_candidate_did_not_run_is_not_compared():
    """An inference runtime's cell (training unsupported) is judged on what it ran."""
    reference = _artifact()
    inference_only = {k: v for k, v in reference.items() if k.startswith("inference/")}
    result = compare(inference_only, reference, TOL)
    assert result.verdict == "pass" and {c.name for c in result.checks} == {"inference/logits"}


def test_a_supported_workload_without_its_outputs_fails():
    """A cell whose training errored (or skipped its loss) cannot pass on the workloads that ran."""
    reference = _artifact()
    inference_only = {k: v for k, v in reference.items() if k.startswith("inference/")}
    result = compare(inference_only, reference, TOL, workloads={"inference", "training"})
    assert result.verdict == "fail"
    assert {c.name for c in result.checks if not c.passed} == {"training/loss", "training/grads"}
    no_loss = {k: v for k, v in reference.items() if k != "training/loss"}
    assert compare(no_loss, reference, TOL).reason.startswith("training/loss: missing")


def _outside_the_sample(name: str, size: int, count: int) -> np.ndarray:
    sampled = set(sample_indices(name, size).tolist())
    return np.array([i for i in range(size) if i not in sampled][:count])


@pytest.mark.parametrize("error", ["sign flips", "permutation"])
def test_a_norm_preserving_error_outside_the_sample_fails_through_the_projections(error):
    """Norms and the 256 sampled elements cannot see these; the seeded projections over all elements can."""
    rng = np.random.default_rng(3)
    grad = rng.normal(0, 1e-3, (64, 64)).astype(np.float32)  # 4096 elements, 256 sampled
    where = _outside_the_sample("w", grad.size, 40)  # 1 % of the tensor
    wrong = grad.reshape(-1).copy()
    wrong[where] = -wrong[where] if error == "sign flips" else wrong[where[::-1]]
    reference = fingerprint({"training": {"loss": np.array(1.0), "grad/w": grad}})
    candidate = fingerprint({"training": {"loss": np.array(1.0), "grad/w": wrong.reshape(grad.shape)}})
    assert np.array_equal(candidate["training/grad_sample/w"], reference["training/grad_sample/w"])
    assert candidate["training/grad_norm/w"] == pytest.approx(reference["training/grad_norm/w"], rel=1e-12)
    result = compare(candidate, reference, TOL)
    assert result.verdict == "fail" and "w: projection_rel" in result.reason
    grads = next(c for c in result.checks if c.name == "training/grads")
    assert grads.figures["worst_projection_rel"] > TOL.grad.sample_rel_l2


def test_projections_of_a_correct_gradient_agree_within_rounding():
    grad = np.random.default_rng(4).normal(0, 1e-3, (300, 7)).astype(np.float32)
    rounded = (grad.astype(np.float64) * (1 + 1e-7)).astype(np.float32)
    result = compare(fingerprint({"training": {"grad/w": rounded, "loss": np.array(1.0)}}),
                     fingerprint({"training": {"grad/w": grad, "loss": np.array(1.0)}}), TOL)
    assert result.verdict == "pass", result.reason


LOOSE = TOL.model_copy(update={"output": OutputTolerance(atol=0.5, rtol=0.0, min_cosine=0.0)})


def _two_class_logits(top: float, second: float) -> np.ndarray:
    return np.array([[[top, second, -5.0]]], np.float32)


def test_an_argmax_flip_across_more_than_one_tolerance_fails_within_elementwise_bounds():
    """Each logit is within atol 0.5, yet the reference prefers class 0 by 0.7: not a near-tie."""
    reference = fingerprint({"inference": {"logits": _two_class_logits(1.0, 0.3)}})
    candidate = fingerprint({"inference": {"logits": _two_class_logits(0.6, 0.75)}})
    result = compare(candidate, reference, LOOSE)
    assert result.verdict == "fail" and "argmax differs" in result.reason
    assert result.checks[0].figures["argmax_decisive_disagree"] == 1.0


def test_an_argmax_flip_in_a_near_tie_passes():
    reference = fingerprint({"inference": {"logits": _two_class_logits(1.0, 0.7)}})
    candidate = fingerprint({"inference": {"logits": _two_class_logits(0.8, 0.9)}})
    result = compare(candidate, reference, LOOSE)
    assert result.verdict == "pass", result.reason
    assert result.checks[0].figures["argmax_agree"] == 0.0
