"""unet2d_condition in Candle: rust_ext/candle/src/unet2d_condition.rs."""

from arena.frameworks.candle.common import family_adapter

build, inference, latency, training = family_adapter("unet2d_condition")
