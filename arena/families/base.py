"""What every family module provides, and the small helpers they share.

Every `arena/families/<family>.py` exposes the same surface, so two families read side by side. It is
declared as data in `FAMILY` below and checked by `check_family` (tests/test_contracts.py runs it on
every family), so a missing or misspelt name fails the suite instead of switching a check off:

    Config       pydantic model of the architecture (official config field names; extra fields forbidden)
    Workloads    pydantic model of the input sizes that define inference / latency / training
    check_fits(config, workloads) -> None
                 cross-checks between the two (raise ValueError); the spec loader calls it per preset, so
                 a spec whose sizes do not fit its architecture is an error naming the file and preset
    parameter_shapes(config) -> dict[str, tuple[int, ...]]
                 every tensor of the official state dict (names exactly as the official
                 implementation writes them, buffers such as BatchNorm running stats included)
    init_tensor(name, shape, config, rng) -> np.ndarray (float32)
                 the family's usual init for one tensor, so activations and losses sit in realistic
                 ranges (an LM at init scores about ln(vocab))
    make_inputs(config, workloads, workload, rng) -> dict[str, np.ndarray]
                 the inputs of one workload; every framework receives exactly these arrays
    reference_loss(config, workloads, inputs, outputs) -> float
                 the loss recomputed in numpy from the training workload's outputs (a check on the
                 reference, and the documentation of the label convention)
    flops(config, workloads, workload) -> float
                 analytic FLOPs (2 per multiply-add) of one call of the workload
    work_items(workloads, workload) -> tuple[float, str]
                 what one call processes, for throughput: (count, unit) e.g. (128, "tokens")
    OUTPUTS: dict[str, tuple[str, ...]]
                 the output names each workload returns ("training" returns "loss" plus gradients);
                 a `<...>` part stands for one output per module of that kind (resnet's
                 `bn/<batchnorm>.running_mean`), which the family lists with a function of its own

make_inputs is called with an rng seeded the same way for all three workloads of a preset, so inputs
drawn first (the prompt, the image batch) are shared by inference and training.
"""

from __future__ import annotations

import hashlib
import math

from types import ModuleType

import numpy as np
from pydantic import BaseModel, ConfigDict

from arena.hooks import function, problems, require, subclass, value

WORKLOADS = ("inference", "latency", "training")


class FamilyConfig(BaseModel):
    """Base of every family's architecture config: frozen, unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FamilyWorkloads(BaseModel):
    """Base of every family's workload sizes: frozen, unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


FAMILY = (
    subclass("Config", FamilyConfig),
    subclass("Workloads", FamilyWorkloads),
    function("check_fits", ("config", "workloads")),
    function("parameter_shapes", ("config",)),
    function("init_tensor", ("name", "shape", "config", "rng")),
    function("make_inputs", ("config", "workloads", "workload", "rng")),
    function("reference_loss", ("config", "workloads", "inputs", "outputs")),
    function("flops", ("config", "workloads", "workload")),
    function("work_items", ("workloads", "workload")),
    value("OUTPUTS", dict),
)


def check_family(module: ModuleType) -> None:
    """Raise a ContractError naming every way a family module differs from `FAMILY`."""
    found = problems(module, FAMILY)
    outputs = getattr(module, "OUTPUTS", None)
    if isinstance(outputs, dict) and set(outputs) != set(WORKLOADS):
        found.append(f"OUTPUTS: has {tuple(outputs)}; the contract says one entry per workload, {WORKLOADS}")
    require(module, found)


def require_divides(divisor_name: str, divisor: int, name: str, value: int) -> None:
    """A config cross-check whose message names both fields and values."""
    if value % divisor:
        raise ValueError(f"{divisor_name} ({divisor}) must divide {name} ({value})")


def seed_for(*parts: object) -> int:
    """A 64-bit seed from names, stable across processes and Python versions (unlike hash())."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def rng_for(*parts: object) -> np.random.Generator:
    return np.random.default_rng(seed_for(*parts))


def normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


def kaiming_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """PyTorch's default Linear/Conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform, a=sqrt(5))."""
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def bias_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """PyTorch's default bias init for a layer with this fan-in."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


# ---- what makes every parameter matter ----------------------------------------------------------------
# The usual inits set whole parameter classes to constants (norm weights 1, biases and BN statistics 0/1).
# A model built from such weights cannot tell two same-shaped constant tensors apart, nor a dropped bias
# from a present one, so a conversion that swaps or drops them would pass the output check. Every family
# therefore draws these classes around their usual value, with a spread small enough to keep activations
# and losses where the usual init puts them.

# The version of the generation rules (every family's init_tensor and make_inputs). It is part of every
# spec hash, so results computed from weights or inputs of an older rule are stale and re-run.
GENERATION_RULES = 2

NORM_WEIGHT_SPREAD = 0.1  # RMS/Layer/Group/BatchNorm weights: 1 + N(0, 0.1)
NORM_BIAS_STD = 0.02  # their biases, and biases an init would zero: N(0, 0.02)
ATTENTION_LOGIT_STD = 2.0  # attention logits at init are scaled to about this spread (see qk_gain)


def norm_weight(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (1.0 + normal(rng, shape, NORM_WEIGHT_SPREAD)).astype(np.float32)


def small_bias(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return normal(rng, shape, NORM_BIAS_STD)


def qk_gain(query_std: float, key_std: float) -> float:
    """The factor for both the query and the key projection weights that gives attention logits (scaled
    by 1/sqrt(head_dim) as every family does) a spread of about ATTENTION_LOGIT_STD.

    `query_std` and `key_std` are the predicted per-element spreads of q and k at init. Their scaled dot
    product has spread query_std * key_std, which at the usual inits is 0.03 to 0.3: attention is then
    close to uniform, and a wrong scale, mask, RoPE or a swapped q/k barely moves the outputs. Trained
    models attend far more sharply; this restores that, so attention bugs show.
    """
    return float(np.sqrt(query_gain(query_std, key_std)))


def query_gain(query_std: float, key_std: float) -> float:
    """The factor for the query projection alone that gives the logits that spread, where the keys are
    given (a cached prefix) and only the query side is generated."""
    return ATTENTION_LOGIT_STD / (query_std * key_std)


def with_repeats(rng: np.random.Generator, ids: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    """A copy of `ids` [batch, length] in which about `fraction` of the positions (from the second on)
    repeat an earlier token of the same row, so that an embedding gradient that overwrites instead of
    accumulating is wrong (uniform draws over a large vocabulary almost never repeat)."""
    ids = ids.copy()
    batch, length = ids.shape
    if length < 2:
        return ids
    for row in range(batch):
        repeated = np.sort(rng.choice(np.arange(1, length), max(1, round(fraction * (length - 1))), replace=False))
        for position in repeated:
            ids[row, position] = ids[row, rng.integers(0, position)]
    return ids


def cross_entropy(logits: np.ndarray, labels: np.ndarray, ignore_index: int = -100) -> float:
    """Mean cross-entropy over positions whose label != ignore_index, computed in float64."""
    logits = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    labels = labels.reshape(-1)
    keep = labels != ignore_index
    logits, labels = logits[keep], labels[keep]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())
