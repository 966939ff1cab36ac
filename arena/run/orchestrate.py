"""Matrix → cells → one child process each (with a deadline) → results with verdicts.

The parent never imports a framework. It materialises weights, starts each cell's child, records
what happened to it (a crash, a hang, an OOM kill are results too), runs the PyTorch reference on
demand when a verdict needs it, and compares outputs. Re-running skips cells whose result is still
valid: the same spec, weights and code fingerprint (code, tolerances and installed versions).

`execute` runs the cells here, one after another. `keeps` and `measure_and_judge` are the one cell
path every executor shares: a cluster executor (arena/cluster) calls them on the node that runs the
cell and only the Result travels back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arena import cache, weights
from arena.errors import unknown_name
from arena.families.base import WORKLOADS
from arena.frameworks import load_adapter
from arena.frameworks.contract import REFERENCE_FRAMEWORK, unsupported_reason
from arena.results.compare import compare, validate_reference
from arena.results.schema import SCHEMA_VERSION, Correctness, Fingerprint, Result, System
from arena.results.store import read_result, result_path, write_json_atomic
from arena.run import fingerprint, malloc, peak
from arena.run.cell import CONVERTED, Cell, CellJob
from arena.run.config import RunConfig
from arena.run.progress import Progress
from arena.run.slot import timing_slot
from arena.run.system import default_threads, describe
from arena.run.timing import clear_high_water
from arena.specs import load_specs
from arena.specs.schema import ModelSpec

RESUMABLE = ("ok", "unsupported")
LOG_TAIL_CHARS = 1500


@dataclass
class Run:
    config: RunConfig
    specs: dict[str, ModelSpec]
    cells: list[Cell]
    run_id: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6])
    source: fingerprint.Tree = field(default_factory=fingerprint.Tree)  # the code, hashed once per run

    @property
    def threads(self) -> int:
        return self.config.threads or default_threads()

    @property
    def cache_dir(self) -> Path:
        return self.config.path(self.config.cache_dir)

    @property
    def results_dir(self) -> Path:
        return self.config.path(self.config.results_dir)


def plan(config: RunConfig) -> Run:
    specs = load_specs(config.specs_path, config.models)
    for spec in specs.values():
        if config.preset not in spec.presets:
            raise unknown_name(f"preset of {spec.name}", config.preset, spec.presets)
    # The reference framework first, so a model's reference exists before the cells compared with it.
    frameworks = sorted(config.selected_frameworks, key=lambda f: f != REFERENCE_FRAMEWORK)
    cells = [
        Cell(model=name, preset=config.preset, framework=fw, device=config.devices.get(fw, "cpu"), dtype=config.dtype)
        for name in specs
        for fw in frameworks
    ]
    return Run(config=config, specs=specs, cells=cells)


def execute(run: Run, log=print) -> list[Result]:
    """Run the cells one after another on this machine, writing each result as soon as it is judged."""
    system = describe()
    log(f"arena: {len(run.cells)} cells, matrix {run.config.matrix}, preset {run.config.preset}, "
        f"{run.threads} threads, platform {system.platform_id} → {run.results_dir}")
    if run.config.machine_peak:
        with timing_slot(on_wait=_waiting):
            peak.ensure(run.results_dir, run.threads, run.config.force, lambda threads: child_env(threads, run.config.malloc), log)
    progress = Progress(len(run.cells), log)
    results = []
    weights_files: dict[str, weights.WeightsFile] = {}  # per model: a local checkpoint is hashed once
    for cell in run.cells:
        spec = run.specs[cell.model]
        path = result_path(run.results_dir, system.platform_id, cell.model, cell.preset, cell.file_stem)
        if cell.model not in weights_files:
            weights_files[cell.model] = weights.materialize(spec, cell.preset, run.cache_dir)
        weights_file = weights_files[cell.model]
        previous = read_result(path)
        if keeps(run, cell, previous, weights_file):
            results.append(previous)
            progress.kept(cell, previous)
            continue
        progress.running(cell, spec.presets[cell.preset].timeout_s)
        started = time.monotonic()
        result = measure_and_judge(run, cell, weights_file, system)
        write_json_atomic(path, result.model_dump(mode="json"))
        results.append(result)
        progress.finished(cell, result, time.monotonic() - started)
    return results


def keeps(run: Run, cell: Cell, previous: Result | None, weights_file: weights.WeightsFile) -> bool:
    """Whether a previous result of this cell on this machine stands, so a re-run skips the cell."""
    if previous is None or run.config.force:
        return False
    # Checked by the scheme the result was hashed with: one from before `fingerprint.SCHEME` stands while its files are byte-identical.
    current = code_fingerprint(run, cell, fingerprint.scheme_of(previous.fingerprint))
    return still_valid(previous, run.specs[cell.model], cell.preset, weights_file.weights_hash, current)


def measure_and_judge(run: Run, cell: Cell, weights_file: weights.WeightsFile, system: System, mode: str = "measure") -> Result:
    """A cell's child process, then its verdict, both on the machine that runs the cell. Mode `reference`
    makes one call per workload and times nothing: a verdict alone (tests/bugs judges injected bugs so)."""
    spec = run.specs[cell.model]
    if cell.framework in run.config.not_run_here:
        return not_run_here(run, cell, spec, weights_file, system)
    result = run_cell(run, cell, spec, weights_file, system, mode=mode)
    result.correctness = judge(run, cell, spec, weights_file, system, result, mode)
    result.fingerprint = code_fingerprint(run, cell)
    return result


def still_valid(previous: Result, spec: ModelSpec, preset: str, weights_hash: str, current: Fingerprint) -> bool:
    """A final status, the same spec and weights, the same code fingerprint (a result without one cannot
    show which code made it, so it is re-run), and measured under this result schema (v1 timed a slow
    call with no warm-up before it and recorded no warm-up calls)."""
    return (previous.status in RESUMABLE and previous.spec_hash == spec.spec_hash(preset) and previous.weights_hash == weights_hash
            and previous.schema_version == SCHEMA_VERSION
            and previous.fingerprint is not None and previous.fingerprint.value == current.value)


def code_fingerprint(run: Run, cell: Cell, scheme: str = fingerprint.SCHEME) -> Fingerprint:
    spec = run.specs[cell.model]
    judged_by = spec.tolerances_for(cell.framework, cell.dtype, cell.preset)
    return fingerprint.cell(cell.framework, spec.family, judged_by, run.source, scheme, run.config.malloc.component())


def run_cell(run: Run, cell: Cell, spec: ModelSpec, weights_file, system, mode: str) -> Result:
    """Start the child, wait for it with the preset's deadline, and turn whatever happened into a Result."""
    job = CellJob(
        cell=cell, spec_path=str(run.config.specs_path / f"{spec.name}.yaml"), mode=mode,
        threads=run.threads, run_id=run.run_id, weights_files=weights_file.files,
        weights_hash=weights_file.weights_hash, weights_source=weights_file.source,
        result_path=str(cell_file(run, cell, system, mode, ".result.json")),
        artifact_path=str(cell_file(run, cell, system, mode, ".npz")), system=system,
        convert_dir=str(run.cache_dir / "converted" / f"{spec.name}-{cell.preset}-{spec.spec_hash(cell.preset)}-{weights_file.weights_hash}"),
    )
    for stale in (Path(job.result_path), Path(job.artifact_path)):
        stale.unlink(missing_ok=True)
    job_path, log_path = cell_file(run, cell, system, mode, ".job.json"), cell_file(run, cell, system, mode, ".log")
    timeout_s = spec.presets[cell.preset].timeout_s
    # The deadline starts when the child does, after any wait for the machine's timing slot.
    with timing_slot(on_wait=_waiting), open(log_path, "w") as log_file:
        returncode = start_child(run, job, job_path, log_file, timeout_s)
        if returncode == CONVERTED:  # it converted its model; the second child builds from the cached artifact
            returncode = start_child(run, job, job_path, log_file, timeout_s)
    result = read_result(Path(job.result_path)) or unfinished_result(run, cell, spec, weights_file, system)
    if returncode is None:
        result.status, result.reason = "timeout", f"no result within the preset's timeout_s = {timeout_s:g}"
    elif returncode != 0 or result.status == "running":
        result.status, result.reason = "crashed", f"{_exit_reason(returncode)}; log tail: {_tail(log_path)}"
    elif result.status == "error":
        result.reason = f"{result.reason} (log: {log_path})"
    result.created = result.created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return result


