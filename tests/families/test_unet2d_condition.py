"""The unet2d_condition family against diffusers' UNet2DConditionModel (the sd15-unet spec).

Pure checks (config validation, layout size, inputs) need numpy and pydantic only; the checks against
the official module skip, naming the reason, where torch or diffusers is missing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from arena import weights as W
from arena.families import unet2d_condition as U
from arena.families.base import rng_for
from arena.specs import load_specs

SPEC = load_specs(names=["sd15-unet"])["sd15-unet"]
TINY, FULL = SPEC.presets["tiny"], SPEC.presets["full"]
# SD 2.x's UNet differs from 1.5 only in fields this family exposes: per-block heads (true head width
# 64), a 1024-wide OpenCLIP context and Linear proj_in/proj_out (stabilityai/stable-diffusion-2-1-base).
SD2 = U.Config(**(FULL.config.model_dump() | {"attention_head_dim": (5, 10, 20, 20), "cross_attention_dim": 1024, "use_linear_projection": True}))


def _official():
    """diffusers' UNet2DConditionModel through the torch reference (skips without torch/diffusers)."""
    torch = pytest.importorskip("torch", reason="the official module needs torch")
    pytest.importorskip("diffusers", reason="the official module is diffusers' UNet2DConditionModel")
    import arena.frameworks.torch.unet2d_condition as impl

    torch.set_num_threads(2)
    return torch, impl


def _tiny_model():
    torch, impl = _official()
    from arena.frameworks.contract import BuildContext

    weights = W.generate(SPEC, "tiny")
    return torch, impl, impl.build(TINY.config, weights, BuildContext(device="cpu", dtype="fp32", threads=2))


# ---- config and layout (no torch) ---------------------------------------------------------------


