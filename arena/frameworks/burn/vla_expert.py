"""vla_expert in Burn: rust_ext/burn/src/vla_expert.rs."""

from arena.frameworks.rust_native import family_adapter

build, inference, latency, training = family_adapter("burn", "vla_expert")
