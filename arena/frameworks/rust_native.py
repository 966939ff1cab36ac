"""What the Rust frameworks' adapters share: each is the extension `arena._native` (rust_ext/, built by
the README's install with maturin, release profile) behind the same three calls. The family logic,
including which workload computes what, lives in `rust_ext/<framework>/src/<family>.rs`.

The model lives in Rust between calls; Python only hands over inputs (untimed `setup`), calls `run`
(timed; the GIL is released) and reads the outputs back (untimed `fetch`). Not a framework package:
candle and burn import it, so neither imports the other.
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Callable
from types import ModuleType

import numpy as np

from arena.frameworks.contract import BuildContext, Probe, Step
from arena.frameworks.device_check import first_kernel

INSTALL_HINT = 'pip install -e ".[all]" (builds the Rust extension arena._native with maturin; needs cargo)'
# What runs a GPU cell's matmuls (the CPU's are the gemm crate's, named with the kernels it picked).
GPU_MATMUL = {"candle": "cuBLAS (candle-core's CUDA back-end, through cudarc)", "burn": "CubeCL's matmul kernels (compiled at run time)"}
# A variant built as a module of its own (Cargo unifies features: one build cannot hold candle-core with
# and without MKL): variant -> (module, how to build it).
VARIANT_MODULES = {"mkl": ("arena._native_mkl", "bash rust_ext/mkl/build.sh (Intel MKL from PyPI; see README)")}
# Why the MKL variant cannot run on a CPU that is not x86-64: the machine's limit, which the tests accept as a skip.
MKL_NOT_X86 = "Intel MKL exists for x86-64 only"


def extension(variant: str = "") -> ModuleType:
    """The compiled module a variant runs: arena._native, or the variant's own build."""
    return importlib.import_module(VARIANT_MODULES[variant][0] if variant in VARIANT_MODULES else "arena._native")


def family_adapter(framework: str, family: str) -> tuple[Callable, ...]:
    """build, inference, latency, training for one family in one Rust framework."""

    def build(config, weights: dict[str, np.ndarray], ctx: BuildContext):
        return extension(ctx.variant).Model(framework, family, config.model_dump_json(), weights, ctx.device)

    def step(workload: str) -> Callable:
        def make(model, inputs: dict[str, np.ndarray]) -> Step:
            model.setup(workload, inputs)
            return Step(run=model.run, fetch=lambda _: model.fetch())

        return make

    return build, step("inference"), step("latency"), step("training")


def thread_env(ctx: BuildContext) -> dict[str, str]:
    """rayon's global pool (both frameworks' matmul and parallel kernels) and candle's own read these
    once, at first use: set before the extension loads. The MKL build's matmuls run on Intel's OpenMP
    runtime instead, sized from the same count; its threads spin for KMP_BLOCKTIME (200 ms by default)
    after each parallel region, on the cores rayon's threads need for the element-wise work in between,
    so they go to sleep at once: KMP_BLOCKTIME=0, what the standard OMP_WAIT_POLICY=passive means to
    Intel's runtime and its own default on hybrid CPUs (LLVM's openmp runtime, kmp.h); chosen by
    measurement (README: ResNet-50 18 % faster than with the 200 ms default, SmolLM2 unchanged)."""
    env = {"RAYON_NUM_THREADS": str(ctx.threads), "CANDLE_NUM_THREADS": str(ctx.threads)}
    if ctx.variant == "mkl":
        env |= {"MKL_NUM_THREADS": str(ctx.threads), "OMP_NUM_THREADS": str(ctx.threads), "KMP_BLOCKTIME": "0"}
    return env


def variant_missing(ctx: BuildContext) -> str:
    """Why a variant built as its own module cannot run here ("" if it can)."""
    if ctx.variant not in VARIANT_MODULES:
        return ""
    module, how = VARIANT_MODULES[ctx.variant]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"{MKL_NOT_X86}, not {platform.machine()}"
    try:
        importlib.import_module(module)
    except ImportError as err:
        return f"{module} is not built here ({err}): build it with {how}"
    return ""


def probe(framework: str, ctx: BuildContext, backend: str, settings: dict) -> Probe:
    """Available on the devices this build has (GPU back-ends are Cargo features) in fp32 (the families'
    dtype); records the pools really used."""
    if missing := variant_missing(ctx):
        return Probe(available=False, reason=missing)
    _native = extension(ctx.variant)
    version = dict(_native.versions())[framework]
    built = _native.devices(framework)
    if ctx.device not in built:
        return Probe(available=False, reason=f"this build of arena._native has {framework} on {built} only, not {ctx.device!r} (GPU back-ends are Cargo features, see README)", version=version)
    if ctx.dtype != "fp32":
        return Probe(available=False, reason=f"the {framework} families are built for fp32 (the weights file's dtype)", version=version)
    on_cpu = ctx.device == "cpu"
    if not on_cpu and (unusable := first_kernel(f"{framework}'s {ctx.device} device", lambda: _native.first_kernel(framework, ctx.device))):
        return Probe(available=False, reason=unusable, version=version)
    built = dict(_native.build_info(framework))
    matmul = (f"Intel MKL sgemm (candle-core's mkl feature, static, Intel OpenMP threads): {built['mkl']}" if "mkl" in built
              else f"gemm crate {_native.GEMM_VERSION} (pure Rust), {_native.gemm_kernels()} kernels" if on_cpu
              else GPU_MATMUL[framework])
    settings = {"threads": dict(_native.thread_info(framework)), "build_profile": "release", "matmul": matmul, **built, **settings}
    return Probe(available=True, version=version, backend=f"{backend} {version} {ctx.device.upper()}", device_name=ctx.device, settings=settings)
