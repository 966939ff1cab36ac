"""resnet in Candle: rust_ext/candle/src/resnet.rs."""

from arena.frameworks.rust_native import family_adapter

build, inference, latency, training = family_adapter("candle", "resnet")
