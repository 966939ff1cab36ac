"""One cell in its own process: `python -m arena.run.child JOB.json`.

It writes the Result JSON (atomically, after every workload, so a crash later keeps what was measured)
and the outputs artifact for the comparison. A Python exception becomes status `error` with the
message; a segfault, hang or OOM kill is seen by the parent, which still finds the partial result.
If the parent dies instead (a cluster worker lost with its node, a killed run), the child follows it
at once rather than go on timing beside whatever runs next on the machine.
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np

from arena import weights
from arena.errors import ArenaError
from arena.families import load_family
from arena.families.base import WORKLOADS, rng_for
from arena.frameworks import load_adapter
from arena.frameworks.contract import BuildContext, build_model, unsupported_reason
from arena.results.artifact import fingerprint
from arena.results.schema import Metrics, Prepare, Result, WorkloadMetrics
from arena.results.stats import summarize
from arena.results.store import write_json_atomic
from arena.run.cell import CONVERTED, CellJob
from arena.run import malloc
from arena.run.fingerprint import installed_version
from arena.run.timing import PeakRss, measure, process_peak_rss_bytes, time_call
from arena.specs import load_spec


def main(job_path: str) -> int:
    job = CellJob.model_validate_json(Path(job_path).read_text())
    if job.lifeline_fd is not None:
        follow_parent(job.lifeline_fd)
    result = initial_result(job)
    started = time.perf_counter()
    try:
        run_cell(job, result)
    except Converted:
        return CONVERTED
    except Exception as err:  # the cell fails, the run goes on; the traceback goes to the cell's log
        traceback.print_exc()
        result.status, result.reason = "error", f"{type(err).__name__}: {err}"[:2000]
    result.wall_s = time.perf_counter() - started
    result.metrics.peak_memory_bytes = process_peak_rss_bytes()
    result.created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_json_atomic(Path(job.result_path), result.model_dump(mode="json"))
    return 0


class Converted(Exception):
    """The cell converted its model in this process; the parent starts it again (see CONVERTED)."""


def follow_parent(lifeline_fd: int) -> None:
    """Kill this cell's whole process group when the parent's end of the lifeline closes.

    The parent closes its end only after this process has ended, so EOF here means the parent died.
    A blocked read costs nothing while the cell is timed (no polling), and works on Linux and macOS.
    """
    def watch() -> None:
        os.read(lifeline_fd, 1)
        os.killpg(0, signal.SIGKILL)  # the child is a session leader: its group is this cell's processes

    threading.Thread(target=watch, name="arena-lifeline", daemon=True).start()


def initial_result(job: CellJob) -> Result:
    c = job.cell
    return Result(
        run_id=job.run_id, created="", model=c.model, family="", preset=c.preset, framework=c.framework,
        device=c.device, dtype=c.dtype, threads=job.threads, status="running", spec_hash="",
        weights_hash=job.weights_hash, weights_source=job.weights_source, system=job.system,
    )


def run_cell(job: CellJob, result: Result) -> None:
    cell = job.cell
    spec = load_spec(Path(job.spec_path))
    preset = spec.presets[cell.preset]
    family = load_family(spec.family)
    result.family, result.spec_hash = spec.family, spec.spec_hash(cell.preset)
    timing = spec.timing_for(cell.preset)
    result.timing_policy = timing.model_dump()

    adapter, variant = load_adapter(cell.framework)
    result.framework_distribution = adapter.DISTRIBUTION
    result.distribution_version = installed_version(adapter.DISTRIBUTION)
    if unsupported_reason(adapter.UNSUPPORTED, spec.family, variant=variant):
        result.status, result.reason = "unsupported", unsupported_reason(adapter.UNSUPPORTED, spec.family, variant=variant)
        return
    ctx = BuildContext(device=cell.device, dtype=cell.dtype, threads=job.threads, variant=variant, convert_dir=job.convert_dir)
    # Environment a framework reads at import (thread pools, compile caches): set before probe imports it.
    os.environ.update(getattr(adapter, "process_env", lambda ctx: {})(ctx))
    try:
        probe = adapter.probe(ctx)
    except ModuleNotFoundError as err:
        result.status, result.reason = "unavailable", f"{err.name} is not installed ({adapter.INSTALL_HINT})"
        return
    result.framework_version, result.backend = probe.version, probe.backend
    result.device_name, result.settings = probe.device_name, {"variant": variant or "default", **probe.settings, "malloc": malloc.in_effect()}
    if not probe.available:
        result.status, result.reason = "unavailable", probe.reason
        return
    try:
        impl = importlib.import_module(f"{adapter.__name__}.{spec.family}")
    except ModuleNotFoundError as err:
        if err.name != f"{adapter.__name__}.{spec.family}":
            raise
        raise ArenaError(f"{cell.framework} has no {spec.family} module and does not declare it in UNSUPPORTED") from err

    # Every workload's inputs, drawn up front: ahead-of-time runtimes build for their exact shapes.
    workloads = [w for w in WORKLOADS if not unsupported_reason(adapter.UNSUPPORTED, spec.family, w, variant)]
    inputs = {w: family.make_inputs(preset.config, preset.workloads, w, rng_for("inputs", result.spec_hash)) for w in workloads}
    memory = PeakRss()
    result.settings["peak_rss"] = memory.method
    with memory.sampling():
        t0 = time.perf_counter()
        tensors = weights.load(job.weights_files)
        weights.check_layout(tensors, family.parameter_shapes(preset.config), f"{spec.name} ({', '.join(job.weights_files)})")
        t1 = time.perf_counter()
        model = build_model(impl.build, preset.config, tensors, ctx, inputs)
        del tensors
        t2 = time.perf_counter()
    result.settings |= getattr(model, "settings", {})  # what the build decided (arena/frameworks/contract.py)
    # A conversion (ONNX export, GGUF writing) is a one-off of the deployment path, recorded on its own
    # from the cache's record: a cell that has just converted starts again (CONVERTED), so build_ms and
    # the peaks are always those of a build from the cached artifact.
    conversion = getattr(model, "conversion", None)
    if conversion and not conversion.cached:
        raise Converted
    build_ms = (t2 - t1) * 1e3
    prepare = Prepare(load_ms=(t1 - t0) * 1e3, build_ms=build_ms, total_ms=(t1 - t0) * 1e3 + build_ms, conversion=conversion, peak_rss_bytes=memory.peak)
    result.metrics = Metrics(prepare=prepare)

    outputs: dict[str, dict[str, np.ndarray]] = {}
    errors = []
    device_memory = getattr(adapter, "peak_device_memory", None)
    device_memory = partial(device_memory, ctx) if device_memory else lambda reset: None
    release_cached = getattr(adapter, "release_cached", lambda ctx: None)
    for workload in WORKLOADS:
        declared = unsupported_reason(adapter.UNSUPPORTED, spec.family, workload, variant)
        if declared:
            setattr(result.metrics, workload, WorkloadMetrics(status="unsupported", reason=declared))
            continue
        try:
            metrics, outputs[workload] = run_workload(impl, model, workload, inputs[workload], job, timing, device_memory)
        except Exception as err:
            traceback.print_exc()
            errors.append(f"{workload}: {type(err).__name__}: {err}")
            metrics = WorkloadMetrics(status="error", reason=errors[-1][:2000])
        # The step is gone: what it held goes back before the next workload, so that one's peak is its own.
        gc.collect()
        release_cached(ctx)
        metrics.flops = family.flops(preset.config, preset.workloads, workload)
        items, unit = family.work_items(preset.workloads, workload)
        if metrics.stats:
            seconds = metrics.stats.median_ms / 1e3
            metrics.throughput, metrics.throughput_unit = items / seconds, f"{unit}/s"
            metrics.gflops_per_s = metrics.flops / seconds / 1e9
        setattr(result.metrics, workload, metrics)
        if workload == "inference" and metrics.first_call_ms is not None:
            prepare = result.metrics.prepare
            prepare.first_call_ms, prepare.total_ms = metrics.first_call_ms, prepare.total_ms + metrics.first_call_ms
        write_json_atomic(Path(job.result_path), result.model_dump(mode="json"))  # progress survives a crash

    np.savez(job.artifact_path, **fingerprint(outputs))
    result.status = "error" if errors else "ok"
    result.reason = "; ".join(errors)


def run_workload(impl, model, workload: str, inputs, job: CellJob, timing, device_memory) -> tuple[WorkloadMetrics, dict[str, np.ndarray]]:
    """Make the workload's step, call it (the cold start), measure it, and fetch the last call's outputs.
    Its peak memory covers all of that but the fetch: the comparison's copies are the lab's."""
    memory, last = PeakRss(), []
    with memory.sampling():
        step = getattr(impl, workload)(model, inputs)
        device_memory(reset=True)
        first_ms = time_call(step, last)
    metrics = WorkloadMetrics(first_call_ms=first_ms)
    if job.mode == "measure":
        measured = measure(step, timing, first_ms, memory, last)
        metrics.problems, metrics.stats, metrics.warmup_ms = measured.problems, summarize(measured.samples_ms), measured.warmup_ms
    metrics.peak_rss_bytes, metrics.peak_device_memory_bytes = memory.peak, device_memory(reset=False)
    return metrics, step.fetch(last[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
