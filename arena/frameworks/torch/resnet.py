"""ResNet in PyTorch: torchvision's ResNet, built from the spec's config, loaded strictly.

Official implementation: torchvision `torchvision/models/resnet.py` (ResNet with BasicBlock or
Bottleneck). No deviations: this *is* the official module, with torchvision's defaults for everything
the config does not name (zero_init_residual False, no dilation, BatchNorm2d with eps 1e-5 and
momentum 0.1).

All three workloads share one module, and BatchNorm behaves differently in them, so every step sets
the module's mode itself (eval for inference/latency, train for training): whatever order the steps
are created or run in, each one computes its own workload. A training call updates the BatchNorm
running statistics, as torch training does (momentum 0.1 towards the batch mean and unbiased
variance, num_batches_tracked + 1), and returns them: each call first puts back the loaded ones, so
the first call and every timed one compute the same single step, the one compared. Train mode
normalises with batch statistics, so loss and gradients never depend on them; an inference call made
after training sees the statistics of that one step.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from arena.families.resnet import RUNNING_STATS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.torch import common
from arena.frameworks.torch.common import forward_step, load_strict, to_device, torch_dtype, training_step

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class Model(common.Model):
    def set_training(self, training: bool) -> None:
        """BatchNorm mode for the next call; a flag check when it is already right."""
        if self.module.training != training:
            self.module.train(training)


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    module = ResNet(
        BLOCKS[config.block],
        list(config.layers),
        num_classes=config.num_classes,
        groups=config.groups,
        width_per_group=config.width_per_group,
    )
    load_strict(module, weights)
    module.to(torch.device(ctx.device), torch_dtype(ctx)).eval()  # .to(dtype) leaves num_batches_tracked int64
    return Model(module, ctx)


def _classify(model: Model, images: torch.Tensor) -> dict[str, torch.Tensor]:
    model.set_training(False)
    return {"logits": model.forward(images)}  # [batch, num_classes]


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    images = to_device(inputs, model.device, model.dtype)["images"]  # [batch, 3, H, W]
    model.set_training(False)
    return forward_step(lambda: _classify(model, images), model.device, model.ctx)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The inference computation at `latency_batch` images (ResNet has no cache to fill)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Cross-entropy on integer labels with train-mode BatchNorm (batch statistics); the BatchNorm
    running statistics after the step come back as `bn/<buffer name>`."""
    tensors = to_device(inputs, model.device, model.dtype)
    images, labels = tensors["images"], tensors["labels"]  # [batch, 3, H, W], [batch] int64
    model.set_training(True)
    buffers = dict(model.module.named_buffers())  # every BatchNorm's running_mean, running_var, num_batches_tracked
    loaded = {name: b.clone() for name, b in buffers.items()}

    def loss() -> torch.Tensor:
        # A copy of ~3 small buffers per BatchNorm (ResNet-50: 159, well under a millisecond): every
        # call then moves the loaded statistics by exactly one step.
        for name, b in buffers.items():
            b.copy_(loaded[name])
        model.set_training(True)
        return F.cross_entropy(model.forward(images).float(), labels)

    def running_stats() -> dict[str, torch.Tensor]:
        return {f"bn/{name}": b for name, b in buffers.items() if name.endswith(RUNNING_STATS)}

    return training_step(model.module, loss, model.device, model.ctx, outputs=running_stats)
