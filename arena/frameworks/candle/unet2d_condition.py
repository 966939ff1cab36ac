"""unet2d_condition in Candle: rust_ext/candle/src/unet2d_condition.rs."""

from arena.frameworks.rust_native import family_adapter

build, inference, latency, training = family_adapter("candle", "unet2d_condition")
