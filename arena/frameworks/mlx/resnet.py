"""ResNet in MLX: torchvision's ResNet (v1.5) as an `mlx.nn` module tree with the official names.

Follows torchvision `torchvision/models/resnet.py`: conv1 7x7/2 (no bias), bn1, ReLU, max-pool 3x3/2
(`nn.MaxPool2d` pads with -inf, as torch), layer1..layer4 of BasicBlock or Bottleneck (stride on the
3x3 conv, `groups` on the Bottleneck's 3x3 through Conv2d's `groups`, downsample = 1x1 conv + BN when
the shape changes, kept as a plain list so its names are `downsample.0` / `downsample.1`), global
average pool, fc. `nn.BatchNorm` (eps 1e-5, momentum 0.1) matches BatchNorm2d: running statistics in
eval mode; in train mode the batch mean and biased variance normalise, and the running statistics are
updated with the unbiased variance, as torch does (mlx 0.32 `nn/layers/normalization.py`, ddof=1). A
training call returns them, and each call first puts back the loaded ones, as the torch reference
does. MLX convolutions are channels-last: images arrive NHWC (`to_device(channels_last=...)`), and the
logits have no spatial axes.

Deviation: MLX's BatchNorm has no `num_batches_tracked` counter (it only matters for momentum=None), so
that buffer is not loaded.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx.utils import tree_flatten, tree_unflatten

from arena.families.resnet import RUNNING_STATS, STEM_CHANNELS, Config, blocks
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.mlx.common import forward_step, load, to_device, to_numpy, training_step
from arena.frameworks.mlx.layers import cross_entropy

STAGES = ("layer1", "layer2", "layer3", "layer4")


class Block(nn.Module):
    """What BasicBlock and Bottleneck share: relu(branch(x) + shortcut(x)), the shortcut being a strided
    1x1 conv + BN (`downsample`) where the shape changes."""

    def __init__(self, inplanes: int, out: int, stride: int, downsample: bool):
        super().__init__()
        if downsample:
            self.downsample = [nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm(out)]

    def branch(self, x: mx.array) -> mx.array:
        raise NotImplementedError

    def __call__(self, x: mx.array) -> mx.array:
        shortcut = x
        if "downsample" in self:
            conv, bn = self.downsample
            shortcut = bn(conv(x))
        return nn.relu(self.branch(x) + shortcut)


class BasicBlock(Block):
    """3x3 (strided) -> BN -> ReLU -> 3x3 -> BN."""

    def __init__(self, config: Config, inplanes: int, planes: int, stride: int, downsample: bool):
        super().__init__(inplanes, planes * config.expansion, stride, downsample)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm(planes)

    def branch(self, x: mx.array) -> mx.array:
        return self.bn2(self.conv2(nn.relu(self.bn1(self.conv1(x)))))


class Bottleneck(Block):
    """1x1 -> BN -> ReLU -> 3x3 (strided, grouped) -> BN -> ReLU -> 1x1 -> BN (v1.5: stride on the 3x3)."""

    def __init__(self, config: Config, inplanes: int, planes: int, stride: int, downsample: bool):
        width, out = config.width(planes), planes * config.expansion
        super().__init__(inplanes, out, stride, downsample)
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=config.groups, bias=False)
        self.bn2 = nn.BatchNorm(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm(out)

    def branch(self, x: mx.array) -> mx.array:
        x = nn.relu(self.bn1(self.conv1(x)))
        x = nn.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm(STEM_CHANNELS)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages: dict[str, list[Block]] = {name: [] for name in STAGES}
        for prefix, inplanes, planes, stride, downsample in blocks(config):
            stage = prefix.partition(".")[0]  # "layer1.0" -> "layer1"
            stages[stage].append(BLOCKS[config.block](config, inplanes, planes, stride, downsample))
        for name, stage_blocks in stages.items():
            setattr(self, name, stage_blocks)  # lists give the official `layer1.0.` names
        self.fc = nn.Linear(config.num_features, config.num_classes)

    def __call__(self, images: mx.array) -> mx.array:
        """Logits [batch, num_classes] of images [batch, H, W, 3]."""
        x = self.maxpool(nn.relu(self.bn1(self.conv1(images))))  # [B, H/4, W/4, 64]
        for name in STAGES:
            for block in getattr(self, name):
                x = block(x)
        return self.fc(mx.mean(x, axis=(1, 2)))  # AdaptiveAvgPool2d((1, 1)) + flatten: [B, num_features]


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> ResNet:
    return load(ResNet(config), weights, ctx, skip=("num_batches_tracked",))


def inference(model: ResNet, inputs: dict[str, np.ndarray]) -> Step:
    """Eval-mode BatchNorm. The mode is set inside the compiled function, so it holds when it is traced
    (on the first call) whichever step last changed it."""
    images = to_device(inputs, model.ctx, channels_last=["images"])["images"]  # [batch, H, W, 3]

    def classify(images: mx.array) -> dict[str, mx.array]:
        model.eval()
        return {"logits": model(images)}

    return forward_step(classify, images)


def latency(model: ResNet, inputs: dict[str, np.ndarray]) -> Step:
    """The inference computation at `latency_batch` images (ResNet has no cache to fill)."""
    return inference(model, inputs)


def running_stats(model: ResNet) -> dict[str, mx.array]:
    """Every BatchNorm's running_mean and running_var, by official buffer name."""
    return {name: a for name, a in tree_flatten(model.parameters()) if name.endswith(RUNNING_STATS)}


def training(model: ResNet, inputs: dict[str, np.ndarray]) -> Step:
    """Mean cross-entropy on integer labels, train-mode BatchNorm (batch statistics; training_step puts
    the module in train mode and carries the running-statistics update as compiled state); the running
    statistics after the step come back as `bn/<buffer name>`."""
    tensors = to_device(inputs, model.ctx, channels_last=["images"])

    def loss(images: mx.array, labels: mx.array) -> mx.array:
        return cross_entropy(model(images), labels)

    step = training_step(model, loss, tensors["images"], tensors["labels"])
    loaded = tree_unflatten(list(running_stats(model).items()))

    def run():
        # MLX arrays are immutable: this rebinds ~2 arrays per BatchNorm, no copy. Every call then
        # moves the loaded statistics by exactly one step.
        model.update(loaded)
        return step.run()

    def fetch(value) -> dict[str, np.ndarray]:
        return step.fetch(value) | {f"bn/{name}": to_numpy(a) for name, a in running_stats(model).items()}

    return Step(run=run, fetch=fetch)
