"""Whether an accelerator a framework reports is one it can use: a small allocation and kernel, run.

A framework's "is available" answers what was compiled in and what the driver lists, not whether work
runs there. GitHub's hosted macOS arm64 runners are virtual machines without Metal/MPS support (their
documentation says so), yet `torch.backends.mps.is_available()` answers True there and the first
allocation fails (actions/runner-images#9918, pytorch/pytorch#125197); ONNX Runtime given a provider it
cannot load warns and runs the graph on its CPU provider instead. So a probe declares an accelerator
available only after `first_kernel` ran something on it.
"""

from __future__ import annotations

from collections.abc import Callable

REASON_CHARS = 400


def first_kernel(device: str, trial: Callable[[], object]) -> str:
    """"" when `trial` (a small allocation and kernel on `device`, synchronised) ran, else the reason
    the cell records as unavailable: what the framework reported, and how the first use failed."""
    try:
        trial()
    except Exception as err:  # whatever the framework raises: the device cannot be used, and why goes in the result
        return f"{device} is reported available, but a small allocation and kernel on it failed: {type(err).__name__}: {err}"[:REASON_CHARS]
    return ""
