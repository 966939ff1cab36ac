"""What a cell stores for its verdict: the outputs artifact, made inside the cell (measured code).

Artifacts are flat dicts of numpy arrays: `<workload>/<output>` for outputs (full tensors),
`training/loss`, and for gradients `training/grad_norm/<name>` (float64 norm),
`training/grad_sample/<name>` (a fixed seeded sample of the tensor's elements, the same indices in
every framework) and `training/grad_proj/<name>` (dot products of the whole tensor with
GRAD_PROJECTIONS fixed seeded Gaussian vectors). arena/results/compare.py judges them; keeping the two
apart lets a verdict be re-judged from stored artifacts when only the judging changed.
"""

from __future__ import annotations

import numpy as np

from arena.families.base import rng_for

GRAD_SAMPLE_SIZE = 256
GRAD_PROJECTIONS = 4


def fingerprint(outputs: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Workload outputs → the artifact: full outputs, the loss, and per gradient its norm, seeded
    sample and seeded projections."""
    artifact: dict[str, np.ndarray] = {}
    for workload, named in outputs.items():
        for name, array in named.items():
            if name.startswith("grad/"):
                param = name.removeprefix("grad/")
                flat = np.asarray(array, dtype=np.float64).reshape(-1)
                artifact[f"{workload}/grad_norm/{param}"] = np.array(np.linalg.norm(flat))
                artifact[f"{workload}/grad_sample/{param}"] = flat[sample_indices(param, flat.size)]
                artifact[f"{workload}/grad_proj/{param}"] = projections(param, flat)
            else:
                artifact[f"{workload}/{name}"] = np.asarray(array)
    return artifact


def projections(param: str, flat: np.ndarray) -> np.ndarray:
    """<flat, r_k> for GRAD_PROJECTIONS Gaussian vectors r_k seeded by the tensor's name (the same in
    every framework), generated one at a time so that memory stays at one vector."""
    return np.array([float(flat @ rng_for("grad-proj", param, k).standard_normal(flat.size, dtype=np.float32)) for k in range(GRAD_PROJECTIONS)])


def sample_indices(param: str, size: int) -> np.ndarray:
    if size <= GRAD_SAMPLE_SIZE:
        return np.arange(size)
    return np.sort(rng_for("grad-sample", param).choice(size, GRAD_SAMPLE_SIZE, replace=False))
