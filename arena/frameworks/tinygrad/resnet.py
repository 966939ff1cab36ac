"""ResNet in tinygrad. The architecture (torchvision's ResNet v1.5, its BatchNorm modes and the moved
running statistics training returns) is `arena.functional.resnet`; this module holds what is tinygrad's
own: images NCHW with OIHW kernels (PyTorch's layout, which `Tensor.conv2d` takes as it is), the weights
closed over as constants of the captured kernels, and the forward, or the loss and its gradients, as one
TinyJit (`common.forward_step` and `training_step`). The BatchNorm buffers are frozen.
"""

from __future__ import annotations

import numpy as np
from tinygrad import Tensor

from arena.families.resnet import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad import layers as nn
from arena.frameworks.tinygrad.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.functional import resnet


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=resnet.BUFFERS)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    images = to_device(inputs, model.ctx)["images"]  # [batch, 3, H, W]
    return forward_step(lambda images: {"logits": resnet.forward(nn, model.params, model.config, images, moved=None)}, model, images)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The inference computation at `latency_batch` images (ResNet has no cache to fill)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`resnet.loss` (train-mode BatchNorm), its moved running statistics returned with the gradients."""
    tensors = to_device(inputs, model.ctx)

    def loss(images: Tensor, labels: Tensor) -> tuple[Tensor, Params]:
        return resnet.loss(nn, model.params, model.config, images, labels)

    return training_step(model, loss, tensors["images"], tensors["labels"], with_outputs=True)
