"""The machine's practical limits, measured once per platform and kept beside its results.

A cell's GFLOP/s says little until it is set against what the machine can do. At the start of a run,
before any cell, this measures (in a child process per thread count, with the same thread variables a
cell gets, inside the machine's timing slot):

- fp32 GEMM throughput of every GEMM at hand (`torch.mm`, NumPy's BLAS, the `gemm` crate of Candle
  and Burn, ONNX Runtime's MLAS; see `gemm_timers`) on square matrices, best of a few calls, on 1 thread and on the run's thread count;
- memory bandwidth: a STREAM-style triad `a = b + s*c` over arrays far larger than any cache, as one
  fused `torch.add(..., alpha=s, out=a)` pass, counted as STREAM counts it (3 arrays, no write-allocate);
- the CPU model and the ISA extensions that decide which kernels a framework may pick.

The figures go to `<results>/<platform>/machine.json` and are reused by every later run on that platform
(`force=true` measures again). The site sets each result against them (arena/results/roofline.py).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from arena.errors import ArenaError
from arena.results.machine import PROBE_VERSION, Bandwidth, GemmPeak, MachinePeak, load, path_for
from arena.results.store import write_json_atomic
from arena.run.system import cpuinfo_fields, describe

GEMM_SIZES = (1024, 2048)  # fp32 square GEMMs: 2.1 and 17.2 GFLOP per call, past any cache's working set
GEMM_CALLS = 5
TRIAD_VALUES = 1 << 25  # 32 Mi floats per array: 3 x 128 MiB, far past the last-level cache
TRIAD_CALLS = 10
# The ISA extensions that select CPU kernels (x86 /proc/cpuinfo flags; Apple's arm64 flags by sysctl).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2")


def ensure(results_dir: Path, threads: int, remeasure: bool, env_for: Callable[[int], dict[str, str]], log=print) -> MachinePeak | None:
    """This platform's figures at 1 and `threads` threads: kept ones where they cover both, else measured,
    each thread count in a child with `env_for(threads)` (the caller holds the timing slot: nothing else
    may run on the machine meanwhile). A probe that fails is reported and the run goes on without it:
    the figures place results, they are not results."""
    system = describe()
    path = path_for(results_dir, system.platform_id)
    kept = None if remeasure else load(path)
    wanted = {1, threads}
    if kept and wanted <= kept.thread_counts():
        return kept
    log(f"arena: measuring this machine's GEMM and memory bandwidth on {sorted(wanted)} thread(s) → {path}")
    try:
        measured = [measure_in_child(n, env_for(n)) for n in sorted(wanted)]
    except ArenaError as err:
        log(f"arena: {err}; the results are not placed against this machine's peak")
        return kept
    # Figures kept for other thread counts (an earlier run's) stay beside the new ones.
    gemm = [g for m in measured for g in m["gemm"]] + [g for g in (kept.gemm if kept else []) if g.threads not in wanted]
    triad = [b for m in measured for b in m["triad"]] + [b for b in (kept.triad if kept else []) if b.threads not in wanted]
    peak = MachinePeak(
        probe_version=PROBE_VERSION, platform_id=system.platform_id, cpu_model=system.cpu_model, isa=isa_flags(),
        torch_cpu_capability=measured[0]["capability"], gemm=sorted(gemm, key=lambda g: (g.threads, g.n)),
        triad=sorted(triad, key=lambda b: b.threads), measured=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        arena_commit=system.arena_commit, torch_version=measured[0]["torch_version"],
    )
    write_json_atomic(path, peak.model_dump(mode="json"))
    return peak


def measure_in_child(threads: int, env: dict[str, str]) -> dict:
    """One thread count's figures, from a fresh process whose thread variables are set before torch loads."""
    try:
        done = subprocess.run([sys.executable, "-m", "arena.run.peak", str(threads)], env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise ArenaError(f"measuring the machine on {threads} thread(s) took over 600 s") from None
    if done.returncode != 0:
        raise ArenaError(f"measuring the machine on {threads} thread(s) failed: {done.stderr.strip()[-1000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return found | {"gemm": [GemmPeak(**g) for g in found["gemm"]], "triad": [Bandwidth(**b) for b in found["triad"]]}


def isa_flags() -> list[str]:
    if platform.system() == "Darwin":  # hw.optional.<feature> is 1 where the CPU has it
        sysctl = subprocess.run(["sysctl", "hw.optional"], capture_output=True, text=True).stdout
        present = {line.split(":")[0].rsplit(".", 1)[-1] for line in sysctl.splitlines() if line.strip().endswith(": 1")}
        return [f for f in ISA_FLAGS if ("neon" if f == "asimd" else f) in present]
    fields = cpuinfo_fields()
    reported = set((fields.get("flags") or fields.get("Features") or "").split())  # x86 / ARM Linux
    return [f for f in ISA_FLAGS if f in reported]


def best_seconds(call, calls: int) -> float:
    """The fastest of `calls` calls after one warm-up: the machine's practical best, not its typical."""
    call()
    best = float("inf")
    for _ in range(calls):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def measure(threads: int) -> dict:
    """In this process: every GEMM at hand and the triad, on `threads` threads (run by `measure_in_child`)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    gemm = [{"library": library, "threads": threads, "n": n, "gflops_per_s": 2 * n**3 / seconds() / 1e9}
            for n in GEMM_SIZES for library, seconds in gemm_timers(np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32), threads)]
    a, b, c = torch.empty(TRIAD_VALUES), torch.rand(TRIAD_VALUES), torch.rand(TRIAD_VALUES)
    seconds = best_seconds(lambda: torch.add(b, c, alpha=3.0, out=a), TRIAD_CALLS)
    array_bytes = TRIAD_VALUES * a.element_size()
    triad = [{"threads": threads, "bytes_per_array": array_bytes, "gb_per_s": 3 * array_bytes / seconds / 1e9}]
    return {"gemm": gemm, "triad": triad, "capability": torch.backends.cpu.get_cpu_capability(), "torch_version": torch.__version__}


def gemm_timers(pair, threads: int) -> list[tuple[str, Callable[[], float]]]:
    """(library, the best seconds of its fp32 GEMM of the pair) for each GEMM this installation has:
    PyTorch's (MKL on x86, where AMD CPUs get MKL's slower code path), NumPy's (OpenBLAS), the `gemm`
    crate that Candle and Burn call (timed inside arena._native, where it is built), and ONNX Runtime's
    MLAS where it is installed. The roof is the best of them: no one library is the machine's best on
    every CPU (on the AMD EPYC here MLAS reached twice torch.mm's rate)."""
    return [(library, lambda call=call: best_seconds(call, GEMM_CALLS)) for library, call in gemm_calls(pair, threads)] + native_gemm(pair[0].shape[0], threads)


def native_gemm(n: int, threads: int) -> list[tuple[str, Callable[[], float]]]:
    try:
        import arena._native as _native
    except ImportError:
        return []
    library = f"gemm crate {_native.GEMM_VERSION} (Candle, Burn; {_native.gemm_kernels()})"
    return [(library, lambda: min(_native.gemm_seconds(n, threads, GEMM_CALLS)))]


def gemm_calls(pair, threads: int) -> list[tuple[str, Callable[[], object]]]:
    """(library, one call of its fp32 GEMM of the pair) for the GEMMs called from Python."""
    import numpy as np
    import torch

    a, b = pair
    ta, tb, out = torch.from_numpy(a), torch.from_numpy(b), torch.empty(a.shape)
    calls = [(f"torch.mm (torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()})", lambda: torch.mm(ta, tb, out=out)),
             (f"numpy.matmul (numpy {np.__version__}, {blas_name(np)})", lambda: np.matmul(a, b))]
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        return calls
    n = a.shape[0]
    matmul = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [n, n]) for x in "ab"],
        [onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [n, n])])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    model = onnx.helper.make_model(matmul, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return calls + [(f"ONNX Runtime MatMul (onnxruntime {ort.__version__}, MLAS)", lambda: session.run(None, {"a": a, "b": b}))]


def blas_name(np) -> str:
    """The BLAS NumPy was built with, as its build configuration names it."""
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except (KeyError, TypeError):
        return "its BLAS"


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
