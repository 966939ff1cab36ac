"""ResNet in JAX. The architecture (torchvision's ResNet v1.5, its BatchNorm modes and the moved
running statistics training returns) is `arena.functional.resnet`; this module holds what is JAX's own:
images channels-last (NHWC activations, HWIO kernels: XLA's layout), the forward jitted for inference
and latency, and the loss through jit(value_and_grad) for training (`common.forward_step` and
`training_step`). The BatchNorm buffers are frozen: torch neither trains them nor reports their gradient.
"""

from __future__ import annotations

import jax
import numpy as np

from arena.families.resnet import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.jax import layers as nn
from arena.frameworks.jax.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.functional import resnet


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=resnet.BUFFERS)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    images = to_device(inputs, model.dtype, channels_last=["images"])["images"]  # [batch, H, W, 3]
    return forward_step(lambda p, images: {"logits": resnet.forward(nn, p, model.config, images, moved=None)}, model.params, images)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The inference computation at `latency_batch` images (ResNet has no cache to fill)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`resnet.loss` (train-mode BatchNorm), its moved running statistics returned with the gradients."""
    tensors = to_device(inputs, model.dtype, channels_last=["images"])

    def loss(p: Params, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, Params]:
        return resnet.loss(nn, p, model.config, images, labels)

    return training_step(model, loss, tensors["images"], tensors["labels"], with_outputs=True)
