"""whisper in Candle: rust_ext/candle/src/whisper.rs."""

from arena.frameworks.candle.common import family_adapter

build, inference, latency, training = family_adapter("whisper")