def start_child(run: Run, job: CellJob, job_path: Path, log_file, timeout_s: float) -> int | None:
    """Run the cell's child process to its end; its exit status, None if it ran past `timeout_s`."""
    # The lifeline: the child holds the read end and dies when it reads EOF, which happens only if
    # this process died first (a lost cluster worker, a killed run); see child.follow_parent.
    lifeline_read, lifeline = os.pipe()
    job.lifeline_fd = lifeline_read
    job_path.write_text(job.model_dump_json(indent=1))
    forget_peak_rss()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "arena.run.child", str(job_path)], stdout=log_file, stderr=subprocess.STDOUT,
            env=child_env(run.threads, run.config.malloc), start_new_session=True, pass_fds=(lifeline_read,),
        )
        os.close(lifeline_read)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None
    finally:
        os.close(lifeline)


def not_run_here(run: Run, cell: Cell, spec: ModelSpec, weights_file: weights.WeightsFile, system: System) -> Result:
    """A cell of a framework this machine was not set up for (the run's `not_run_here`): nothing starts,
    and the result says why in the operator's words, so that the site never shows the lab's limit as the
    framework's (`unavailable`)."""
    result = unfinished_result(run, cell, spec, weights_file, system)
    result.status, result.reason = "not_run", f"not run on this machine: {run.config.not_run_here[cell.framework]}"
    result.correctness = Correctness(verdict="n/a", reason="not run on this machine")
    result.created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return result


