"""MAX without a cell: a cell whose threads are not the cores MAX would use is unavailable with the
reason (MAX 26.7 cannot be told its threads), and `mask_bits`, which MAX computes arithmetically for
want of a bitcast, agrees bit for bit with the bit mask it stands for."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("max")

from arena.frameworks import max as adapter  # noqa: E402
from arena.frameworks.contract import BuildContext  # noqa: E402
from arena.frameworks.max import common  # noqa: E402
from arena.frameworks.max import layers as nn  # noqa: E402
from arena.families.vla_expert import TOP_BITS  # noqa: E402

CORES = len(os.sched_getaffinity(0))


def test_a_cell_on_fewer_threads_than_cores_is_unavailable_with_the_reason():
    found = adapter.probe(BuildContext(device="cpu", dtype="fp32", threads=CORES + 1))
    assert not found.available
    assert f"{CORES + 1} thread(s)" in found.reason and "num_threads" in found.reason


def test_the_cpu_probe_records_the_threads_it_runs_on():
    found = adapter.probe(BuildContext(device="cpu", dtype="fp32", threads=CORES))
    assert found.available, found.reason
    assert found.settings["num_threads"].startswith(f"{CORES} ")


@pytest.mark.max  # compiles a graph: a minute or more on a cold MAX cache
def test_mask_bits_matches_the_bit_mask_for_every_kind_of_float():
    values = np.array([0.0, -0.0, 1.0, 0.5, 0.999, 1e-3, 0.7071, 3.0, 1234.5678, -0.3, -1e-30, 2.0**-126, 1.5 * 2.0**-126, 7.5e30, 0.1 + 2.0**-20], np.float32)
    values = np.concatenate([values, np.random.default_rng(0).uniform(-2, 2, 200).astype(np.float32)])
    ctx = BuildContext(device="cpu", dtype="fp32", threads=CORES)
    model = common.build_model(None, {}, ctx)
    compiled, _, _ = common.graph(model, "mask_bits", lambda p, x: {"kept": nn.mask_bits(x, TOP_BITS)}, {"x": values})
    got = common.to_numpy(compiled.execute(*common.to_buffers(model, {"x": values}))[0])
    wanted = (values.view(np.uint32) & np.uint32(TOP_BITS)).view(np.float32)
    assert got.view(np.uint32).tolist() == wanted.view(np.uint32).tolist()
