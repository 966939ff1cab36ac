"""A step that returns new gradients on every call holds one set at a time through the cell's real timing
loop, and still hands the last call's outputs to the comparison."""

from __future__ import annotations

import weakref

import numpy as np

from arena.frameworks.contract import Step
from arena.frameworks.last_outputs import keeping_last
from arena.run.timing import PeakRss, measure, time_call
from arena.specs.schema import Timing

TIMING = Timing(warmup=2, min_reps=3, min_seconds=0.0, max_reps=3)


class Grads:
    """Stands for a call's new set of gradients; `alive` tracks every set not yet freed."""

    def __init__(self, alive: list[weakref.ref], call: int):
        self.call, self.values = call, np.full(4, float(call))
        alive.append(weakref.ref(self))


def earlier_sets_alive_per_call(make_step) -> tuple[list[int], dict[str, np.ndarray]]:
    """Drive a step as arena.run.child does (first call held, then `measure`); for each call, how many
    earlier calls' outputs were still alive when it started, and what `fetch` returned at the end."""
    alive: list[weakref.ref] = []
    seen: list[int] = []

    def run() -> Grads:
        seen.append(sum(ref() is not None for ref in alive))
        return Grads(alive, len(seen))

    step = make_step(run, lambda grads: {"grad/w": grads.values, "call": np.array(grads.call)})
    first_ms, first = time_call(step)
    measured = measure(step, TIMING, first_ms, PeakRss())
    return seen, step.fetch(measured.value)


def test_a_kept_step_frees_each_call_s_gradients_before_the_next_call():
    seen, fetched = earlier_sets_alive_per_call(keeping_last)
    assert seen == [0] * 6, "no call starts beside an earlier call's gradients"
    assert fetched["call"] == 6 and np.all(fetched["grad/w"] == 6.0), "fetch reads the last call's outputs"


def test_a_plain_step_would_hold_earlier_gradients_through_the_timed_calls():
    """What keeping_last is for: the loop holds the first call's value, the last warm-up's and the
    previous timed call's."""
    seen, _ = earlier_sets_alive_per_call(lambda run, fetch: Step(run=run, fetch=fetch))
    assert seen == [0, 1, 2, 2, 3, 3]
