"""Candle: the five families written on candle-core + candle-nn in Rust (`rust_ext/candle/`), driven
through the PyO3 extension `arena._native` (`arena/frameworks/rust_native.py`). Without the extension
the cells are `unavailable` with the reason; nothing else depends on it.

    candle-mkl  candle-core's `mkl` feature, Candle's documented x86 path ("Optimized CPU backend with
                optional MKL support for x86", https://github.com/huggingface/candle#features): the same Rust families with their
                matmuls (and convolutions' GEMMs, and some element-wise maps) on Intel MKL, built as a
                module of its own, arena._native_mkl, by rust_ext/mkl/build.sh; `unavailable` where
                it is not built
"""

from __future__ import annotations

from arena.frameworks import rust_native
from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "arena"  # the extension is built from this repository; the Candle version is in `version`
# Its numbers come from the extension: its crates (a wheel has only the compiled file), hashed both ways.
DISTRIBUTIONS = ()
SOURCES = ("arena/frameworks/rust_native.py", "rust_ext/Cargo.toml", "rust_ext/Cargo.lock", "rust_ext/common", "rust_ext/native", "rust_ext/candle")
BINARIES = ("arena._native", "mkl:arena._native_mkl")
INSTALL_HINT = rust_native.INSTALL_HINT
VARIANTS = {
    "": "candle-core/candle-nn CPU back-end (gemm), release build; fused kernels for inference, differentiable ops for training",
    "mkl": "candle-core's mkl feature: matmuls and some element-wise maps on Intel MKL (static, Intel OpenMP), module arena._native_mkl",
}
UNSUPPORTED: dict[str, str] = {}
process_env = rust_native.thread_env


def probe(ctx: BuildContext) -> Probe:
    return rust_native.probe("candle", ctx, backend="Candle", settings={})
