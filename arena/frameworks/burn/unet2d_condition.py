"""unet2d_condition in Burn: rust_ext/burn/src/unet2d_condition.rs."""

from arena.frameworks.rust_native import family_adapter

build, inference, latency, training = family_adapter("burn", "unet2d_condition")
