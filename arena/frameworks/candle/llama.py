"""llama in Candle: rust_ext/candle/src/llama.rs."""

from arena.frameworks.rust_native import family_adapter

build, inference, latency, training = family_adapter("candle", "llama")
