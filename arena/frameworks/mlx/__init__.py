"""MLX: `mlx.nn` modules named like the official ones, `mx.compile` for every timed function,
`nn.value_and_grad` for training, `mx.eval` inside the timed calls.

The module trees mirror the official state-dict names (as mlx-lm does), so `load_weights(strict=True)`
checks every name and shape and `tree_flatten` of the gradients gives the official names back.
Convolutions are channels-last in MLX; `arena.frameworks.layouts` converts kernels, inputs and kernel
gradients. On Linux MLX runs on its CPU back-end (the `mlx[cpu]` wheel, which links the reference
netlib BLAS it bundles): that is measured as it is, not tuned away.
"""

from __future__ import annotations

import sys
from pathlib import Path

from arena.frameworks.contract import BuildContext, Probe
from arena.frameworks.device_check import first_kernel

DISTRIBUTION = "mlx"
DISTRIBUTIONS = ("mlx", "mlx-metal", "mlx-cpu")  # the Metal build on macOS, the CPU back-end on Linux
SOURCES = ("arena/frameworks/layouts.py", "arena/frameworks/device_check.py")
INSTALL_HINT = 'pip install -e ".[mlx]"  (on Linux this installs mlx[cpu])'
VARIANTS = {"": "mx.compile of every timed function; lazy graphs evaluated with mx.eval inside each timed call"}
UNSUPPORTED: dict[str, str] = {}

DEVICES = {"cpu": "cpu", "gpu": "gpu", "metal": "gpu", "mps": "gpu"}


def probe(ctx: BuildContext) -> Probe:
    import mlx.core as mx

    kind = DEVICES.get(ctx.device)
    if kind is None:
        return Probe(available=False, reason=f"MLX has no device {ctx.device!r} (cpu, or gpu on Apple Silicon)", version=mx.__version__)
    if kind == "gpu" and not mx.metal.is_available():
        return Probe(available=False, reason="MLX's GPU back-end needs Metal (Apple Silicon)", version=mx.__version__)
    if kind == "gpu" and (unusable := first_kernel("MLX's Metal GPU", lambda: gpu_matmul(mx))):
        return Probe(available=False, reason=unusable, version=mx.__version__)
    mx.set_default_device(mx.gpu if kind == "gpu" else mx.cpu)
    if kind == "gpu":
        backend, name = "Metal", mx.metal.device_info().get("device_name", "Apple GPU")
    elif sys.platform == "darwin":
        backend, name = "CPU (Accelerate)", "cpu"
    else:
        backend, name = "CPU (mlx[cpu] wheel: bundled reference BLAS, no thread setting)", "cpu"
    settings = {"mx_compile": True, "device": kind}
    if kind == "cpu" and sys.platform != "darwin":
        # Measured: a 1024^2 matmul keeps one core busy whatever OMP/OPENBLAS_NUM_THREADS say.
        settings["intra_op_threads"] = "1 (the bundled BLAS is single-threaded; MLX has no thread setting)"
        # What limits MLX here, read from the process rather than assumed: a perf profile of ResNet-50's
        # inference at full (2 calls, 14.5 s each) spent 94 % of its samples in this BLAS's sgemm_
        # (MLX's CPU convolutions are GEMMs), 3.4 % in mx.compile's fused kernels, 0.7 % in MLX's copies.
        settings["blas"] = linked_blas() or "none found in the process's mapped libraries"
    return Probe(available=True, version=mx.__version__, backend=backend, device_name=name, settings=settings)


def gpu_matmul(mx) -> None:
    """A 64x64 matmul on the GPU, evaluated (MLX is lazy: nothing runs before `mx.eval`)."""
    with mx.stream(mx.gpu):
        x = mx.ones((64, 64))
        mx.eval(x @ x)


def linked_blas() -> str:
    """The BLAS libraries MLX's wheel brought into this process (Linux), by file name: those mapped from
    under an `mlx` folder (numpy's own OpenBLAS is mapped too, and MLX does not call it). mlx[cpu] 0.32
    vendors the netlib reference libblas 3.10.0."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return ""
    paths = {line.split()[-1] for line in maps.read_text().splitlines() if line.count(" ") >= 5}
    return ", ".join(sorted({Path(p).name for p in paths if "/mlx" in p and "blas" in Path(p).name.lower()}))


def peak_device_memory(ctx: BuildContext, reset: bool) -> int | None:
    """MLX's own allocator high-water mark, on the GPU (unified memory); None on the CPU."""
    import mlx.core as mx

    if DEVICES.get(ctx.device) != "gpu":
        return None
    if reset:
        mx.reset_peak_memory()
    return mx.get_peak_memory()
