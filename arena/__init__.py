"""Arena: the same real models through every ML framework, timed and verified against PyTorch."""

__version__ = "0.1.0"
