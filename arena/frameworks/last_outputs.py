"""A training step that keeps only its last call's outputs, for the frameworks whose step returns a new
set of gradients on every call (JAX, TensorFlow, MLX).

The cell holds the value a call returns until it is replaced: the first call's through the timed calls
(arena/run/child.py), the last warm-up's and each timed call's until the next one has returned
(arena/run/timing.py). When that value is the gradients, up to three stale sets of them sit in memory
beside the running step (tests/frameworks/test_last_outputs.py): 3.4 GB each for SD 1.5, which got
TensorFlow's SD cell OOM-killed in 24 GiB (its step alone peaks at 11.8 GiB).

torch's step returns only the loss (its gradients live in the parameters' `.grad`, set to None before
each backward), the Rust frameworks keep their outputs in the model and drop them before the next call
(rust_ext/*/src/lib.rs), and a TinyJit writes every call's outputs into the same buffers. A step made
here does as those do: `run` drops the previous outputs, keeps the new ones and returns nothing; `fetch`
reads what was kept. Peak memory then counts one set of gradients in every framework, as a training
loop that consumes each step's gradients before the next does.

The principled place for this is the timing loop itself; it lives here because the loop is in every
result's fingerprint, so moving it waits for a full re-run of the matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from arena.frameworks.contract import Step


def keeping_last(run: Callable[[], Any], fetch: Callable[[Any], dict[str, np.ndarray]], watch: Callable[[], Callable[[], list[str]]] | None = None) -> Step:
    """`run`/`fetch` as a Step that holds one call's outputs at a time, freed at the start of the next
    call (inside it, as torch frees its `.grad` inside its step)."""
    kept: list[Any] = []

    def run_keeping() -> None:
        kept.clear()
        kept.append(run())

    def fetch_kept(_: None) -> dict[str, np.ndarray]:
        return fetch(kept[0])

    return Step(run=run_keeping, fetch=fetch_kept) if watch is None else Step(run=run_keeping, fetch=fetch_kept, watch=watch)