def unfinished_result(run: Run, cell: Cell, spec: ModelSpec, weights_file: weights.WeightsFile, system: System) -> Result:
    """The record of a cell whose process died before writing anything; the caller says how it ended."""
    return Result(run_id=run.run_id, created="", model=cell.model, family=spec.family, preset=cell.preset,
                  framework=cell.framework, device=cell.device, dtype=cell.dtype, threads=run.threads,
                  status="running", spec_hash=spec.spec_hash(cell.preset), weights_hash=weights_file.weights_hash,
                  weights_source=weights_file.source, system=system)


def judge(run: Run, cell: Cell, spec: ModelSpec, weights_file, system, result: Result, mode: str = "measure") -> Correctness:
    artifact = cell_file(run, cell, system, mode, ".npz")
    if result.status not in ("ok", "error") or not artifact.exists():
        return Correctness(verdict="n/a", reason=f"cell status {result.status}")
    reference_file = reference_path(run, spec, cell.preset, weights_file.weights_hash)
    if cell.is_reference:
        cache.install_file(artifact, reference_file)
    elif not cache.reusable(reference_file, "reference outputs", "running the reference again"):
        reference_cell = Cell(model=cell.model, preset=cell.preset, framework=REFERENCE_FRAMEWORK, device="cpu", dtype="fp32")
        ref = run_cell(run, reference_cell, spec, weights_file, system, mode="reference")
        ref_artifact = cell_file(run, reference_cell, system, "reference", ".npz")
        if ref.status != "ok" or not ref_artifact.exists():
            return Correctness(verdict="n/a", reason=f"the PyTorch reference could not run: {ref.status} {ref.reason}"[:500])
        cache.install_file(ref_artifact, reference_file)
    correctness = verdict(cell, spec, result.status, dict(np.load(artifact)), reference_file)
    if mode == "measure":  # a result's outputs stay, so that its verdict can be judged again
        correctness.outputs = keep_outputs(run.cache_dir, artifact)
    return correctness


