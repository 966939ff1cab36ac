"""The buggy family functions: a real implementation of the family, built with one bug injected."""

from __future__ import annotations

import importlib

import numpy as np

from arena.frameworks.contract import Step, build_model
from tests.bugs.catalogue import BUGS, Injection
from tests.faults import wrapped_framework


def buggy(family: str):
    def build(config, weights: dict[str, np.ndarray], ctx, inputs):
        impl = importlib.import_module(f"arena.frameworks.{wrapped_framework(ctx.variant)}.{family}")
        name = ctx.variant.partition("-")[0]
        bug = BUGS[name].families[family] if name in BUGS else Injection()  # the control: nothing
        config = bug.config(config) if bug.config else config
        weights = bug.weights(dict(weights)) if bug.weights else weights
        if bug.process:
            bug.process()
        # A private conversion folder: the cell's is keyed by the weights as they were before the bug.
        model = build_model(impl.build, config, weights, ctx.model_copy(update={"variant": "", "convert_dir": ""}), inputs)
        if bug.model:
            bug.model(model)
        return model, impl

    def inference(model, inputs) -> Step:
        return model[1].inference(model[0], inputs)

    def latency(model, inputs) -> Step:
        return model[1].latency(model[0], inputs)

    def training(model, inputs) -> Step:
        return model[1].training(model[0], inputs)

    return build, inference, latency, training
