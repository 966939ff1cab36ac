"""Burn: the five families written on burn-nn modules and Burn tensor ops in Rust (`rust_ext/burn/`),
on burn-flex (Burn's pure-Rust CPU back-end) with autodiff, driven through the PyO3 extension
`arena._native` (`arena/frameworks/rust_native.py`). Weights load through burn-store by the official
names. Without the extension the cells are `unavailable` with the reason.
"""

from __future__ import annotations

from arena.frameworks import rust_native
from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "arena"  # the extension is built from this repository; the Burn version is in `version`
# Its numbers come from the extension: its crates (a wheel has only the compiled file), hashed both ways.
DISTRIBUTIONS = ()
SOURCES = ("arena/frameworks/rust_native.py", "rust_ext/Cargo.toml", "rust_ext/Cargo.lock", "rust_ext/common", "rust_ext/native", "rust_ext/burn")
BINARIES = ("arena._native",)
INSTALL_HINT = rust_native.INSTALL_HINT
VARIANTS = {"": "burn-flex CPU back-end (gemm, SIMD, rayon) with autodiff, release build; Burn's fused attention op"}
UNSUPPORTED: dict[str, str] = {}
process_env = rust_native.thread_env

SETTINGS = {
    "backend": "burn-flex (eager, pure Rust)",
    # The SD UNet's training step would keep two [heads, 4096, 4096] tensors per self-attention until
    # the backward ends; Burn's own remedy recomputes cheap ops there instead (rust_ext/burn/src/unet2d_condition.rs).
    "gradient_checkpointing": "unet2d_condition training only (Burn's balanced strategy)",
}


def probe(ctx: BuildContext) -> Probe:
    return rust_native.probe("burn", ctx, backend="Burn flex", settings=SETTINGS)
