"""The resnet family against torchvision: tensor layout, generated weights, loss, FLOPs, inputs.

Full-size configs are only built on torch's "meta" device (shapes, no memory, no compute).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402

import arena.frameworks.torch.resnet as impl  # noqa: E402
from arena import weights as W  # noqa: E402
from arena.families import resnet as R  # noqa: E402
from arena.families.base import rng_for  # noqa: E402
from arena.frameworks.contract import BuildContext  # noqa: E402
from arena.specs import load_specs  # noqa: E402

SPEC = load_specs()["resnet-50"]
TINY, TINY_WL = SPEC.presets["tiny"].config, SPEC.presets["tiny"].workloads
CPU = BuildContext(device="cpu", dtype="fp32", threads=2)

# torchvision's own constructors and the family config that must reproduce each of them
TORCHVISION_MODELS = {
    "resnet18": R.Config(block="basic", layers=(2, 2, 2, 2)),
    "resnet50": SPEC.presets["full"].config,
    "resnet101": R.Config(block="bottleneck", layers=(3, 4, 23, 3)),
    "resnext50_32x4d": R.Config(block="bottleneck", layers=(3, 4, 6, 3), groups=32, width_per_group=4),
    "wide_resnet50_2": R.Config(block="bottleneck", layers=(3, 4, 6, 3), width_per_group=128),
}


def torchvision_resnet(config: R.Config) -> ResNet:
    block = {"basic": BasicBlock, "bottleneck": Bottleneck}[config.block]
    return ResNet(block, list(config.layers), num_classes=config.num_classes, groups=config.groups, width_per_group=config.width_per_group)


def state_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


@pytest.fixture(scope="module")
def tiny_weights() -> dict[str, np.ndarray]:
    return W.generate(SPEC, "tiny")


@pytest.fixture
def tiny_model(tiny_weights):
    torch.manual_seed(0)
    return impl.build(TINY, tiny_weights, CPU)


def inputs_for(workload: str, seed: object = 0) -> dict[str, np.ndarray]:
    return R.make_inputs(TINY, TINY_WL, workload, rng_for(seed, "inputs", workload))


# (a) layout ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "full"])
def test_parameter_shapes_match_torchvision_state_dict(preset):
    config = SPEC.presets[preset].config
    with torch.device("meta"):
        module = torchvision_resnet(config)
    assert R.parameter_shapes(config) == state_shapes(module)


@pytest.mark.parametrize("name", sorted(TORCHVISION_MODELS))
def test_config_reproduces_torchvision_constructors(name):
    """Every published torchvision ResNet shape is a config of this family (a YAML file, no code)."""
    with torch.device("meta"):
        module = getattr(torchvision.models, name)()
    assert R.parameter_shapes(TORCHVISION_MODELS[name]) == state_shapes(module)


def test_config_rejects_what_torchvision_rejects():
    with pytest.raises(ValueError, match=r"groups = 2.*width_per_group = 64"):
        R.Config(block="basic", layers=(2, 2, 2, 2), groups=2)
    with pytest.raises(ValueError, match="layers"):
        R.Config(block="bottleneck", layers=(3, 0, 6, 3))
    with pytest.raises(ValueError, match="layers"):
        R.Config(block="bottleneck", layers=(3, 4, 6))


# (b) generated weights ------------------------------------------------------------------------------------


def test_generated_weights_load_strictly_with_buffer_dtypes(tiny_weights, tiny_model):
    W.check_layout(tiny_weights, R.parameter_shapes(TINY), "tiny")
    state = tiny_model.module.state_dict()
    for name, array in tiny_weights.items():
        expected = np.int64 if name.endswith("num_batches_tracked") else np.float32
        assert array.dtype == expected, name
        assert state[name].dtype == torch.from_numpy(array).dtype, name
    assert tiny_weights["bn1.num_batches_tracked"].shape == ()


def test_loss_at_init_is_about_ln_num_classes(tiny_model):
    """At init the classifier is close to uniform, so cross-entropy ≈ ln(10) = 2.30 in both BN modes
    (measured: 2.43 train-mode, the loss of a training step; with torchvision's running_var = 1 the
    full ResNet-50's eval logits have std ≈ 25 instead of ≈ 0.8). A batch of 2 is noisy: ± 0.6."""
    inputs = inputs_for("training")
    step = impl.training(tiny_model, inputs)
    train_loss = float(step.fetch(step.run())["loss"])
    inference = impl.inference(tiny_model, inputs)
    eval_logits = inference.fetch(inference.run())["logits"]
    eval_loss = R.reference_loss(TINY, TINY_WL, inputs, {"logits": eval_logits})
    for loss in (train_loss, eval_loss):
        assert abs(loss - math.log(TINY.num_classes)) < 0.6
    assert 0.05 < eval_logits.std() < 3.0


def test_running_var_rule_matches_train_mode_statistics(tiny_model):
    """The generated running_var of each BN is its predicted input second moment; a train-mode forward
    measures the real one. Measured on tiny: ratios 0.77-1.12 (ResNet-50: 0.82-1.13). With
    torchvision's running_var = 1 they would range from 0.09 (stem) to 30 (deep bn1)."""
    module = tiny_model.module.train()
    measured: dict[str, float] = {}
    hooks = [
        bn.register_forward_hook(lambda m, i, o, name=name: measured.__setitem__(name, float(i[0].pow(2).mean())))
        for name, bn in module.named_modules()
        if isinstance(bn, torch.nn.BatchNorm2d)
    ]
    predicted = {name: float(bn.running_var[0]) for name, bn in module.named_modules() if isinstance(bn, torch.nn.BatchNorm2d)}
    with torch.no_grad():
        module(torch.from_numpy(inputs_for("inference")["images"]))
    for h in hooks:
        h.remove()
    assert measured.keys() == predicted.keys()
    for name in predicted:
        assert 0.5 < measured[name] / predicted[name] < 2.0, (name, measured[name], predicted[name])


# (c) loss -------------------------------------------------------------------------------------------------


def test_reference_loss_equals_torch_training_loss(tiny_model):
    """reference_loss on train-mode logits (batch statistics) is the training step's loss."""
    inputs = inputs_for("training")
    step = impl.training(tiny_model, inputs)
    loss = float(step.fetch(step.run())["loss"])
    with torch.no_grad():
        logits = tiny_model.module.train()(torch.from_numpy(inputs["images"])).numpy()
    assert R.reference_loss(TINY, TINY_WL, inputs, {"logits": logits}) == pytest.approx(loss, abs=1e-5)


def test_every_training_call_computes_the_same_first_step(tiny_model):
    """Each training call puts back the loaded BN running statistics before its step, so every call
    (the first, the warm-ups, the timed ones) returns the same loss, gradients and statistics: those
    of one step from the loaded weights (num_batches_tracked 0 -> 1, however many calls ran)."""
    step = impl.training(tiny_model, inputs_for("training"))
    first = step.fetch(step.run())
    second = step.fetch(step.run())
    assert int(tiny_model.module.bn1.num_batches_tracked) == 1
    grads = {f"grad/{n}" for n, _ in tiny_model.module.named_parameters()}
    assert first.keys() == second.keys() == {"loss"} | grads | set(R.running_stat_outputs(TINY))
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_running_statistics_are_torchs_update_of_the_loaded_ones(tiny_weights, tiny_model):
    """What the training step returns for a BN is 0.9 x loaded + 0.1 x the batch statistic of its
    input, with the unbiased variance for running_var (BatchNorm2d's documented update, momentum 0.1);
    checked on the stem BN, whose input is conv1(images), recomputed here."""
    inputs = inputs_for("training")
    step = impl.training(tiny_model, inputs)
    step.run()  # a second call: the statistics must still be one step from the loaded ones
    out = step.fetch(step.run())
    with torch.no_grad():
        x = tiny_model.module.conv1(torch.from_numpy(inputs["images"])).double()  # [batch, 64, H, W]
    mean, var = x.mean(dim=(0, 2, 3)).numpy(), x.var(dim=(0, 2, 3), unbiased=True).numpy()
    np.testing.assert_allclose(out["bn/bn1.running_mean"], 0.9 * tiny_weights["bn1.running_mean"] + 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["bn/bn1.running_var"], 0.9 * tiny_weights["bn1.running_var"] + 0.1 * var, rtol=1e-5, atol=1e-6)


def test_each_step_uses_its_own_batchnorm_mode(tiny_weights, tiny_model):
    """Steps share one module: inference is eval-mode even when the training step was created last."""
    inputs = inputs_for("inference")
    inference = impl.inference(tiny_model, inputs)
    impl.training(tiny_model, inputs_for("training"))  # switches the module to train mode
    logits = inference.fetch(inference.run())["logits"]
    fresh = torchvision_resnet(TINY)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in tiny_weights.items()})
    with torch.no_grad():
        expected = fresh.eval()(torch.from_numpy(inputs["images"])).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


