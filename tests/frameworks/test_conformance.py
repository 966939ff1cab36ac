"""Every framework against the reference at every spec's `tiny` preset, through the real runner: a pair
the framework runs must pass on outputs, loss and gradients of every workload it does not declare
unsupported, and the same implementation with one weight scaled by 1.01 must fail its inference (the
twin runs inference only where the framework builds per workload: tests/faults/__init__.py); a pair it declares
unsupported is recorded so, with the declared reason. Parametrised over the adapters in arena/frameworks
(each variant a framework) and over specs/models, so a new framework, family or spec is tested without
touching this file.

Each framework's cells run as one matrix (every model, the framework and its perturbed twin), once per
test session, into a results folder the session shares: the reference's own cells run once, in the
first framework's matrix, and every later matrix keeps them as any re-run keeps a valid result, so a
framework's tests cost its own cells only."""

from __future__ import annotations

import pytest

from arena.families import resnet
from arena.families.base import WORKLOADS
from arena.frameworks import framework_names, load_adapter, rust_native
from arena.frameworks.contract import REFERENCE_FRAMEWORK, unsupported_reason
from arena.results.schema import Result
from arena.specs import load_specs
from tests.conftest import SPEC_NAMES, run_matrix_in
from tests.faults import converts

pytest.importorskip("torch")


def training_output_checks(model: str) -> set[str]:
    """The checks of training outputs besides the loss a training cell must have: ResNet's BatchNorm
    running statistics, one check per buffer."""
    spec = load_specs()[model]
    if spec.family != "resnet":
        return set()
    return {f"training/{name}" for name in resnet.running_stat_outputs(spec.presets["tiny"].config)}


def not_here(adapter, reason: str) -> bool:
    """An unavailable cell that is this machine's, not the framework's failure: the framework is not
    installed (its install hint), a variant built as a module of its own is not built (its build command:
    `rust_native.VARIANT_MODULES`), or the CPU cannot run it (MKL on a CPU that is not x86-64)."""
    hints = [adapter.INSTALL_HINT, *(how for _, how in rust_native.VARIANT_MODULES.values()), rust_native.MKL_NOT_X86]
    return any(hint in reason for hint in hints)


def perturbed_twin(framework: str) -> str:
    """The same implementation with one weight perturbed: the package's plain variant (torch-compile's is eager torch)."""
    adapter, _ = load_adapter(framework)
    return f"tests.faults-perturb-{adapter.__name__.rsplit('.', 1)[-1]}"


@pytest.fixture(scope="session")
def conformance(tmp_path_factory, shared_cache):
    """framework -> its matrix's results by "model:framework" (run on first use, then kept)."""
    results_dir, runs = tmp_path_factory.mktemp("conformance"), {}

    def results(framework: str) -> dict[str, Result]:
        if framework not in runs:
            runs[framework] = run_matrix_in(results_dir, shared_cache, SPEC_NAMES, [REFERENCE_FRAMEWORK, framework, perturbed_twin(framework)])
        return runs[framework]

    return results


# Frameworks whose conformance is left out of the default test command, in a marked group of their own
# (pyproject.toml's markers): MAX compiles every workload's graphs on first use, 16 min for its five
# tiny models and their twins on a cold compile cache on 2 cores (measured, with the torch references).
OWN_GROUP = {"max": (pytest.mark.max,)}


def matrix_timeout_s() -> float:
    """What a framework's matrix may take: every cell its spec's own timeout (the runner kills a cell
    past it). The first test of a framework runs the whole matrix, so pytest-timeout's per-test default
    would cut a slow but healthy matrix short (torch-compile's took more than 600 s in CI)."""
    cells_per_model = 3  # the reference, the framework and its perturbed twin (the fixture's matrix)
    return sum(spec.presets["tiny"].timeout_s for spec in load_specs(names=SPEC_NAMES).values()) * cells_per_model


@pytest.mark.slow
@pytest.mark.timeout(matrix_timeout_s())
@pytest.mark.parametrize("framework", [pytest.param(fw, marks=[pytest.mark.xdist_group(fw), *OWN_GROUP.get(fw, ())]) for fw in framework_names() if fw != REFERENCE_FRAMEWORK])
@pytest.mark.parametrize("model", SPEC_NAMES)
def test_framework_passes_and_a_perturbed_weight_fails(conformance, model, framework):
    adapter, variant = load_adapter(framework)
    family = load_specs()[model].family
    results = conformance(framework)
    reference, cell, perturbed = (results[f"{model}:{fw}"] for fw in (REFERENCE_FRAMEWORK, framework, perturbed_twin(framework)))
    declared = unsupported_reason(adapter.UNSUPPORTED, family, variant=variant)
    if declared:
        assert cell.status == "unsupported" and cell.reason == declared
        assert cell.metrics.inference is None, "nothing ran"
        return

    assert reference.status == "ok" and reference.correctness.verdict == "reference", reference.reason
    if cell.status == "unavailable" and not_here(adapter, cell.reason):
        pytest.skip(cell.reason)
    assert cell.status == "ok", cell.reason
    assert cell.correctness.verdict == "pass", cell.correctness.reason

    checked = {c.name for c in cell.correctness.checks}
    for workload in WORKLOADS:
        metrics, why = getattr(cell.metrics, workload), unsupported_reason(adapter.UNSUPPORTED, family, workload, variant)
        if why:
            assert metrics.status == "unsupported" and metrics.reason == why
            continue
        assert metrics.problems == [], "no compilation inside the timed calls"
        assert any(name.startswith(f"{workload}/") for name in checked), f"nothing compared for {workload}: {checked}"
    if not unsupported_reason(adapter.UNSUPPORTED, family, "training", variant):
        assert {"training/loss", "training/grads"} | training_output_checks(model) <= checked
    conversion = cell.metrics.prepare.conversion
    if converts(adapter):
        assert conversion is not None and conversion.bytes > 0 and conversion.files

    assert perturbed.status == "ok", perturbed.reason
    assert perturbed.correctness.verdict == "fail", "a weight scaled by 1.01 must not pass"
    assert any(not c.passed for c in perturbed.correctness.checks if c.name.startswith("inference/")), "its inference shows it"


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

