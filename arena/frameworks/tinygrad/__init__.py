"""tinygrad: pure functions over a flat official-named weight dict of `tinygrad.Tensor`s (as the JAX
package), `TinyJit` for every timed call, `Tensor.gradient` for training.

tinygrad's Tensor API is PyTorch's layout (Linear [out, in], conv2d NCHW inputs with OIHW kernels), so
weights, inputs and gradients need no layout conversion. tinygrad is lazy: a Tensor is a graph until it
is realised. Every timed call is a `TinyJit` (tinygrad's documented way to run a fixed graph again,
https://docs.tinygrad.org/quickstart/#jit): the first call runs the function, the second captures its
kernels, later calls replay them; the runner's cold call and (at least one) warm-up call come before
the timed calls, so those are replays, and `Step.watch` reports a JIT that had not captured by then or
captured again. Each timed call realises its outputs and synchronises the device before it returns.

Weights: the cell hands `build` the official-named numpy arrays it has already read and checked (the
file path never reaches `build`, see arena/frameworks/contract.py), so they become Tensors through
`Tensor(array)`; tinygrad's own `nn.state.safe_load` would read the same file a second time.

The CPU device compiles every kernel with `clang` (Debian's `clang` package). In tinygrad 0.14 the CPU
device runs every kernel on the calling thread: NUM_CPU_THREADS only splits a kernel's outer loop into
that many chunks, which `CPUProgram.__call__` runs one after another (runtime/ops_cpu.py; the threaded
queue is the experimental HCQ2 path). It is set from the cell's threads all the same (it also sizes the
process pool that generates and compiles kernels, PARALLEL), and the result records that kernels run on
one thread. BEAM kernel search is off (BEAM=0, tinygrad's default): it
times many candidate kernels per kernel, which on 2 shared cores would not finish a preset in reasonable
time, so it is no variant here.
"""

from __future__ import annotations

import os
import shutil

from arena.frameworks.contract import DTYPE_NAMES, BuildContext, Probe

DISTRIBUTION = "tinygrad"
SOURCES = ("arena/frameworks/layouts.py", "arena/functional")  # the architectures, written once
INSTALL_HINT = 'pip install -e ".[tinygrad]"  (the CPU device also needs clang: apt install clang)'
VARIANTS = {"": "TinyJit of every timed call (captured in the warm-up calls); outputs realised and the device synchronised inside each timed call"}
UNSUPPORTED: dict[str, str] = {}

# Arena device name -> tinygrad device.
DEVICES = {"cpu": "CPU", "cuda": "CUDA", "gpu": "CUDA", "metal": "METAL", "mps": "METAL"}


def device(ctx: BuildContext) -> str:
    """`cuda:1` -> `CUDA:1`."""
    kind, _, index = ctx.device.partition(":")
    name = DEVICES.get(kind, kind.upper())
    return f"{name}:{index}" if index else name


def process_env(ctx: BuildContext) -> dict[str, str]:
    """tinygrad reads its settings from the environment when it is imported: the cell's device as the
    default one, no kernel search, the JIT on, the CPU's kernel chunks from the cell's threads."""
    return {"DEV": device(ctx).split(":")[0], "BEAM": "0", "JIT": "1", "NUM_CPU_THREADS": str(ctx.threads)}


def release_cached(ctx: BuildContext) -> None:
    """Free the buffers tinygrad's allocator keeps for reuse (`LRUAllocator`: a freed buffer goes to a
    cache by size, never back to the system). Measured on SD 1.5: after the inference and latency
    workloads it held 1.64 GiB of their buffers through the training workload, counted in that one's peak."""
    from tinygrad import Device

    free_cache = getattr(Device[device(ctx)].allocator, "free_cache", None)
    if free_cache is not None:  # an allocator without a cache keeps nothing
        free_cache()


def compiler() -> str:
    """The C compiler tinygrad's CPU device runs (runtime/support/compiler_cpu.py: $CC, else clang)."""
    return os.environ.get("CC", "clang")


def probe(ctx: BuildContext) -> Probe:
    from importlib.metadata import version

    from tinygrad import Device, Tensor, dtypes
    from tinygrad.helpers import BEAM, JIT, NUM_CPU_THREADS

    found = version(DISTRIBUTION)
    name = device(ctx)
    if name.startswith("CPU") and shutil.which(compiler()) is None:
        return Probe(available=False, reason=f"tinygrad's CPU device compiles its kernels with {compiler()!r}, which is not installed (apt install clang)", version=found)
    try:
        opened = Device[name]
    except Exception as err:  # a missing driver or library: CUDA without libcuda, METAL off macOS
        return Probe(available=False, reason=f"tinygrad cannot open device {name}: {type(err).__name__}: {err}"[:500], version=found)
    if ctx.dtype != "fp32":
        # One kernel in the cell's dtype: Debian's clang 14 compiles float16 but rejects tinygrad's bfloat16
        # kernels ("__bf16 is not supported on this target"), and that should be the cell's reason.
        try:
            (Tensor.ones(4, dtype=getattr(dtypes, DTYPE_NAMES[ctx.dtype]), device=name) * 2).realize()
        except Exception as err:
            return Probe(available=False, reason=f"tinygrad cannot compile a {ctx.dtype} kernel for {name} here: {type(err).__name__}: {err}"[:500], version=found)
    settings = {
        "device": name,
        "renderer": type(opened.renderer).__name__,
        "jit": int(JIT.value),
        "beam": int(BEAM.value),
    }
    if name.startswith("CPU"):
        settings["compiler"] = shutil.which(compiler())
        settings["num_cpu_threads"] = int(NUM_CPU_THREADS.value)
        settings["intra_op_threads"] = "1 (tinygrad 0.14 runs a CPU kernel's NUM_CPU_THREADS chunks one after another on the calling thread)"
    return Probe(available=True, version=found, backend=f"tinygrad {name} ({type(opened.renderer).__name__})", device_name=name, settings=settings)
