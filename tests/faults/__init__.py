"""A framework adapter that misbehaves on purpose, to test that the runner records each failure.

Used as framework `tests.faults-<variant>`. The `perturb`, `nan` and `bn_momentum` variants run a real
implementation (PyTorch's; `perturb-<framework>` another framework's) with one weight scaled by 1.01
(the largest floating tensor, or $ARENA_TEST_PERTURB), with NaN outputs, or with BatchNorms that move
their running statistics twice as far, so they test the comparison, not a mock of it.
"""

from arena.frameworks import load_adapter
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
    "perturb": "torch reference with one weight scaled by 1.01",
    "nan": "torch reference whose inference outputs are NaN",
    "bn_momentum": "torch reference whose BatchNorms move their running statistics with momentum 0.2, not 0.1",
    "perturb-jax": "the JAX implementation with one weight scaled by 1.01",
    "perturb-mlx": "the MLX implementation with one weight scaled by 1.01",
    "perturb-onnxruntime": "the ONNX Runtime path (export included) with one weight scaled by 1.01",
    "perturb-openvino": "the OpenVINO path (ONNX export and IR conversion included) with one weight scaled by 1.01",
    "perturb-ggml": "the llama.cpp / whisper.cpp path (conversion included) with one weight scaled by 1.01",
    "perturb-candle": "the Candle implementation (Rust extension) with one weight scaled by 1.01",
    "perturb-burn": "the Burn implementation (Rust extension) with one weight scaled by 1.01",
}


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


UNSUPPORTED = wrapped_unsupported(v for v in VARIANTS if v.startswith("perturb-"))


def process_env(ctx: BuildContext) -> dict[str, str]:
    adapter, _ = load_adapter(wrapped_framework(ctx.variant))
    return getattr(adapter, "process_env", lambda ctx: {})(ctx.model_copy(update={"variant": ""}))


def probe(ctx: BuildContext) -> Probe:
    """The wrapped framework's own probe (its thread and precision settings apply), labelled a test."""
    adapter, _ = load_adapter(wrapped_framework(ctx.variant))
    found = adapter.probe(ctx.model_copy(update={"variant": ""}))
    return found.model_copy(update={"backend": f"test wrapping {found.backend}"})
