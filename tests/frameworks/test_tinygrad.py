"""tinygrad without a cell: its CPU device without clang is unavailable with the install line, and a
step's watch reports timed calls that were not replays of a captured TinyJit (tinygrad captures on a
function's second call; a timed call before that would time scheduling and kernel compilation)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tinygrad")

from tinygrad import Tensor  # noqa: E402

from arena.frameworks import tinygrad as adapter  # noqa: E402
from arena.frameworks.contract import BuildContext  # noqa: E402
from arena.frameworks.tinygrad.common import Model, forward_step  # noqa: E402

CPU = BuildContext(device="cpu", dtype="fp32", threads=1)


def test_the_cpu_device_without_its_compiler_is_unavailable_with_the_install_line(monkeypatch):
    monkeypatch.setenv("CC", "no-such-clang")
    found = adapter.probe(CPU)
    assert not found.available
    assert "no-such-clang" in found.reason and "apt install clang" in found.reason


def test_the_cpu_probe_records_the_jit_and_the_one_thread_its_kernels_run_on():
    found = adapter.probe(CPU)
    assert found.available, found.reason
    assert found.settings["jit"] == 1 and found.settings["beam"] == 0
    assert found.settings["intra_op_threads"].startswith("1 ")


def test_the_watch_reports_timed_calls_before_the_jit_captured_and_none_after():
    x = Tensor(np.arange(4, dtype=np.float32)).realize()
    step = forward_step(lambda x: {"y": x * 2 + 1}, Model(None, {}, CPU, []), x)

    step.run()  # the cold call: runs the function
    problems = step.watch()
    value = step.run()  # the capture
    assert any("had not captured" in p for p in problems())

    problems = step.watch()
    value = step.run()  # a replay of the captured kernels
    assert problems() == []
    np.testing.assert_array_equal(step.fetch(value)["y"], [1, 3, 5, 7])


def test_release_cached_gives_back_the_buffers_tinygrad_keeps_for_reuse():
    """tinygrad's LRU allocator keeps a freed buffer for reuse; between workloads the cell gives them back."""
    from tinygrad import Device

    allocator = Device[adapter.device(CPU)].allocator

    def cached_bytes() -> int:
        return sum(size * len(opaques) for (size, _), opaques in allocator.cache.items())

    y = (Tensor(np.ones(2**20, dtype=np.float32)) * 2).realize()  # a 4 MiB buffer of tinygrad's own
    del y
    assert cached_bytes() >= 4 * 2**20, "the freed buffer stays in the cache"
    adapter.release_cached(CPU)
    assert cached_bytes() == 0
