"""ResNet image classifiers (ResNet-18/34/50/101/152, ResNeXt, Wide ResNet shapes).

Official implementation: torchvision `torchvision/models/resnet.py` (`ResNet`, `Bottleneck`,
`BasicBlock`); config fields are the `ResNet(...)` constructor's, with `block` naming the block class
("basic" = BasicBlock, "bottleneck" = Bottleneck, i.e. ResNet v1.5: the stride sits on the 3x3 conv).
Tensor names are torchvision's state-dict keys, BatchNorm buffers included (`running_mean`,
`running_var`, and `num_batches_tracked` as an int64 scalar).

Workloads (images are float32 NCHW with normalised-image statistics: N(0, 1) per element):
    inference  `batch` images of `image_size`², eval-mode BatchNorm (running statistics), logits
               [batch, num_classes]
    latency    the same at `latency_batch` images
    training   mean cross-entropy of the logits against integer labels in [0, num_classes),
               forward + backward with train-mode BatchNorm (normalised with the batch's own mean and
               biased variance, as torch's F.batch_norm does). The images are drawn first, so the same rng
               gives training the inference images. Besides the loss and gradients it returns every
               BatchNorm's running statistics after exactly one step from the loaded ones, as
               `bn/<batchnorm>.running_mean` / `.running_var` (`running_stat_outputs`): torch moves them
               with momentum 0.1 towards the batch mean and the *unbiased* batch variance, and a
               framework that moves them otherwise computes a different model for every later eval
               call. Every call, timed or not, computes that same first step.

Deviations from torchvision (none in the forward computation):
    - `zero_init_residual` and `replace_stride_with_dilation` are not config fields: they are fixed to
      torchvision's defaults (False, no dilation), as in every ImageNet ResNet checkpoint;
      `norm_layer` is BatchNorm2d.
    - Generated weights use torchvision's init, except the BatchNorm parameters and statistics, which
      torchvision leaves constant (weight 1, bias 0, running_mean 0, running_var 1). A running_var of 1
      makes eval-mode BN the identity (ResNet-50's eval logits then have std ≈ 25 and the cross-entropy
      is ≈ 79 instead of ln(1000) = 6.9), and constants hide a swapped, dropped or misplaced BN tensor.
      They are drawn by a documented analytic rule instead; see `init_tensor`.

Inputs: the training labels repeat (a quarter of them repeat an earlier label of the batch), so a
per-class gradient that overwrites instead of accumulating is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cache
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from arena.families.base import FamilyConfig, FamilyWorkloads, bias_uniform, cross_entropy, kaiming_uniform, norm_weight, normal, small_bias, with_repeats

# `<batchnorm>` stands for each BatchNorm's module name: one output per BatchNorm (`running_stat_outputs`).
# num_batches_tracked is left out: with momentum 0.1 torch never reads it, and MLX, Candle and Burn
# have no such counter, so they could only report a made-up number.
RUNNING_STATS = ("running_mean", "running_var")
OUTPUTS = {
    "inference": ("logits",),
    "latency": ("logits",),
    "training": ("loss", "bn/<batchnorm>.running_mean", "bn/<batchnorm>.running_var"),
}

EXPANSION = {"basic": 1, "bottleneck": 4}  # BasicBlock.expansion, Bottleneck.expansion
STEM_CHANNELS = 64  # ResNet.inplanes at the start
STAGE_PLANES = (64, 128, 256, 512)  # `planes` of layer1..layer4

Blocks = Annotated[int, Field(ge=1)]  # torchvision builds one block even for 0, so 0 is refused


class Config(FamilyConfig):
    block: Literal["basic", "bottleneck"] = Field(description="torchvision block class: BasicBlock or Bottleneck")
    layers: tuple[Blocks, Blocks, Blocks, Blocks] = Field(description="residual blocks in layer1..layer4, e.g. [3, 4, 6, 3] for ResNet-50")
    num_classes: int = Field(1000, gt=1)
    groups: int = Field(1, ge=1, description="groups of the 3x3 conv in Bottleneck (32 for ResNeXt-50 32x4d)")
    width_per_group: int = Field(64, ge=1, description="Bottleneck width per group (4 for ResNeXt 32x4d, 128 for Wide ResNet-50-2)")

    @model_validator(mode="after")
    def _basic_block_width(self) -> Config:
        if self.block == "basic" and (self.groups != 1 or self.width_per_group != 64):
            raise ValueError(
                f"block 'basic' supports only groups = 1 and width_per_group = 64 "
                f"(got groups = {self.groups}, width_per_group = {self.width_per_group}), as torchvision's BasicBlock"
            )
        return self

    @property
    def expansion(self) -> int:
        return EXPANSION[self.block]

    @property
    def num_features(self) -> int:
        """Channels entering the classifier (`fc.in_features`)."""
        return STAGE_PLANES[-1] * self.expansion

    def width(self, planes: int) -> int:
        """Bottleneck's inner width, exactly as torchvision computes it."""
        return int(planes * (self.width_per_group / 64.0)) * self.groups


