"""vla_expert in Candle: rust_ext/candle/src/vla_expert.rs."""

from arena.frameworks.rust_native import family_adapter

build, inference, latency, training = family_adapter("candle", "vla_expert")
