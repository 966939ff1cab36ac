"""ResNet in TensorFlow. The architecture (torchvision's ResNet v1.5, its BatchNorm modes and the moved
running statistics training returns) is `arena.functional.resnet`; this module holds what is
TensorFlow's own: images channels-last (NHWC activations, HWIO kernels: the layout TensorFlow's CPU
convolutions take), the forward traced into a tf.function for inference and latency, and the loss under
a GradientTape in one for training (`common.forward_step` and `training_step`). The moved statistics
are outputs of the step, never assigned to the variables; the BatchNorm buffers are frozen.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from arena.families.resnet import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow import layers as nn
from arena.frameworks.tensorflow.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.functional import resnet


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=resnet.BUFFERS)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    images = to_device(inputs, model.ctx, channels_last=["images"])["images"]  # [batch, H, W, 3]
    return forward_step(model, lambda p, images: {"logits": resnet.forward(nn, p, model.config, images, moved=None)}, images)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The inference computation at `latency_batch` images (ResNet has no cache to fill)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """`resnet.loss` (train-mode BatchNorm), its moved running statistics returned with the gradients."""
    tensors = to_device(inputs, model.ctx, channels_last=["images"])

    def loss(p: Params, images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        return resnet.loss(nn, p, model.config, images, labels)

    return training_step(model, loss, tensors["images"], tensors["labels"], with_outputs=True)