# (d) FLOPs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", ["inference", "latency", "training"])
def test_flops_match_torch_flop_counter(tiny_model, workload):
    """FlopCounterMode counts 2 per multiply-add of convolution (forward and backward), addmm and mm,
    and nothing for BatchNorm, ReLU, pooling or the residual adds, which `flops` leaves out too.
    Training: it counts no data gradient for the stem conv (the images need none), as `flops` does.
    So the two agree exactly (recipe: tiny preset, the torch reference's own steps)."""
    step = getattr(impl, workload)(tiny_model, inputs_for(workload))
    with FlopCounterMode(display=False) as counter:
        step.run()
    assert counter.get_total_flops() == R.flops(TINY, TINY_WL, workload)


def test_resnet50_flops_are_the_published_figure():
    """ResNet-50 at 224²: 4.09 G multiply-adds per image (torchvision's model card: 4.09 GFLOPS, in MACs)."""
    full, wl = SPEC.presets["full"].config, SPEC.presets["full"].workloads
    assert R.flops(full, wl, "latency") / 2 / wl.latency_batch == pytest.approx(4.089e9, rel=1e-3)


# (e) inputs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", ["inference", "latency", "training"])
def test_make_inputs_is_deterministic(workload):
    a, b = inputs_for(workload, seed=7), inputs_for(workload, seed=7)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["images"], inputs_for(workload, seed=8)["images"])


def test_inputs_shapes_and_sharing():
    rng_seed = 3
    inference = R.make_inputs(TINY, TINY_WL, "inference", rng_for(rng_seed))
    training = R.make_inputs(TINY, TINY_WL, "training", rng_for(rng_seed))
    latency = R.make_inputs(TINY, TINY_WL, "latency", rng_for(rng_seed))
    size = TINY_WL.image_size
    assert inference["images"].shape == (TINY_WL.batch, 3, size, size) and inference["images"].dtype == np.float32
    assert latency["images"].shape == (TINY_WL.latency_batch, 3, size, size)
    np.testing.assert_array_equal(training["images"], inference["images"])  # same rng -> same images
    labels = training["labels"]
    assert labels.dtype == np.int64 and labels.shape == (TINY_WL.batch,)
    assert labels.min() >= 0 and labels.max() < TINY.num_classes