class Workloads(FamilyWorkloads):
    batch: int = Field(gt=0, description="images per call (inference and training)")
    image_size: int = Field(gt=0, description="square image side in pixels (224 for ImageNet)")
    latency_batch: int = Field(1, gt=0, description="images per latency call")


def blocks(config: Config) -> Iterator[tuple[str, int, int, int, bool]]:
    """(prefix, inplanes, planes, stride, has_downsample) of every block, as ResNet._make_layer builds them."""
    inplanes = STEM_CHANNELS
    for stage, (planes, count) in enumerate(zip(STAGE_PLANES, config.layers)):
        stride = 1 if stage == 0 else 2
        for j in range(count):
            s = stride if j == 0 else 1
            yield f"layer{stage + 1}.{j}", inplanes, planes, s, s != 1 or inplanes != planes * config.expansion
            inplanes = planes * config.expansion


def check_fits(config: Config, workloads: Workloads) -> None:
    """Train-mode BatchNorm needs more than one value per channel (torch raises otherwise), and the
    last stage has the fewest: the training batch times its pixels. Any image size fits the net itself
    (a stride-2 op keeps at least one pixel, the average pool is adaptive)."""
    side = _down(_down(workloads.image_size))  # after the stem conv and the max-pool
    for _, _, _, stride, _ in blocks(config):
        side = _down(side) if stride == 2 else side
    if workloads.batch * side * side < 2:
        raise ValueError(
            f"batch ({workloads.batch}) x the last stage's {side}x{side} pixels at image_size "
            f"({workloads.image_size}) must be at least 2: train-mode BatchNorm needs more than one value per channel"
        )

def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.weight": (channels,),
        f"{prefix}.bias": (channels,),
        f"{prefix}.running_mean": (channels,),
        f"{prefix}.running_var": (channels,),
        f"{prefix}.num_batches_tracked": (),
    }


def _convs(config: Config, p: str, inplanes: int, planes: int) -> list[tuple[str, int, int, int, int]]:
    """(name, in_channels, out_channels, kernel, groups) of one block's residual-branch convs, in order."""
    out = planes * config.expansion
    if config.block == "basic":
        return [(f"{p}.conv1", inplanes, planes, 3, 1), (f"{p}.conv2", planes, planes, 3, 1)]
    w = config.width(planes)
    return [(f"{p}.conv1", inplanes, w, 1, 1), (f"{p}.conv2", w, w, 3, config.groups), (f"{p}.conv3", w, out, 1, 1)]


