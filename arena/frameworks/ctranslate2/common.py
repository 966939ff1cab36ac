"""What the family files share: how a model is opened for the cell, and results back to numpy."""

from __future__ import annotations

import ctranslate2
import numpy as np

from arena.frameworks.contract import BuildContext
from arena.frameworks.ctranslate2 import COMPUTE_TYPE


def runtime_options(ctx: BuildContext) -> dict:
    """Keyword arguments of every CTranslate2 model constructor for this cell: one replica
    (inter_threads 1) with the cell's threads, at the float32 compute type."""
    device, _, index = ctx.device.partition(":")
    return {"device": device, "device_index": int(index or 0), "compute_type": COMPUTE_TYPE,
            "intra_threads": ctx.threads, "inter_threads": 1}


def to_numpy(value: ctranslate2.StorageView) -> np.ndarray:
    """A float32 copy in host memory (a CUDA result is copied to the host first)."""
    if value.device != "cpu":
        value = value.to_device(ctranslate2.Device.cpu)
    return np.array(value, dtype=np.float32)
