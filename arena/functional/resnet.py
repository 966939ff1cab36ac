"""ResNet, written once for JAX, TensorFlow and tinygrad: torchvision's ResNet (v1.5) as pure functions
of the official-named parameters, whose first argument `nn` is the framework's layers module.

Follows torchvision `torchvision/models/resnet.py`: conv1 7x7/2 (no bias), bn1, ReLU, max-pool 3x3/2
whose padding never wins a window, layer1..layer4 of BasicBlock or Bottleneck (stride on the 3x3 conv,
`groups` on the Bottleneck's 3x3, downsample = 1x1 conv + BN when the shape changes), global average
pool, fc. BatchNorm (eps 1e-5) uses the running statistics for inference and latency and the batch's
own mean and biased variance for training, as torch's eval and train modes do.

Training also returns the running statistics torch's train step leaves (`bn/<buffer name>`), computed
functionally: the parameters are never written, so every call moves the loaded statistics by one step
and inference never sees them. `moved` is that switch throughout: None for eval-mode BatchNorm, a dict
for train mode, which every BatchNorm fills with its moved statistics while the step is traced.

Activations are in the framework's convolution layout (`nn.CHANNEL_AXIS`): NHWC for JAX and TensorFlow,
NCHW for tinygrad; the images arrive in it and every operation here keeps it.

Deviations from torchvision: none in the computation. The max-pool's padding is -inf in JAX and
TensorFlow and the dtype's minimum in tinygrad (its max_pool2d); neither can win a window.
"""

from __future__ import annotations

from arena.families.resnet import Config, blocks
from arena.functional.layers import Layers, Params, Tensor

# Buffers of every BatchNorm: torch neither trains them nor reports a gradient for them.
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def conv_bn(
    nn: Layers, p: Params, conv_name: str, bn_name: str, x: Tensor, moved: Params | None, stride: int = 1, padding: int = 0, groups: int = 1
) -> Tensor:
    """A bias-free conv followed by its BatchNorm, the unit every torchvision ResNet layer is made of."""
    return nn.batch_norm(p, bn_name, nn.conv(p, conv_name, x, stride=stride, padding=padding, groups=groups), moved)


def basic_block(nn: Layers, p: Params, prefix: str, x: Tensor, stride: int, moved: Params | None) -> Tensor:
    """BasicBlock: 3x3 (strided) -> BN -> ReLU -> 3x3 -> BN."""
    out = nn.relu(conv_bn(nn, p, f"{prefix}.conv1", f"{prefix}.bn1", x, moved, stride, padding=1))
    return conv_bn(nn, p, f"{prefix}.conv2", f"{prefix}.bn2", out, moved, padding=1)


def bottleneck(nn: Layers, p: Params, prefix: str, x: Tensor, stride: int, groups: int, moved: Params | None) -> Tensor:
    """Bottleneck (v1.5): 1x1 -> BN -> ReLU -> 3x3 (strided, grouped) -> BN -> ReLU -> 1x1 -> BN."""
    out = nn.relu(conv_bn(nn, p, f"{prefix}.conv1", f"{prefix}.bn1", x, moved))
    out = nn.relu(conv_bn(nn, p, f"{prefix}.conv2", f"{prefix}.bn2", out, moved, stride, padding=1, groups=groups))
    return conv_bn(nn, p, f"{prefix}.conv3", f"{prefix}.bn3", out, moved)


def block(nn: Layers, p: Params, config: Config, prefix: str, x: Tensor, stride: int, downsample: bool, moved: Params | None) -> Tensor:
    """relu(residual branch + shortcut); the shortcut is a strided 1x1 conv + BN where the shape changes."""
    if config.block == "basic":
        out = basic_block(nn, p, prefix, x, stride, moved)
    else:
        out = bottleneck(nn, p, prefix, x, stride, config.groups, moved)
    shortcut = conv_bn(nn, p, f"{prefix}.downsample.0", f"{prefix}.downsample.1", x, moved, stride) if downsample else x
    return nn.relu(out + shortcut)


def forward(nn: Layers, p: Params, config: Config, images: Tensor, moved: Params | None) -> Tensor:
    """Logits [batch, num_classes] of images [batch, 3, H, W] in the framework's layout."""
    x = nn.relu(conv_bn(nn, p, "conv1", "bn1", images, moved, stride=2, padding=3))  # [B, 64, H/2, W/2]
    x = nn.max_pool(x, kernel_size=3, stride=2, padding=1)  # [B, 64, H/4, W/4]
    for prefix, _, _, stride, downsample in blocks(config):
        x = block(nn, p, config, prefix, x, stride, downsample, moved)
    x = nn.global_avg_pool(x)  # AdaptiveAvgPool2d((1, 1)) + flatten: [B, num_features]
    return nn.linear(p, "fc", x)


def loss(nn: Layers, p: Params, config: Config, images: Tensor, labels: Tensor) -> tuple[Tensor, Params]:
    """The training workload: mean cross-entropy on integer labels with train-mode BatchNorm (batch
    statistics), and the moved running statistics as `bn/<buffer name>`."""
    moved: Params = {}
    logits = forward(nn, p, config, images, moved)
    return nn.cross_entropy(logits, labels), {f"bn/{name}": stat for name, stat in moved.items()}
