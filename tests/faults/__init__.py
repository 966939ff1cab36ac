"""A framework adapter that misbehaves on purpose, to test that the runner records each failure.

Used as framework `tests.faults-<variant>`. The `perturb-<package>`, `nan` and `bn_momentum` variants
run a real implementation (`perturb-<package>` that of every package in arena/frameworks, in its plain
variant; the others PyTorch's) with one weight scaled by 1.01 (the largest floating tensor, or
$ARENA_TEST_PERTURB), with NaN outputs, or with BatchNorms that move their running statistics twice as
far, so they test the comparison, not a mock of it.
"""

from arena.frameworks import known_packages, load_adapter
from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "numpy"
INSTALL_HINT = "(test adapter)"
VARIANTS = {
    "plain": "the torch reference implementation, unchanged, run as if it were another framework",
    "raise": "build raises",
    "segfault": "build dereferences a null pointer",
    "hang": "build sleeps forever",
    "exit": "training calls os._exit(3) after inference succeeded",
    "trainerror": "the torch reference whose training step raises (inference and latency succeed)",
    "nan": "torch reference whose inference outputs are NaN",
    "bn_momentum": "torch reference whose BatchNorms move their running statistics with momentum 0.2, not 0.1",
} | {f"perturb-{package}": f"the {package} implementation (its conversion, if any, included) with one weight scaled by 1.01"
     for package in known_packages()}


def wrapped_unsupported(variants) -> dict[str, str]:
    """What each variant's wrapped framework declares unsupported, keyed for that variant only (adapter
    packages import no framework, so this costs nothing)."""
    declared = {}
    for variant in variants:
        adapter, _ = load_adapter(wrapped_framework(variant))
        declared |= {f"{variant}:{key}": reason for key, reason in adapter.UNSUPPORTED.items()}
    return declared


def wrapped_framework(variant: str) -> str:
    """The framework a variant runs, named after its first dash: `perturb-jax` -> jax, `tanh_gelu-torch`
    (tests.bugs) -> torch; a variant without one -> torch."""
    return variant.partition("-")[2] or "torch"


def converts(adapter) -> bool:
    """A converting runtime: it runs the conversion cache (arena/frameworks/conversion.py, in its SOURCES),
    records its conversion in every cell and builds every workload's graph in one conversion."""
    return "arena/frameworks/conversion.py" in getattr(adapter, "SOURCES", ())


def twin_workloads_skipped(variant: str) -> dict[str, str]:
    """A `perturb-<package>` twin proves that a changed weight fails the verdict, and its inference
    shows that (tests/frameworks/test_conformance.py asserts an inference check fails): it skips the
    other workloads, whose compiles would double the framework's test time for nothing more. A
    converting runtime (`converts`) builds every workload's graph in one conversion from the inputs it
    is given, so its twin runs them all."""
    adapter, _ = load_adapter(wrapped_framework(variant))
    if converts(adapter):
        return {}
    why = "the perturbed twin runs inference only: a changed weight must fail it (tests/faults/__init__.py)"
    return {f"{variant}:*/{workload}": why for workload in ("latency", "training")}


TWINS = [v for v in VARIANTS if v.startswith("perturb-")]
UNSUPPORTED = wrapped_unsupported(TWINS) | {key: why for v in TWINS for key, why in twin_workloads_skipped(v).items()}


def process_env(ctx: BuildContext) -> dict[str, str]:
    adapter, _ = load_adapter(wrapped_framework(ctx.variant))
    return getattr(adapter, "process_env", lambda ctx: {})(ctx.model_copy(update={"variant": ""}))


def probe(ctx: BuildContext) -> Probe:
    """The wrapped framework's own probe (its thread and precision settings apply), labelled a test."""
    adapter, _ = load_adapter(wrapped_framework(ctx.variant))
    found = adapter.probe(ctx.model_copy(update={"variant": ""}))
    return found.model_copy(update={"backend": f"test wrapping {found.backend}"})
