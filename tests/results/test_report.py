"""The terminal summary: one table per model, the torch baseline first, each cell's time relative to it."""

from __future__ import annotations

from arena.results.report import peak_memory, print_summary, ratio_to
from arena.results.schema import Result
from arena.results.stats import summarize
from arena.run.system import describe


def result(framework: str, inference_ms: list[float], latency_ms: list[float] | None = None) -> Result:
    metrics = {"inference": {"stats": summarize(inference_ms).model_dump()}}
    if latency_ms:
        metrics["latency"] = {"stats": summarize(latency_ms).model_dump()}
    return Result.model_validate({
        "run_id": "r1", "created": "2026-11-28T00:00:00+00:00", "model": "m", "family": "llama", "preset": "tiny",
        "framework": framework, "device": "cpu", "dtype": "fp32", "threads": 2, "status": "ok", "spec_hash": "abc",
        "system": describe().model_dump(), "metrics": metrics,
    })


def test_ratio_to_the_baseline_median():
    torch, jax = result("torch", [10.0, 20.0, 30.0], [4.0]), result("jax", [40.0, 40.0, 41.0])
    assert ratio_to(jax, torch, "inference") == 2.0
    assert ratio_to(jax, torch, "latency") is None, "no median on one side: no ratio"
    assert ratio_to(jax, None, "inference") is None


def test_summary_puts_torch_first_and_shows_ratios():
    lines: list[str] = []
    print_summary([result("mlx", [60.0]), result("torch", [20.0]), result("jax", [10.0])], out=lines.append)
    rows = [line.split() for line in lines[3:6]]
    assert [row[0] for row in rows] == ["torch", "jax", "mlx"]
    assert "0.50" in lines[4] and "3.00" in lines[5]


def test_results_from_several_machines_get_a_table_each_with_its_own_baseline():
    here, there, jax_there = result("torch", [20.0]), result("torch", [40.0]), result("jax", [80.0])
    for r in (there, jax_there):
        r.system = r.system.model_copy(update={"platform_id": "zz-other-machine"})
    lines: list[str] = []
    print_summary([here, there, jax_there], out=lines.append)
    assert [line for line in lines if line.startswith("\nm (tiny)")] == [
        f"\nm (tiny) on {here.system.platform_id}", "\nm (tiny) on zz-other-machine"]
    (jax_row,) = [line for line in lines if line.startswith("jax")]
    assert "2.00" in jax_row, "jax is compared with torch on its own machine (80 / 40), not this one's"


def test_a_low_sample_or_noisy_median_says_so():
    lines: list[str] = []
    steady = [20.0, 20.1, 19.9, 20.0, 20.2]
    print_summary([result("torch", steady), result("mlx", [60.0]), result("jax", [10.0, 8.0, 12.0, 10.0, 10.0])], out=lines.append)
    torch_row, jax_row, mlx_row = lines[3:6]
    assert "20.0 ms " in torch_row and "(" not in torch_row, "five calls within 10 %: the median alone"
    assert "10.0 ms (CV 14%)" in jax_row
    assert "60.0 ms (single call)" in mlx_row


def test_peak_memory_is_the_workloads_not_the_whole_process():
    """The process's high-water mark also counts the lab's copies of weights and outputs; the column is the
    largest workload peak, the accelerator's where there is one, the process's only where no workload has one."""
    r = result("tinygrad", [10.0], [4.0])
    r.metrics.peak_memory_bytes = 20 * 2**30  # e.g. the comparison's numpy copies of the gradients on top
    r.metrics.inference.peak_rss_bytes, r.metrics.latency.peak_rss_bytes = 5 * 2**30, 6 * 2**30
    assert peak_memory(r.metrics) == (6 * 2**30, False)
    r.metrics.latency.peak_device_memory_bytes = 2**30
    assert peak_memory(r.metrics) == (2**30, True)
    older = result("torch", [10.0])
    older.metrics.peak_memory_bytes = 3 * 2**30
    assert peak_memory(older.metrics) == (3 * 2**30, False), "no workload peak recorded: the process's"
