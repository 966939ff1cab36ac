"""Running Arena on a host without network, such as a lent GPU machine.

Such a host has its own Python and frameworks (the H200 machine: Python 3.12, torch 2.11 with CUDA 13,
JAX with CUDA, nvcc, CMake) and receives only a small working tree (64 MiB). What Arena needs beyond
what the host has is brought as wheels: `python -m arena.offline DEST` (bundle.py) downloads them for the
host's Python and platform, at the versions this checkout runs with, into DEST/wheels with a pinned
requirements file, and says how much of the budget they use. On the host, `arena/offline/run.sh`
installs them into a virtual environment that also sees the host's packages and runs `python -m arena`
from the checkout (Arena itself is not installed: its build backend compiles the Rust extension, and
that host has no Rust).

Frameworks that are not brought are passed as `+not_run_here.<framework>=...` by whoever runs it, so
their results say the lab could not bring them, not that they cannot use the GPU.
"""
