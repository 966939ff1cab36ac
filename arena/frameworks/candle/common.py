"""What every Candle family file is: the Rust model behind three calls. The family logic, including
which workload computes what, lives in `rust_ext/candle/src/<family>.rs`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from arena.frameworks.contract import BuildContext, Step


def family_adapter(family: str) -> tuple[Callable, ...]:
    """build, inference, latency, training for one family."""

    def build(config, weights: dict[str, np.ndarray], ctx: BuildContext):
        import arena._native as _native

        return _native.CandleModel(family, config.model_dump_json(), weights, ctx.device)

    def step(workload: str) -> Callable:
        def make(model, inputs: dict[str, np.ndarray]) -> Step:
            model.setup(workload, inputs)
            return Step(run=model.run, fetch=lambda _: model.fetch())

        return make

    return build, step("inference"), step("latency"), step("training")
