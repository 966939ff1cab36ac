"""resnet in Burn: rust_ext/burn/src/resnet.rs."""

from arena.frameworks.rust_native import family_adapter

build, inference, latency, training = family_adapter("burn", "resnet")
