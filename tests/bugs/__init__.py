"""A framework adapter that runs a real implementation with one realistic bug injected (issue 15 §4).

Used as framework `tests.bugs-<bug>-<framework>`: the bug from `tests/bugs/catalogue.py`, injected
into the named framework's implementation of the family (torch's official modules for most bugs;
ONNX Runtime and GGML, conversion included, for the converter's); `tests.bugs-unchanged-torch` is
the control, nothing injected. Every such cell must get the
verdict `fail`; `python -m tests.bugs.table` measures which check catches each one, and
tests/results/test_injected_bugs.py asserts it at the tiny presets.
"""

from arena.frameworks.contract import unsupported_reason
from tests.bugs.catalogue import BUGS, FAMILIES
from tests.faults import probe, process_env, wrapped_unsupported  # noqa: F401  (the wrapped framework's own)

DISTRIBUTION = "numpy"
INSTALL_HINT = "(test adapter)"
# The control: the same wrapper and path with nothing injected, which must pass (else a `fail` proves nothing).
CONTROL = "unchanged-torch"
VARIANTS = {f"{bug.name}-{fw}": f"{fw} with {bug.what}" for bug in BUGS.values() for fw in bug.frameworks} | {
    CONTROL: "torch through the same wrapper, nothing injected"}
UNSUPPORTED = wrapped_unsupported(VARIANTS) | {
    f"{bug.name}-{fw}:{family}": f"the bug {bug.name} has no form in {family}"
    for bug in BUGS.values() for fw in bug.frameworks for family in FAMILIES if family not in bug.families
}


def applicable(family: str) -> list[str]:
    """The bug variants that run for a family: the bug has a form there and the wrapped framework runs it."""
    return [v for v in VARIANTS if v != CONTROL and not unsupported_reason(UNSUPPORTED, family, variant=v)]
