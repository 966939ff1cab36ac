"""JAX: pure functions over a flat parameter dict keyed by the official tensor names, `jax.jit` for every
timed function and `jax.value_and_grad` for training.

Keeping the parameters flat and official-named means no name mapping in either direction: the weights
file loads as it is, and the gradients come back under the names the reference reports. Layouts are
PyTorch's too (Linear [out, in], convolutions NCHW/OIHW through `dimension_numbers`); XLA picks its own
physical layout when it compiles.
"""

from __future__ import annotations

import os

from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "jax"
DISTRIBUTIONS = ("jax", "jaxlib")
SOURCES = ("arena/frameworks/layouts.py", "arena/functional")  # the architectures, written once
INSTALL_HINT = 'pip install -e ".[jax]"'
VARIANTS = {"": "jax.jit (XLA) for every timed call; compilation happens in prepare/warmup, never in timed calls"}
UNSUPPORTED: dict[str, str] = {}

# Arena device name -> JAX platform name. "metal" is Apple's jax-metal plugin.
PLATFORMS = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda", "rocm": "rocm", "metal": "METAL", "tpu": "tpu"}


def platform(ctx: BuildContext) -> str:
    return PLATFORMS.get(ctx.device.split(":")[0], ctx.device)


# XLA's CPU scheduler orders ops for concurrency by default, at the price of memory: SD 1.5 training
# needed 10.9 GiB of temporaries next to 6.4 GiB of weights and gradients and was OOM-killed at 24 GiB;
# the memory-minimising order needs 3.9 GiB (measured with `compile().memory_analysis()`).
CPU_XLA_FLAGS = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def process_env(ctx: BuildContext) -> dict[str, str]:
    """Only the cell's platform is initialised (no probing for CUDA on a CPU cell). XLA's CPU thread
    pool has no size setting: it takes one thread per schedulable core, so `probe` pins the process to
    `threads` cores before JAX is imported; one thread also turns off Eigen's multi-threading."""
    env = {"JAX_PLATFORMS": platform(ctx).lower()}
    if platform(ctx) == "cpu":
        flags = [os.environ.get("XLA_FLAGS", ""), CPU_XLA_FLAGS]
        if ctx.threads == 1:
            flags.append("--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
        env["XLA_FLAGS"] = " ".join(f for f in flags if f)
    return env


def pin_cores(threads: int) -> list[int]:
    """Restrict this process to its first `threads` allowed cores; returns the cores it may run on."""
    if not hasattr(os, "sched_setaffinity"):  # macOS has no affinity API; XLA then uses every core
        return []
    allowed = sorted(os.sched_getaffinity(0))
    if threads < len(allowed):
        os.sched_setaffinity(0, allowed[:threads])
    return sorted(os.sched_getaffinity(0))


def probe(ctx: BuildContext) -> Probe:
    cores = pin_cores(ctx.threads) if platform(ctx) == "cpu" else []
    import jax

    # fp32 means fp32: on GPUs JAX's default matmul precision is TF32 (the torch reference disables it).
    jax.config.update("jax_default_matmul_precision", "highest")
    settings = {
        "jit": True,
        "matmul_precision": "highest",
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "cpu_affinity": cores,
        "x64": bool(jax.config.jax_enable_x64),
    }
    try:
        devices = jax.devices(platform(ctx))
    except RuntimeError as err:
        return Probe(available=False, reason=f"JAX has no {platform(ctx)} platform here: {err}"[:500], version=jax.__version__)
    index = int(ctx.device.split(":")[1]) if ":" in ctx.device else 0
    if index >= len(devices):
        return Probe(available=False, reason=f"JAX sees {len(devices)} {platform(ctx)} device(s), not {ctx.device}", version=jax.__version__)
    device = devices[index]
    jax.config.update("jax_default_device", device)
    backend = f"XLA {device.platform} (jaxlib {jax.lib.__version__}; {device.client.platform_version})"
    return Probe(available=True, version=jax.__version__, backend=backend, device_name=device.device_kind, settings=settings)


def peak_device_memory(ctx: BuildContext, reset: bool) -> int | None:
    """The accelerator allocator's high-water mark (XLA keeps no resettable peak; the first window is
    the cell's peak so far). None on the CPU, where the process RSS is the memory figure."""
    import jax

    if platform(ctx) == "cpu":
        return None
    stats = jax.devices(platform(ctx))[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")
