"""ResNet in tinygrad: torchvision's ResNet (v1.5) restated as pure functions of the official-named
weights, NCHW with OIHW kernels (PyTorch's layout, which `Tensor.conv2d` takes as it is).

Follows torchvision `torchvision/models/resnet.py`: conv1 7x7/2 (no bias), bn1, ReLU, max-pool 3x3/2
padded with the dtype's minimum (tinygrad's max_pool2d: it never wins a window), layer1..layer4 of
BasicBlock or Bottleneck (stride on the 3x3 conv, `groups` on the Bottleneck's 3x3, downsample = 1x1
conv + BN when the shape changes), global average pool, fc. BatchNorm (eps 1e-5) uses the running
statistics for inference and latency and the batch's own mean and biased variance for training, as
torch's eval and train modes do.

Training also returns the running statistics torch's train step leaves (`bn/<buffer name>`), computed
functionally as in the JAX package: the weights are never written, so every call moves the loaded
statistics by one step and inference never sees them. `forward`'s `moved` is that switch: None for
eval-mode BatchNorm, a dict for train mode, which every BatchNorm fills with its moved statistics.
"""

from __future__ import annotations

import numpy as np
from tinygrad import Tensor

from arena.families.resnet import Config, blocks
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.frameworks.tinygrad.layers import batch_norm, conv, cross_entropy, linear

# Buffers of every BatchNorm: torch neither trains them nor reports a gradient for them.
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=BUFFERS)


def conv_bn(p: Params, conv_name: str, bn_name: str, x: Tensor, moved: Params | None, stride: int = 1, padding: int = 0, groups: int = 1) -> Tensor:
    """A bias-free conv followed by its BatchNorm, the unit every torchvision ResNet layer is made of."""
    return batch_norm(p, bn_name, conv(p, conv_name, x, stride, padding, groups), moved)


def basic_block(p: Params, prefix: str, x: Tensor, stride: int, moved: Params | None) -> Tensor:
    """BasicBlock: 3x3 (strided) -> BN -> ReLU -> 3x3 -> BN."""
    out = conv_bn(p, f"{prefix}.conv1", f"{prefix}.bn1", x, moved, stride, padding=1).relu()
    return conv_bn(p, f"{prefix}.conv2", f"{prefix}.bn2", out, moved, padding=1)


def bottleneck(p: Params, prefix: str, x: Tensor, stride: int, groups: int, moved: Params | None) -> Tensor:
    """Bottleneck (v1.5): 1x1 -> BN -> ReLU -> 3x3 (strided, grouped) -> BN -> ReLU -> 1x1 -> BN."""
    out = conv_bn(p, f"{prefix}.conv1", f"{prefix}.bn1", x, moved).relu()
    out = conv_bn(p, f"{prefix}.conv2", f"{prefix}.bn2", out, moved, stride, padding=1, groups=groups).relu()
    return conv_bn(p, f"{prefix}.conv3", f"{prefix}.bn3", out, moved)


def block(p: Params, config: Config, prefix: str, x: Tensor, stride: int, downsample: bool, moved: Params | None) -> Tensor:
    """relu(residual branch + shortcut); the shortcut is a strided 1x1 conv + BN where the shape changes."""
    if config.block == "basic":
        out = basic_block(p, prefix, x, stride, moved)
    else:
        out = bottleneck(p, prefix, x, stride, config.groups, moved)
    shortcut = conv_bn(p, f"{prefix}.downsample.0", f"{prefix}.downsample.1", x, moved, stride) if downsample else x
    return (out + shortcut).relu()


def forward(p: Params, config: Config, images: Tensor, moved: Params | None) -> Tensor:
    """Logits [batch, num_classes] of images [batch, 3, H, W]."""
    x = conv_bn(p, "conv1", "bn1", images, moved, stride=2, padding=3).relu()  # [B, 64, H/2, W/2]
    x = x.max_pool2d(kernel_size=(3, 3), stride=2, padding=1)  # [B, 64, H/4, W/4]
    for prefix, _, _, stride, downsample in blocks(config):
        x = block(p, config, prefix, x, stride, downsample, moved)
    x = x.mean(axis=(2, 3))  # AdaptiveAvgPool2d((1, 1)) + flatten: [B, num_features]
    return linear(p, "fc", x)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    images = to_device(inputs, model.ctx)["images"]
    return forward_step(lambda images: {"logits": forward(model.params, model.config, images, moved=None)}, model, images)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The inference computation at `latency_batch` images (ResNet has no cache to fill)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Mean cross-entropy on integer labels, train-mode BatchNorm (batch statistics); the moved running
    statistics come back as `bn/<buffer name>`."""
    tensors = to_device(inputs, model.ctx)

    def loss(images: Tensor, labels: Tensor) -> tuple[Tensor, Params]:
        moved: Params = {}
        logits = forward(model.params, model.config, images, moved)
        return cross_entropy(logits, labels), {f"bn/{name}": stat for name, stat in moved.items()}

    return training_step(model, loss, tensors["images"], tensors["labels"], with_outputs=True)
