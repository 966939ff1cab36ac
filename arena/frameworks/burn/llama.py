"""llama in Burn: rust_ext/burn/src/llama.rs."""

from arena.frameworks.rust_native import family_adapter

build, inference, latency, training = family_adapter("burn", "llama")
