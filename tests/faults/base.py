"""The faulty family functions, built around a real implementation of the family (torch's unless the
variant names another framework)."""

from __future__ import annotations

import ctypes
import importlib
import os
import time

import numpy as np

from arena.frameworks.contract import Step, build_model
from tests.faults import wrapped_framework


def faulty(family: str):
    def build(config, weights: dict[str, np.ndarray], ctx, inputs):
        impl = importlib.import_module(f"arena.frameworks.{wrapped_framework(ctx.variant)}.{family}")
        if ctx.variant == "raise":
            raise RuntimeError("deliberate failure in build")
        if ctx.variant == "segfault":
            ctypes.string_at(0)
        if ctx.variant == "hang":
            time.sleep(10**6)
        if ctx.variant.startswith("perturb"):
            name = os.environ.get("ARENA_TEST_PERTURB") or max(
                (n for n, w in weights.items() if w.dtype.kind == "f"), key=lambda n: weights[n].size
            )
            weights = dict(weights) | {name: weights[name] * np.float32(1.01)}
        # A private conversion folder: the cell's is keyed by the unperturbed weights' hash.
        wrapped_ctx = ctx.model_copy(update={"variant": "", "convert_dir": ""})
        model = build_model(impl.build, config, weights, wrapped_ctx, inputs)
        if ctx.variant == "bn_momentum":
            set_batch_norm_momentum(model.module, 0.2)
        return model, ctx.variant, impl

    def inference(model, inputs) -> Step:
        step = model[2].inference(model[0], inputs)
        if model[1] == "nan":
            return Step(run=step.run, fetch=lambda v: {k: a * np.nan for k, a in step.fetch(v).items()})
        return step

    def latency(model, inputs) -> Step:
        return model[2].latency(model[0], inputs)

    def training(model, inputs) -> Step:
        if model[1] == "exit":
            os._exit(3)
        if model[1] == "trainerror":
            raise RuntimeError("deliberate failure in training")
        return model[2].training(model[0], inputs)

    return build, inference, latency, training


def set_batch_norm_momentum(module, momentum: float) -> None:
    """Every BatchNorm of a torch module moves its running statistics by `momentum` (torch's is 0.1):
    loss and gradients stay the same, only the statistics a training step leaves change."""
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("bn_momentum: this model has no BatchNorm")
    for m in norms:
        m.momentum = momentum