def verdict(cell: Cell, spec: ModelSpec, status: str, candidate: dict[str, np.ndarray], reference_file: Path) -> Correctness:
    """A cell's outputs judged against the reference's by the spec's tolerances: when the cell is judged
    and when its stored outputs are judged again (arena/results/rejudge.py)."""
    if cell.is_reference:
        checks = validate_reference(candidate)
        broken = [c for c in checks if not c.passed]
        if broken:
            return Correctness(verdict="fail", reason="degenerate reference: " + "; ".join(f"{c.name}: {c.detail}" for c in broken), checks=checks)
        return Correctness(verdict="reference", reference=reference_file.name, checks=checks)
    tolerances, note = spec.tolerances_for(cell.framework, cell.dtype, cell.preset)
    if tolerances is None:
        return Correctness(verdict="n/a", reason=f"the spec declares no tolerances for {cell.dtype}")
    correctness = compare(candidate, dict(np.load(reference_file)), tolerances, supported_workloads(cell.framework, spec.family))
    correctness.reference, correctness.tolerance_note = reference_file.name, note
    if status != "ok":  # whatever agreed, a cell that errored proves nothing whole
        correctness.verdict = "fail"
        correctness.reason = f"the cell ended with status {status}" + (f"; {correctness.reason}" if correctness.reason else "")
    return correctness


def supported_workloads(framework: str, family: str) -> set[str]:
    """The workloads a framework's adapter does not declare unsupported for a family: each must produce
    its outputs for a pass (adapter packages import no framework, so the parent may load them)."""
    adapter, variant = load_adapter(framework)
    return {w for w in WORKLOADS if not unsupported_reason(adapter.UNSUPPORTED, family, w, variant)}


def keep_outputs(cache_dir: Path, artifact: Path) -> str:
    """Keep a cell's outputs artifact in the cache under its digest, which the result records (a damaged
    copy of the same digest is replaced: the artifact has its bytes)."""
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()[:16]
    target = outputs_path(cache_dir, digest)
    if not cache.reusable(target, "cell outputs", "keeping this cell's again"):
        target.parent.mkdir(parents=True, exist_ok=True)
        cache.install_file(artifact, target)
    return digest


def outputs_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / "outputs" / f"{digest}.npz"


def cell_file(run: Run, cell: Cell, system, mode: str, suffix: str) -> Path:
    """Where a cell's job, log, partial result and outputs artifact live (in the cache, not the results)."""
    folder = run.cache_dir / "cells" / system.platform_id / cell.model / cell.preset
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{cell.file_stem}-{mode}{suffix}"


def reference_path(run: Run, spec: ModelSpec, preset: str, weights_hash: str) -> Path:
    """Keyed by what computes the reference too: outputs of the reference's older code are never compared with."""
    folder = run.cache_dir / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    code = fingerprint.reference_key(spec.family, run.source)
    return folder / f"{spec.name}-{preset}-{spec.spec_hash(preset)}-{weights_hash}-{code}.npz"


def forget_peak_rss() -> None:
    """Reset this process's peak resident memory to its current one, so a child does not inherit it.

    Linux hands a process's peak RSS (its memory map's high-water mark) on to the program it execs: a
    cell started after this parent had judged a large model (the SD UNet's outputs and gradients, GBs
    loaded for the comparison and freed since) reported at least that peak as its own (measured: a child
    using 10 MB reported 2 GiB after its parent had held 2 GiB). Writing 5 to /proc/self/clear_refs sets
    the mark to the current RSS (Linux 4.0+), a few hundred MB here, below any cell's own. Elsewhere there
    is no such file and nothing to do."""
    clear_high_water()


def child_env(threads: int, allocator: malloc.Malloc) -> dict[str, str]:
    """The same thread count and allocator settings for every framework, set before the child starts."""
    env = malloc.apply(os.environ, allocator)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = str(threads)
    # The child must import arena from the same place as the parent, and out-of-tree adapters from cwd.
    paths = [str(Path(__file__).resolve().parents[2]), os.getcwd(), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def _exit_reason(returncode: int | None) -> str:
    if returncode == CONVERTED:
        return "the cell converted its model again after a first conversion: the conversion cache did not keep it"
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (killed: out of memory?)" if name == "SIGKILL" else ""
        return f"the cell process died of {name}{hint}"
    return f"the cell process exited with code {returncode} before finishing"


def _waiting(holder: str) -> None:
    print(f"arena: waiting for this machine's timing slot (held by {holder})", file=sys.stderr, flush=True)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:].strip() or "(empty)"
    except OSError:
        return "(no log)"