def parameter_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    shapes = {"conv1.weight": (STEM_CHANNELS, 3, 7, 7)} | _bn("bn1", STEM_CHANNELS)
    for p, inplanes, planes, _, downsample in blocks(config):
        for i, (name, cin, cout, k, g) in enumerate(_convs(config, p, inplanes, planes), start=1):
            shapes[f"{name}.weight"] = (cout, cin // g, k, k)
            shapes |= _bn(f"{p}.bn{i}", cout)
        if downsample:
            out = planes * config.expansion
            shapes[f"{p}.downsample.0.weight"] = (out, inplanes, 1, 1)
            shapes |= _bn(f"{p}.downsample.1", out)
    shapes["fc.weight"] = (config.num_classes, config.num_features)
    shapes["fc.bias"] = (config.num_classes,)
    return shapes


def running_stat_outputs(config: Config) -> list[str]:
    """The training workload's BatchNorm outputs, `bn/<official buffer name>`: e.g.
    `bn/layer1.0.bn1.running_mean`, `bn/layer1.0.bn1.running_var`, for every BatchNorm."""
    return [f"bn/{name}" for name in parameter_shapes(config) if name.endswith(RUNNING_STATS)]


# --- generated BatchNorm running statistics ------------------------------------------------------------
#
# Every activation is modelled as a Gaussian over its elements, described by (mean, second moment), and
# pushed through the network at init, as in "assumed density filtering":
#   conv (kaiming_normal_ fan_out, zero-mean weights): mean 0, E[y²] = (c_in/groups)·k² · 2/(c_out·k²) · E[x²]
#   BN with running_var = E[its input²], running_mean 0: output second moment 1 (what train-mode BN gives)
#   ReLU of N(μ, σ²): the rectified-Gaussian moments; a unit BN output becomes (0.40, 0.5)
#   stem max-pool (3x3): the max of 9 independent ReLU(N(0, 1)) values (neighbours are in fact
#       correlated; a rough figure that only affects the inputs of layer1.0)
#   residual add: independent terms, second moments add; then ReLU.
# Checked against torchvision's ResNet-50 in train mode on N(0, 1) images: the predicted BN input second
# moments are 0.82-1.13x the measured batch ones (e.g. layer3.5.bn1: 29.9 predicted, 32.5 measured),
# the eval-mode BN outputs have second moments 0.65-2.2, and the eval logits have std 0.8
# (0.58 in train mode) instead of 25 with running_var = 1.


def _conv_second_moment(c_in: int, c_out: int, groups: int, x2: float) -> float:
    return 2.0 * c_in / (groups * c_out) * x2


def _relu_moments(mean: float, second: float) -> tuple[float, float]:
    """(E[relu(x)], E[relu(x)²]) for x ~ N(mean, second - mean²)."""
    std = math.sqrt(max(second - mean * mean, 1e-12))
    z = mean / std
    cdf, pdf = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))), math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return mean * cdf + std * pdf, second * cdf + mean * std * pdf


@cache
def _maxpool_moments(window: int = 9) -> tuple[float, float]:
    """(E[m], E[m²]) of m = max of `window` iid ReLU(N(0, 1)): E[m^k] = ∫₀^∞ k t^(k-1) (1 - Φ(t)^window) dt."""
    t = np.linspace(0.0, 12.0, 4801)
    cdf = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in t]))
    survival = 1.0 - cdf**window
    dt = t[1] - t[0]
    integrate = lambda f: float(dt * (f.sum() - 0.5 * (f[0] + f[-1])))  # trapezoid rule
    return integrate(survival), integrate(2.0 * t * survival)


def _bn_input_second_moments(config: Config) -> dict[str, float]:
    """The predicted E[x²] of the input of every BatchNorm (by module prefix), images ~ N(0, 1)."""
    moments = {"bn1": _conv_second_moment(3, STEM_CHANNELS, 1, 1.0)}
    mean, second = _maxpool_moments()  # the residual stream entering layer1
    unit_relu = _relu_moments(0.0, 1.0)[1]  # a normalised BN output after ReLU
    for p, inplanes, planes, _, downsample in blocks(config):
        for i, (_, cin, cout, _, g) in enumerate(_convs(config, p, inplanes, planes), start=1):
            moments[f"{p}.bn{i}"] = _conv_second_moment(cin, cout, g, second if i == 1 else unit_relu)
        if downsample:
            moments[f"{p}.downsample.1"] = _conv_second_moment(inplanes, planes * config.expansion, 1, second)
            mean, second = 0.0, 1.0  # the shortcut is a normalised BN output
        mean, second = _relu_moments(mean, 1.0 + second)  # relu(bn_last(branch) + shortcut)
    return moments


def init_tensor(name: str, shape: tuple[int, ...], config: Config, rng: np.random.Generator) -> np.ndarray:
    """torchvision ResNet.__init__'s init, with BatchNorm tensors that are neither constant nor identity.

    - conv weights: kaiming_normal_(mode="fan_out", nonlinearity="relu"), std = sqrt(2 / (c_out·k²))
    - fc: nn.Linear's default init (kaiming_uniform a=√5 → U(±1/√fan_in), bias U(±1/√fan_in))
    - num_batches_tracked 0 (int64, shape ())
    - BatchNorm weight 1 + N(0, 0.1) and bias N(0, 0.02) (torchvision: 1 and 0; see
      arena/families/base.py for why nothing is constant)
    - running_var: torchvision's 1 makes eval-mode BN the identity, and ResNet-50's activations then
      grow through the 16 blocks (logits std ≈ 25). Instead every channel of a BN gets the second
      moment that its input is predicted to have at init on N(0, 1) images (see the comment above
      `_conv_second_moment`), times U(0.8, 1.2) per channel; running_mean is N(0, 0.1²·that moment).
      Eval-mode BN then normalises about as train-mode BN does, the activations stay O(1) and the eval
      loss at init is ≈ ln(num_classes), while each channel's statistics differ from its neighbours'
      and from the batch's own (so eval- and train-mode BN, or a BN reading the wrong statistics, differ).
    """
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if name.endswith(("running_var", "running_mean")):
        moment = _bn_input_second_moments(config)[name.rsplit(".", 1)[0]]
        if name.endswith("running_var"):
            return (moment * rng.uniform(0.8, 1.2, size=shape)).astype(np.float32)
        return normal(rng, shape, 0.1 * math.sqrt(moment))
    if name == "fc.weight":
        return kaiming_uniform(rng, shape)
    if name == "fc.bias":
        return bias_uniform(rng, shape, config.num_features)
    if len(shape) == 4:  # conv
        return normal(rng, shape, math.sqrt(2.0 / (shape[0] * shape[2] * shape[3])))
    return norm_weight(rng, shape) if name.endswith(".weight") else small_bias(rng, shape)  # BatchNorm


