"""MLX's CPU probe records what limits it, read from the process: the BLAS its wheel brought."""

from __future__ import annotations

import sys

import pytest

from arena.frameworks import load_adapter
from arena.frameworks.contract import BuildContext


@pytest.mark.skipif(sys.platform != "linux", reason="the mlx[cpu] wheel and /proc/self/maps are Linux's")
def test_the_cpu_probe_names_the_blas_the_mlx_wheel_brought_and_not_numpys():
    pytest.importorskip("mlx.core")
    # arena has imported numpy, so numpy's own OpenBLAS is mapped too: it must not be taken for MLX's.
    adapter, _ = load_adapter("mlx")
    probe = adapter.probe(BuildContext(device="cpu", dtype="fp32", threads=2))
    blas = probe.settings["blas"]
    assert "blas" in blas.lower() and "scipy_openblas" not in blas, blas
