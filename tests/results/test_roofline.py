"""Results placed under their machine's measured roof (arena/results/roofline.py), worked by hand."""

from __future__ import annotations

import pytest

from arena.results.machine import Bandwidth, GemmPeak, MachinePeak
from arena.results.roofline import place, roof, weight_bytes
from arena.results.store import load_result
from arena.specs import load_specs
from tests.site.conftest import REPO

# Round figures: on 2 threads the balance point is 200 / 25 = 8 FLOP per byte.
MACHINE = MachinePeak(probe_version=1, platform_id="amd-epyc-2c", cpu_model="test", isa=[], torch_cpu_capability="AVX512",
                      gemm=[GemmPeak(library="torch.mm", threads=t, n=2048, gflops_per_s=100.0 * t) for t in (1, 2)],
                      triad=[Bandwidth(threads=t, bytes_per_array=1, gb_per_s=gb) for t, gb in ((1, 20.0), (2, 25.0))],
                      measured="2026-12-05T00:00:00+00:00", arena_commit="", torch_version="")
RESULT = REPO / "results/amd-epyc-2c/smollm2-135m/full/candle-cpu-fp32.json"


def test_the_roof_is_bandwidth_below_the_balance_point_and_gemm_above():
    assert roof(MACHINE, 2, 4.0) == (100.0, "memory")
    assert roof(MACHINE, 2, 8.0) == (200.0, "compute")
    assert roof(MACHINE, 1, 1000.0) == (100.0, "compute")
    assert roof(MACHINE, 4, 1.0) is None, "no figures on 4 threads"


def test_a_decode_step_is_memory_bound_a_prompt_compute_bound_and_training_reads_the_weights_three_times():
    result, spec = load_result(RESULT), load_specs()["smollm2-135m"]
    moved = weight_bytes(spec, "full", "fp32")
    assert moved == pytest.approx(134.5e6 * 4, rel=0.01), "SmolLM2-135M's state dict in fp32"
    placed = {p.workload: p for p in place(result, spec, MACHINE)}
    assert set(placed) == {"inference", "latency", "training"}
    for workload, passes in (("inference", 1), ("latency", 1), ("training", 3)):
        w, p = getattr(result.metrics, workload), placed[workload]
        assert p.intensity == pytest.approx(w.flops / (moved * passes))
        assert p.roof_gflops == pytest.approx(min(200.0, 25.0 * p.intensity))
        assert p.fraction == pytest.approx(w.gflops_per_s / p.roof_gflops)
    assert placed["latency"].bound == "memory" and placed["latency"].intensity < 1, "one token: about 2 FLOPs per 4-byte weight"
    assert placed["inference"].bound == "compute", "a 128-token prompt reuses every weight 128 times"


def test_nothing_is_placed_without_figures_for_the_cell():
    result, spec = load_result(RESULT), load_specs()["smollm2-135m"]
    assert place(result.model_copy(update={"threads": 4}), spec, MACHINE) == []
    assert place(result.model_copy(update={"device": "cuda"}), spec, MACHINE) == [], "the probe measures the CPU"