def make_inputs(config: Config, workloads: Workloads, workload: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Images ~ N(0, 1) (what mean/std normalisation gives), drawn first, so the same rng gives training
    the inference images (and latency their first `latency_batch`); labels uniform over the classes, a
    quarter of them repeating an earlier one."""
    batch = workloads.latency_batch if workload == "latency" else workloads.batch
    size = workloads.image_size
    images = rng.standard_normal((batch, 3, size, size), dtype=np.float32)  # NCHW
    if workload == "training":
        labels = with_repeats(rng, rng.integers(0, config.num_classes, (1, batch), dtype=np.int64))[0]
        return {"images": images, "labels": labels}
    return {"images": images}


def reference_loss(config: Config, workloads: Workloads, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> float:
    """Mean cross-entropy of `outputs["logits"]` [batch, num_classes] against `inputs["labels"]`.

    The training loss uses train-mode BatchNorm, so it equals this only for logits of a train-mode
    forward; the inference workload's (eval-mode) logits give the eval-mode loss.
    """
    return cross_entropy(outputs["logits"], inputs["labels"])


def _down(size: int) -> int:
    """Side after any stride-2 op of the net: 7x7/pad 3, 3x3/pad 1, 1x1/pad 0 and the 3x3/pad 1 max-pool."""
    return (size - 1) // 2 + 1


def _stem_macs(image_size: int) -> int:
    return _down(image_size) ** 2 * STEM_CHANNELS * 3 * 7 * 7


def _forward_macs(config: Config, image_size: int) -> int:
    """Multiply-adds of one image: every conv (H_out·W_out·c_out·(c_in/groups)·k²) and the fc layer.

    Left out (well under 1 %, and not matmul work): BatchNorm, ReLU, max/avg pooling, residual adds.
    In a block the 1x1 conv1 of a Bottleneck runs at the block's input size, everything else (the
    strided 3x3, conv3, the downsample) at its output size; a BasicBlock's strided conv1 at the output.
    """
    macs = _stem_macs(image_size)
    size = _down(_down(image_size))  # after the stem conv and the max-pool
    for p, inplanes, planes, stride, downsample in blocks(config):
        out_size = _down(size) if stride == 2 else size
        for i, (_, cin, cout, k, g) in enumerate(_convs(config, p, inplanes, planes), start=1):
            at = size if (config.block == "bottleneck" and i == 1) else out_size
            macs += at * at * cout * (cin // g) * k * k
        if downsample:
            macs += out_size * out_size * planes * config.expansion * inplanes
        size = out_size
    return macs + config.num_features * config.num_classes


def flops(config: Config, workloads: Workloads, workload: str) -> float:
    if workload == "latency":
        return 2.0 * workloads.latency_batch * _forward_macs(config, workloads.image_size)
    forward = 2.0 * workloads.batch * _forward_macs(config, workloads.image_size)
    if workload == "inference":
        return forward
    # Backward = 2x forward (gradients w.r.t. activations and w.r.t. weights), except that nothing needs
    # the gradient of the images, so the stem conv's data gradient is never computed (~3 % of ResNet-50).
    return 3.0 * forward - 2.0 * workloads.batch * _stem_macs(workloads.image_size)


def work_items(workloads: Workloads, workload: str) -> tuple[float, str]:
    return (workloads.latency_batch if workload == "latency" else workloads.batch), "images"
