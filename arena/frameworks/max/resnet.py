"""ResNet in MAX: the architecture is `arena.functional.resnet` (torchvision's ResNet v1.5) in eval mode,
traced into one MAX graph per batch size, images channels-last (NHWC activations, HWIO kernels: MAX's
convolution layout)."""

from __future__ import annotations

import numpy as np

from arena.families.resnet import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.max import common
from arena.frameworks.max import layers as nn
from arena.functional import resnet


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.prepare(common.build_model(config, weights, ctx), {"inference": inference, "latency": latency}, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    def logits(p, images):
        return {"logits": resnet.forward(nn, p, model.config, images, moved=None)}

    return common.step(model, "classify", logits, {"images": inputs["images"]}, channels_last=["images"])


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """The inference graph at `latency_batch` images (compiled for that batch)."""
    return inference(model, inputs)
