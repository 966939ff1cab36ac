"""Candle: the five families written on candle-core + candle-nn in Rust (`rust_ext/candle/`), driven
through the PyO3 extension `arena._native` that the README's install command builds with maturin
(release profile).

The model lives in Rust between calls; Python only hands over inputs (untimed `setup`), calls `run`
(timed; the GIL is released) and reads the outputs back (untimed `fetch`). Without the extension the
cells are `unavailable` with the reason; nothing else depends on it.
"""

from __future__ import annotations

from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "arena"  # the extension is built from this repository; the Candle version is in `version`
INSTALL_HINT = 'pip install -e ".[all]" (builds the Rust extension arena._native with maturin; needs cargo)'
VARIANTS = {"": "candle-core/candle-nn CPU back-end (gemm), release build; fused kernels for inference, differentiable ops for training"}
UNSUPPORTED: dict[str, str] = {}


def process_env(ctx: BuildContext) -> dict[str, str]:
    """Candle's pool and rayon's (gemm) read these once, at first use: set before the extension loads."""
    return {"RAYON_NUM_THREADS": str(ctx.threads), "CANDLE_NUM_THREADS": str(ctx.threads)}


def probe(ctx: BuildContext) -> Probe:
    import arena._native as _native

    if ctx.device != "cpu":
        return Probe(available=False, reason=f"this build of arena._native has Candle's CPU back-end only (no {ctx.device!r})", version=_native.candle_version())
    if ctx.dtype != "fp32":
        return Probe(available=False, reason="the Candle families are built for fp32 (the weights file's dtype)", version=_native.candle_version())
    threads = dict(_native.thread_info())
    settings = {"threads": threads, "build_profile": "release", "matmul": "gemm crate (pure Rust)"}
    return Probe(available=True, version=_native.candle_version(), backend=f"Candle {_native.candle_version()} CPU", device_name="cpu", settings=settings)
