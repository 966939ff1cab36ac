"""Every spec at `tiny`, through the real runner: the torch.compile variant must pass against the eager
reference on outputs, loss and gradients, and the reference with one weight scaled by 1.01 must fail.
Parametrised over specs/models, so a new spec is tested without touching this file."""

from __future__ import annotations

import pytest

from arena.families import resnet
from arena.specs import load_specs
from tests.conftest import SPEC_NAMES

pytest.importorskip("torch")


def training_output_checks(model: str) -> set[str]:
    """The checks of training outputs besides the loss a training cell must have: ResNet's BatchNorm
    running statistics, one check per buffer."""
    spec = load_specs()[model]
    if spec.family != "resnet":
        return set()
    return {f"training/{name}" for name in resnet.running_stat_outputs(spec.presets["tiny"].config)}


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
    assert training_output_checks(model) <= checked

    assert perturbed.status == "ok", perturbed.reason
    assert perturbed.correctness.verdict == "fail", "a weight scaled by 1.01 must not pass"


def run_with_perturbed(run_matrix, model: str, framework: str, compared: tuple[str, ...]):
    """The framework's cell and the same implementation with one weight x1.01, run against the reference.
    The cell must pass with something compared for each prefix in `compared`; the perturbed one must fail."""
    perturbed_name = f"tests.faults-perturb-{framework}"
    results = run_matrix([model], ["torch", framework, perturbed_name])
    cell, perturbed = results[f"{model}:{framework}"], results[f"{model}:{perturbed_name}"]
    assert cell.status == "ok", cell.reason
    assert cell.correctness.verdict == "pass", cell.correctness.reason
    checked = {c.name for c in cell.correctness.checks}
    for prefix in compared:
        assert any(name.startswith(prefix) for name in checked), f"nothing compared for {prefix}: {checked}"
    assert perturbed.status == "ok", perturbed.reason
    assert perturbed.correctness.verdict == "fail", "a weight scaled by 1.01 must not pass"
    return cell


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["jax", "mlx", "candle", "burn"])
@pytest.mark.parametrize("model", SPEC_NAMES)
def test_framework_passes_and_a_perturbed_weight_fails(run_matrix, model, framework):
    """Outputs, loss and every gradient of the hand-written implementation match the reference; the
    same implementation with one weight scaled by 1.01 does not."""
    pytest.importorskip({"jax": "jax", "mlx": "mlx.core", "candle": "arena._native", "burn": "arena._native"}[framework])
    cell = run_with_perturbed(run_matrix, model, framework, ("inference/", "latency/", "training/loss", "training/grads"))
    for workload in ("inference", "latency", "training"):
        assert getattr(cell.metrics, workload).problems == [], "no compilation inside the timed calls"
    assert training_output_checks(model) <= {c.name for c in cell.correctness.checks}


@pytest.mark.slow
def test_resnet_with_a_wrong_batchnorm_momentum_fails(run_matrix):
    """Loss and gradients of a train-mode step do not depend on BatchNorm's momentum; the running
    statistics it leaves do. The reference with momentum 0.2 (torch's is 0.1) must fail, on them only."""
    results = run_matrix(["resnet-50"], ["torch", "tests.faults-bn_momentum"])
    cell = results["resnet-50:tests.faults-bn_momentum"]
    assert cell.status == "ok", cell.reason
    assert cell.correctness.verdict == "fail", "BatchNorm momentum 0.2 must not pass"
    checks = {c.name: c.passed for c in cell.correctness.checks}
    assert checks["training/loss"] and checks["training/grads"] and checks["inference/logits"]
    failed = {name for name, passed in checks.items() if not passed}
    assert failed <= training_output_checks("resnet-50"), failed
    assert {name for name in training_output_checks("resnet-50") if name.endswith(".running_mean")} <= failed


def runtime_cells() -> list[tuple[str, str]]:
    """(framework, model) for the inference runtimes: ONNX Runtime and OpenVINO for every spec, GGML for
    the families it declares supported."""
    from arena.frameworks import load_adapter
    from arena.frameworks.contract import unsupported_reason
    from arena.specs import load_spec, spec_files

    ggml, _ = load_adapter("ggml")
    families = {p.stem: load_spec(p).family for p in spec_files()}
    return ([("onnxruntime", m) for m in SPEC_NAMES] + [("ggml", m) for m in SPEC_NAMES if not unsupported_reason(ggml.UNSUPPORTED, families[m])]
            + [("openvino", m) for m in SPEC_NAMES])


@pytest.mark.slow
@pytest.mark.parametrize(("framework", "model"), runtime_cells())
def test_runtime_passes_and_a_perturbed_weight_fails(run_matrix, framework, model):
    """A deployment runtime fed by a conversion (ONNX export, IR, GGUF / GGML file): outputs of inference
    and the KV-cache decode step match the reference; training is unsupported with its reason; the
    conversion is recorded. The same path with one weight scaled by 1.01 (converted afresh) fails."""
    pytest.importorskip({"onnxruntime": "onnxruntime", "ggml": "llama_cpp", "openvino": "openvino"}[framework])
    cell = run_with_perturbed(run_matrix, model, framework, ("inference/", "latency/"))
    assert cell.metrics.training.status == "unsupported" and cell.metrics.training.reason
    conversion = cell.metrics.prepare.conversion
    assert conversion is not None and conversion.bytes > 0 and conversion.files


@pytest.mark.slow
def test_a_family_a_runtime_cannot_run_is_unsupported_with_the_reason(run_matrix):
    results = run_matrix(["resnet-50"], ["torch", "ggml"])
    cell = results["resnet-50:ggml"]
    assert cell.status == "unsupported" and "ResNet" in cell.reason
    assert cell.metrics.inference is None, "nothing ran"
