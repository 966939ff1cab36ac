"""llama in Candle: rust_ext/candle/src/llama.rs."""

from arena.frameworks.candle.common import family_adapter

build, inference, latency, training = family_adapter("llama")