def test_full_layout_is_sd15():
    """859,520,964 parameters in 686 tensors: the published SD 1.5 UNet (and 865,910,724 for SD 2.x)."""
    shapes = U.parameter_shapes(FULL.config)
    assert (len(shapes), sum(math.prod(s) for s in shapes.values())) == (686, 859_520_964)
    assert shapes["down_blocks.0.attentions.0.proj_in.weight"] == (320, 320, 1, 1)  # 1x1 conv in SD 1.x
    assert sum(math.prod(s) for s in U.parameter_shapes(SD2).values()) == 865_910_724
    assert U.parameter_shapes(SD2)["down_blocks.0.attentions.0.proj_in.weight"] == (320, 320)  # Linear in SD 2.x
    assert [FULL.config.head_dim(i) for i in range(4)] == [40, 80, 160, 160]  # attention_head_dim 8 = heads


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"block_out_channels": (32, 60)}, "block_out_channels ([32, 60]) must be positive multiples of norm_num_groups (8)"),
        ({"up_block_types": ("UpBlock2D",)}, "up_block_types (1 entries) must have one entry per block_out_channels (2)"),
        ({"attention_head_dim": 3}, "attention_head_dim (heads, 3) must divide block_out_channels[0] (32)"),
        ({"attention_head_dim": (8, 8, 8)}, "attention_head_dim (3 entries) must have one entry per block_out_channels (2)"),
        ({"down_block_types": ("CrossAttnDownBlock2D", "SimpleDownBlock2D")}, "down_block_types.1"),
        ({"act_fn": "gelu"}, "act_fn"),
        ({"num_attention_heads": 8}, "num_attention_heads"),
    ],
)
def test_config_errors_name_the_fields(change, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        U.Config(**(TINY.config.model_dump() | change))


def test_latent_size_must_halve_cleanly():
    bad = TINY.workloads.model_copy(update={"latent_size": 15})
    with pytest.raises(ValueError, match=r"latent_size \(15\) must be divisible by 2\*\*\(len\(block_out_channels\) - 1\) \(2\)"):
        U.make_inputs(TINY.config, bad, "inference", rng_for(0))


def test_init_scales():
    """Norm weights 1 + N(0, 0.1) and biases N(0, 0.02); conv and linear weights and biases inside
    +-1/sqrt(fan_in) with the uniform std; attention to_q / to_k that times qk_gain (sqrt(6))."""
    config = TINY.config
    for name, shape in U.parameter_shapes(config).items():
        array = U.init_tensor(name, shape, config, rng_for(0, name))
        assert array.dtype == np.float32 and array.shape == shape, name
        module = name.rsplit(".", 2)[-2]
        if module.startswith("norm") or module == "conv_norm_out":
            center, spread = (1.0, 0.1) if name.endswith("weight") else (0.0, 0.02)
            assert np.abs(array - center).max() <= 5 * spread and array.std() > spread / 3, name
            continue
        weight = U.parameter_shapes(config)[name.removesuffix(".bias") + ".weight"] if name.endswith("bias") else shape
        bound = 1 / math.sqrt(math.prod(weight[1:])) * (math.sqrt(6) if module in ("to_q", "to_k") else 1)
        assert np.abs(array).max() <= bound, name
        if array.size >= 1000:
            assert array.std() == pytest.approx(bound / math.sqrt(3), rel=0.05), name


# ---- inputs (no torch) --------------------------------------------------------------------------


def test_make_inputs_deterministic_and_shaped():
    config, wl = TINY.config, TINY.workloads
    for workload in ("inference", "latency", "training"):
        a = U.make_inputs(config, wl, workload, rng_for(0, "inputs", workload))
        b = U.make_inputs(config, wl, workload, rng_for(0, "inputs", workload))
        c = U.make_inputs(config, wl, workload, rng_for(1, "inputs", workload))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        assert not np.array_equal(a["sample"], c["sample"])
        batch = {"inference": wl.batch, "latency": wl.latency_batch, "training": wl.training_batch}[workload]
        assert a["sample"].shape == (batch, 4, 16, 16) and a["sample"].dtype == np.float32
        assert a["encoder_hidden_states"].shape == (batch, 8, 32) and a["encoder_hidden_states"].dtype == np.float32
        assert a["timestep"].dtype == np.int64 and np.all(a["timestep"] == wl.timestep)
    assert set(U.make_inputs(config, wl, "training", rng_for(0))) == {"sample", "timestep", "encoder_hidden_states", "noise"}


def test_training_sample_is_noised_inference_sample():
    """Same seed and batch: training's x_t = sqrt(abar) x0 + sqrt(1 - abar) noise, with x0 and the
    context equal to inference's inputs."""
    config, wl = TINY.config, TINY.workloads
    inf = U.make_inputs(config, wl, "inference", rng_for(3))
    train = U.make_inputs(config, wl, "training", rng_for(3))
    abar = U.alphas_cumprod()[wl.timestep]
    np.testing.assert_array_equal(train["encoder_hidden_states"], inf["encoder_hidden_states"])
    np.testing.assert_allclose(train["sample"], np.sqrt(abar) * inf["sample"] + np.sqrt(1 - abar) * train["noise"], rtol=1e-6, atol=1e-6)


def test_schedule_matches_diffusers():
    pytest.importorskip("torch", reason="DDPMScheduler needs torch")
    diffusers = pytest.importorskip("diffusers", reason="the schedule is diffusers' DDPMScheduler")
    scheduler = diffusers.DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    np.testing.assert_allclose(U.alphas_cumprod(), scheduler.alphas_cumprod.double().numpy(), rtol=1e-6)


# ---- against the official module ----------------------------------------------------------------


@pytest.mark.parametrize("which", ["tiny", "full", "sd2"])
def test_parameter_shapes_match_diffusers(which):
    """Names, shapes and order of diffusers' state dict, buffers included (there are none). The full
    models are built on the meta device: shapes only, no memory."""
    torch, impl = _official()
    config = {"tiny": TINY.config, "full": FULL.config, "sd2": SD2}[which]
    with torch.device("meta"):
        module = impl.make_module(config)
    official = [(name, tuple(t.shape)) for name, t in module.state_dict().items()]
    assert official == list(U.parameter_shapes(config).items())


def test_weights_load_strictly_and_loss_at_init_is_realistic():
    """At PyTorch's default init the UNet predicts noise with std ~0.3 (conv_out's weights have variance
    1/(3 fan_in) on GroupNorm-SiLU features of second moment ~0.36, so var ~0.12); MSE against unit
    noise is therefore ~1 + 0.1, not 0 (a dead net) and not >> 2 (exploding activations)."""
    torch, impl, model = _tiny_model()  # build() loads with strict=True
    config, wl = TINY.config, TINY.workloads
    inputs = U.make_inputs(config, wl, "training", rng_for(0, "inputs", "training"))
    out = impl.inference(model, inputs)
    pred = out.fetch(out.run())["sample"]
    assert 0.1 < pred.std() < 1.0
    step = impl.training(model, inputs)
    loss = float(step.fetch(step.run())["loss"])
    assert 1.0 < loss < 1.5


def test_reference_loss_matches_torch_training_loss():
    torch, impl, model = _tiny_model()
    config, wl = TINY.config, TINY.workloads
    inputs = U.make_inputs(config, wl, "training", rng_for(0, "inputs", "training"))
    forward = impl.inference(model, inputs)  # the UNet's prediction on exactly the training inputs
    expected = U.reference_loss(config, wl, inputs, forward.fetch(forward.run()))
    step = impl.training(model, inputs)
    result = step.fetch(step.run())
    assert float(result["loss"]) == pytest.approx(expected, rel=1e-6)
    grads = {k.removeprefix("grad/") for k in result if k.startswith("grad/")}
    assert grads == set(U.parameter_shapes(config))  # every tensor is a trainable parameter


@pytest.mark.parametrize("workload", ["inference", "latency"])
def test_flops_match_flop_counter(workload):
    """FlopCounterMode counts convolution, addmm/mm and SDPA (2 per MAC) and nothing elementwise, which
    is exactly what flops() counts, so the two agree to the FLOP. One missing 1x1 shortcut (64*96*256
    MACs) would be 0.8 % of the tiny forward."""
    torch, impl = _official()
    from torch.utils.flop_counter import FlopCounterMode

    config, wl = TINY.config, TINY.workloads
    module = impl.make_module(config).eval()
    inputs = {k: torch.from_numpy(v) for k, v in U.make_inputs(config, wl, workload, rng_for(0)).items()}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(inputs["sample"], inputs["timestep"], encoder_hidden_states=inputs["encoder_hidden_states"])
    assert counter.get_total_flops() == U.flops(config, wl, workload)


def test_training_flops_close_to_counted_backward():
    """Counted forward + backward vs 3 x forward: the backward skips the input gradients of conv_in and
    time_embedding.linear_1 (nothing upstream needs them), and torch's flash-attention backward
    recomputes QK^T (counted as 2.5 x the attention forward, not 2 x). On tiny these net to +2.3 %;
    counting the backward as 1 x or 3 x the forward would be off by 33 % or more."""
    torch, impl = _official()
    from torch.utils.flop_counter import FlopCounterMode

    config, wl = TINY.config, TINY.workloads
    module = impl.make_module(config).train()
    inputs = {k: torch.from_numpy(v) for k, v in U.make_inputs(config, wl, "training", rng_for(0)).items()}
    counter = FlopCounterMode(display=False)
    with counter:
        pred = module(inputs["sample"], inputs["timestep"], encoder_hidden_states=inputs["encoder_hidden_states"]).sample
        torch.nn.functional.mse_loss(pred, inputs["noise"]).backward()
    assert counter.get_total_flops() == pytest.approx(U.flops(config, wl, "training"), rel=0.05)


def test_generated_weights_roundtrip_through_safetensors(tmp_path: Path):
    files = W.materialize(SPEC, "tiny", tmp_path).files
    W.check_layout(W.load(files), U.parameter_shapes(TINY.config), "sd15-unet tiny")


def _within(tol, a: np.ndarray, ref: np.ndarray) -> bool:
    """The spec's output semantics: |a-b| <= atol + rtol*|ref| elementwise and cosine >= min_cosine."""
    a, ref = a.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    cosine = a @ ref / (np.linalg.norm(a) * np.linalg.norm(ref))
    return bool(np.all(np.abs(a - ref) <= tol.atol + tol.rtol * np.abs(ref)) and cosine >= tol.min_cosine)


def test_fp32_tolerance_holds_for_fp64_and_breaks_on_a_perturbed_weight():
    """The fp32 output and loss tolerances accept float32 against float64 (the truth) and reject the
    same model with conv_out.weight scaled by 1.01."""
    torch, impl = _official()
    config, wl, tol = TINY.config, TINY.workloads, SPEC.tolerances_for("torch", "fp32", "tiny")[0]
    module = impl.make_module(config)
    from arena.frameworks.torch.common import load_strict

    load_strict(module, W.generate(SPEC, "tiny"))
    inputs = U.make_inputs(config, wl, "training", rng_for(0, "inputs", "training"))

    def predict(dtype):
        module.to(dtype)
        t = {k: torch.from_numpy(v) for k, v in inputs.items()}
        with torch.no_grad():
            out = module(t["sample"].to(dtype), t["timestep"], encoder_hidden_states=t["encoder_hidden_states"].to(dtype)).sample
        pred = out.double().numpy()
        return pred, U.reference_loss(config, wl, inputs, {"sample": pred})

    def loss_ok(loss, ref):
        return abs(loss - ref) <= tol.loss.atol + tol.loss.rtol * abs(ref)

    truth, truth_loss = predict(torch.float64)
    ours, our_loss = predict(torch.float32)
    assert _within(tol.output, ours, truth) and loss_ok(our_loss, truth_loss)
    with torch.no_grad():
        module.conv_out.weight.mul_(1.01)
    bad, bad_loss = predict(torch.float32)
    assert not _within(tol.output, bad, ours) and not loss_ok(bad_loss, our_loss)
