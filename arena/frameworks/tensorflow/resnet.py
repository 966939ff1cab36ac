"""ResNet in TensorFlow: torchvision's ResNet (v1.5) restated as pure functions of the official-named
variables, channels-last (NHWC activations, HWIO kernels: the layout TensorFlow's CPU convolutions take).

Follows torchvision `torchvision/models/resnet.py`: conv1 7x7/2 (no bias), bn1, ReLU, max-pool 3x3/2
padded with -inf, layer1..layer4 of BasicBlock or Bottleneck (stride on the 3x3 conv, `groups` on the
Bottleneck's 3x3, downsample = 1x1 conv + BN when the shape changes), global average pool, fc.
BatchNorm (eps 1e-5) uses the running statistics for inference and latency and the batch's own mean and
biased variance for training, as torch's eval and train modes do.

Training also returns the running statistics torch's train step leaves (`bn/<buffer name>`), computed
as outputs of the step rather than assigned to the variables, so every call moves the loaded
statistics by one step and inference never sees them. `forward`'s `moved` is that switch: None for
eval-mode BatchNorm, a dict for train mode, which every BatchNorm fills while the step is traced.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from arena.families.resnet import Config, blocks
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.frameworks.tensorflow.layers import batch_norm, conv, cross_entropy, linear

# Buffers of every BatchNorm: torch neither trains them nor reports a gradient for them.
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=BUFFERS)


def max_pool(x: tf.Tensor) -> tf.Tensor:
    """nn.MaxPool2d(3, stride=2, padding=1) on NHWC: padded with -inf, so the padding never wins a
    window. TensorFlow's "SAME" would pad only the bottom/right here, which moves every window."""
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=-np.inf)
    return tf.nn.max_pool2d(padded, ksize=3, strides=2, padding="VALID")


def conv_bn(p: Params, conv_name: str, bn_name: str, x: tf.Tensor, moved: dict | None, stride: int = 1, padding: int = 0) -> tf.Tensor:
    """A bias-free conv followed by its BatchNorm, the unit every torchvision ResNet layer is made of.
    A grouped conv needs no argument (see `layers.conv`)."""
    return batch_norm(p, bn_name, conv(p, conv_name, x, stride, padding), moved)


def basic_block(p: Params, prefix: str, x: tf.Tensor, stride: int, moved: dict | None) -> tf.Tensor:
    """BasicBlock: 3x3 (strided) -> BN -> ReLU -> 3x3 -> BN."""
    out = tf.nn.relu(conv_bn(p, f"{prefix}.conv1", f"{prefix}.bn1", x, moved, stride, padding=1))
    return conv_bn(p, f"{prefix}.conv2", f"{prefix}.bn2", out, moved, padding=1)


def bottleneck(p: Params, prefix: str, x: tf.Tensor, stride: int, moved: dict | None) -> tf.Tensor:
    """Bottleneck (v1.5): 1x1 -> BN -> ReLU -> 3x3 (strided, grouped) -> BN -> ReLU -> 1x1 -> BN."""
    out = tf.nn.relu(conv_bn(p, f"{prefix}.conv1", f"{prefix}.bn1", x, moved))
    out = tf.nn.relu(conv_bn(p, f"{prefix}.conv2", f"{prefix}.bn2", out, moved, stride, padding=1))
    return conv_bn(p, f"{prefix}.conv3", f"{prefix}.bn3", out, moved)


def block(p: Params, config: Config, prefix: str, x: tf.Tensor, stride: int, downsample: bool, moved: dict | None) -> tf.Tensor:
    """relu(residual branch + shortcut); the shortcut is a strided 1x1 conv + BN where the shape changes."""
    if config.block == "basic":
        out = basic_block(p, prefix, x, stride, moved)
    else:
        out = bottleneck(p, prefix, x, stride, moved)
    shortcut = conv_bn(p, f"{prefix}.downsample.0", f"{prefix}.downsample.1", x, moved, stride) if downsample else x
    return tf.nn.relu(out + shortcut)


def forward(p: Params, config: Config, images: tf.Tensor, moved: dict | None) -> tf.Tensor:
    """Logits [batch, num_classes] of images [batch, H, W, 3]."""
    x = tf.nn.relu(conv_bn(p, "conv1", "bn1", images, moved, stride=2, padding=3))  # [B, H/2, W/2, 64]
    x = max_pool(x)  # [B, H/4, W/4, 64]
    for prefix, _, _, stride, downsample in blocks(config):
        x = block(p, config, prefix, x, stride, downsample, moved)
    x = tf.reduce_mean(x, axis=(1, 2))  # AdaptiveAvgPool2d((1, 1)) + flatten: [B, num_features]
    return linear(p, "fc", x)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    images = to_device(inputs, model.ctx, channels_last=["images"])["images"]  # [batch, H, W, 3]
    return forward_step(model, lambda p, images: {"logits": forward(p, model.config, images, moved=None)}, images)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The inference computation at `latency_batch` images (ResNet has no cache to fill)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Mean cross-entropy on integer labels, train-mode BatchNorm (batch statistics); the moved running
    statistics come back as `bn/<buffer name>`."""
    tensors = to_device(inputs, model.ctx, channels_last=["images"])

    def loss(p: Params, images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        moved: dict[str, tf.Tensor] = {}
        logits = forward(p, model.config, images, moved)
        return cross_entropy(logits, labels), {f"bn/{name}": stat for name, stat in moved.items()}

    return training_step(model, loss, tensors["images"], tensors["labels"], with_outputs=True)
