"""vla_expert in Candle: rust_ext/candle/src/vla_expert.rs."""

from arena.frameworks.candle.common import family_adapter

build, inference, latency, training = family_adapter("vla_expert")
