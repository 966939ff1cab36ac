"""A framework adapter that misbehaves on purpose, to test that the runner records each failure.

Used as framework `tests.faults-<variant>`. The `perturb` and `nan` variants run the real PyTorch
implementation with one weight scaled by 1.01 (the largest floating tensor, or $ARENA_TEST_PERTURB)
or with NaN outputs, so they test the comparison, not a mock of it.
"""

from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "numpy"
INSTALL_HINT = "(test adapter)"
VARIANTS = {
    "plain": "the torch reference implementation, unchanged, run as if it were another framework",
    "raise": "build raises",
    "segfault": "build dereferences a null pointer",
    "hang": "build sleeps forever",
    "exit": "training calls os._exit(3) after inference succeeded",
    "perturb": "torch reference with one weight scaled by 1.01",
    "nan": "torch reference whose inference outputs are NaN",
}
UNSUPPORTED: dict[str, str] = {}


def probe(ctx: BuildContext) -> Probe:
    return Probe(available=True, version="0", backend="test", device_name=ctx.device)
