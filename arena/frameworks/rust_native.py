"""What the Rust frameworks' adapters share: each is the extension `arena._native` (rust_ext/, built by
the README's install with maturin, release profile) behind the same three calls. The family logic,
including which workload computes what, lives in `rust_ext/<framework>/src/<family>.rs`.

The model lives in Rust between calls; Python only hands over inputs (untimed `setup`), calls `run`
(timed; the GIL is released) and reads the outputs back (untimed `fetch`). Not a framework package:
candle and burn import it, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from arena.frameworks.contract import BuildContext, Probe, Step
from arena.frameworks.device_check import first_kernel

INSTALL_HINT = 'pip install -e ".[all]" (builds the Rust extension arena._native with maturin; needs cargo)'
# What runs a GPU cell's matmuls (the CPU's are the gemm crate's, named with the kernels it picked).
GPU_MATMUL = {"candle": "cuBLAS (candle-core's CUDA back-end, through cudarc)", "burn": "CubeCL's matmul kernels (compiled at run time)"}


def family_adapter(framework: str, family: str) -> tuple[Callable, ...]:
    """build, inference, latency, training for one family in one Rust framework."""

    def build(config, weights: dict[str, np.ndarray], ctx: BuildContext):
        import arena._native as _native

        return _native.Model(framework, family, config.model_dump_json(), weights, ctx.device)

    def step(workload: str) -> Callable:
        def make(model, inputs: dict[str, np.ndarray]) -> Step:
            model.setup(workload, inputs)
            return Step(run=model.run, fetch=lambda _: model.fetch())

        return make

    return build, step("inference"), step("latency"), step("training")


def thread_env(ctx: BuildContext) -> dict[str, str]:
    """rayon's global pool (both frameworks' matmul and parallel kernels) and candle's own read these
    once, at first use: set before the extension loads."""
    return {"RAYON_NUM_THREADS": str(ctx.threads), "CANDLE_NUM_THREADS": str(ctx.threads)}


def probe(framework: str, ctx: BuildContext, backend: str, settings: dict) -> Probe:
    """Available on the devices this build has (GPU back-ends are Cargo features) in fp32 (the families'
    dtype); records the pools really used."""
    import arena._native as _native

    version = dict(_native.versions())[framework]
    built = _native.devices(framework)
    if ctx.device not in built:
        return Probe(available=False, reason=f"this build of arena._native has {framework} on {built} only, not {ctx.device!r} (GPU back-ends are Cargo features, see README)", version=version)
    if ctx.dtype != "fp32":
        return Probe(available=False, reason=f"the {framework} families are built for fp32 (the weights file's dtype)", version=version)
    on_cpu = ctx.device == "cpu"
    if not on_cpu and (unusable := first_kernel(f"{framework}'s {ctx.device} device", lambda: _native.first_kernel(framework, ctx.device))):
        return Probe(available=False, reason=unusable, version=version)
    matmul = f"gemm crate {_native.GEMM_VERSION} (pure Rust), {_native.gemm_kernels()} kernels" if on_cpu else GPU_MATMUL[framework]
    settings = {"threads": dict(_native.thread_info(framework)), "build_profile": "release", "matmul": matmul,
                **dict(_native.build_info(framework)), **settings}
    return Probe(available=True, version=version, backend=f"{backend} {version} {ctx.device.upper()}", device_name=ctx.device, settings=settings)
