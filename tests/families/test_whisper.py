"""The whisper family against the official transformers WhisperForConditionalGeneration.

Everything runs on the tiny preset (a second, asymmetric small config where encoder and decoder sizes
must not be mixed up); the full whisper-tiny config is only built on torch's "meta" device.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from transformers import WhisperConfig, WhisperForConditionalGeneration  # noqa: E402
from transformers.models.whisper.modeling_whisper import sinusoids as hf_sinusoids  # noqa: E402

import arena.frameworks.torch.common as torch_common  # noqa: E402
import arena.frameworks.torch.whisper as impl  # noqa: E402
from arena import weights as W  # noqa: E402
from arena.families import whisper as fam  # noqa: E402
from arena.families.base import qk_gain, rng_for  # noqa: E402
from arena.frameworks.contract import BuildContext  # noqa: E402
from arena.specs import load_specs  # noqa: E402

SPEC = load_specs(names=["whisper-tiny"])["whisper-tiny"]
TINY, TINY_WL = SPEC.presets["tiny"].config, SPEC.presets["tiny"].workloads
FULL, FULL_WL = SPEC.presets["full"].config, SPEC.presets["full"].workloads
CTX = BuildContext(device="cpu", dtype="fp32", threads=2)

# Encoder and decoder differ in every size, so a formula that swaps them fails.
ASYMMETRIC = fam.Config(
    vocab_size=300, num_mel_bins=16, d_model=48, encoder_layers=3, encoder_attention_heads=2, decoder_layers=1,
    decoder_attention_heads=8, encoder_ffn_dim=96, decoder_ffn_dim=160, max_source_positions=24,
    max_target_positions=20, pad_token_id=290, bos_token_id=290, eos_token_id=290, decoder_start_token_id=291,
)
ASYMMETRIC_WL = fam.Workloads(batch=1, decoder_len=5)


def generated(config: fam.Config) -> dict[str, np.ndarray]:
    """What arena.weights.generate does, for a config that is not in a spec file."""
    return {n: fam.init_tensor(n, s, config, rng_for(0, n)) for n, s in fam.parameter_shapes(config).items()}


def inputs_for(config, workloads, workload: str) -> dict[str, np.ndarray]:
    return fam.make_inputs(config, workloads, workload, rng_for(0, "inputs", workload))


def run(model, workload: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    step = getattr(impl, workload)(model, inputs)
    return step.fetch(step.run())


@pytest.fixture(scope="module")
def tiny_weights():
    return W.generate(SPEC, "tiny")


@pytest.fixture(scope="module")
def tiny_model(tiny_weights):
    return impl.build(TINY, tiny_weights, CTX)


# (a) layout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [TINY, FULL, ASYMMETRIC], ids=["tiny", "full", "asymmetric"])
def test_parameter_shapes_equal_official_state_dict(config):
    with torch.device("meta"):
        module = WhisperForConditionalGeneration(WhisperConfig(**config.model_dump()))
    official = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    ours = fam.parameter_shapes(config)
    assert official.pop("proj_out.weight") == ours[fam.EMBED_TOKENS]  # tied, loaded from embed_tokens
    assert ours == official
    frozen = [name for name, p in module.named_parameters() if not p.requires_grad]
    assert frozen == [fam.ENCODER_POSITIONS]


def test_config_checks_name_both_fields():
    fields = TINY.model_dump()
    with pytest.raises(ValueError, match=r"decoder_attention_heads \(5\) must divide d_model \(64\)"):
        fam.Config(**fields | {"decoder_attention_heads": 5})
    with pytest.raises(ValueError, match=r"pad_token_id \(512\) must be below vocab_size \(512\)"):
        fam.Config(**fields | {"pad_token_id": 512})
    with pytest.raises(ValueError, match=r"decoder_len \(32\) \+ 1 must not exceed max_target_positions \(32\)"):
        fam.make_inputs(TINY, fam.Workloads(batch=1, decoder_len=32), "latency", rng_for(0))
    with pytest.raises(ValueError):
        fam.Config(**fields | {"activation_function": "gelu_new"})


# (b) weights: the official init, strict loading, a realistic loss --------------------------------


@pytest.mark.parametrize("shape", [(32, 64), (1500, 384), (448, 1280)])
def test_encoder_positions_are_hfs_sinusoids(shape):
    # torch's float32 exp/sin/cos are not correctly rounded, so numpy cannot reproduce them bit for bit:
    # a one-ulp difference in an inverse timescale moves the argument t * inv by up to t * 2^-24, i.e.
    # <= 1.8e-4 at t = 1500 (measured: 1.5e-5 at 1500 x 384). A wrong formula is off by O(1).
    np.testing.assert_allclose(fam.sinusoids(*shape), hf_sinusoids(*shape).numpy(), rtol=0, atol=2e-4)


def test_init_follows_hf_init_weights(tiny_weights):
    torch.manual_seed(0)
    official = WhisperForConditionalGeneration(WhisperConfig(**TINY.model_dump())).state_dict()
    for name, ours in tiny_weights.items():
        theirs = official[name].numpy()
        assert ours.dtype == np.float32, name
        if name == fam.ENCODER_POSITIONS:
            np.testing.assert_allclose(ours, theirs, atol=2e-4)
        elif np.all(theirs == theirs.flat[0]):  # HF: LayerNorm ones, biases zeros; ours spread around them
            spread = 0.1 if "layer_norm" in name and name.endswith(".weight") else 0.02
            assert abs(ours.mean() - theirs.flat[0]) < spread and abs(ours.std() - spread) < 0.5 * spread, name
        else:  # N(0, init_std), q_proj / k_proj times qk_gain
            gain = qk_gain(TINY.init_std * TINY.d_model**0.5, TINY.init_std * TINY.d_model**0.5) if name.endswith(("q_proj.weight", "k_proj.weight")) else 1.0
            assert abs(ours.std() - gain * theirs.std()) < 0.1 * gain * theirs.std(), name
            assert abs(ours.std() - gain * TINY.init_std) < 0.1 * gain * TINY.init_std, name
    pad = TINY.pad_token_id
    assert not tiny_weights[fam.EMBED_TOKENS][pad].any() and not official[fam.EMBED_TOKENS][pad].any()


def test_weights_load_strictly_and_loss_at_init_is_about_ln_vocab(tiny_model, tiny_weights):
    W.check_layout(tiny_weights, fam.parameter_shapes(TINY), "test")
    with pytest.raises(RuntimeError, match="Missing key"):
        impl.build(TINY, {k: v for k, v in tiny_weights.items() if k != "model.encoder.conv1.bias"}, CTX)
    assert torch.equal(tiny_model.module.proj_out.weight, tiny_model.module.model.decoder.embed_tokens.weight)
    out = run(tiny_model, "training", inputs_for(TINY, TINY_WL, "training"))
    # The decoder's final LayerNorm output has |h|^2 = d_model exactly, and the tied output matrix is
    # N(0, init_std), so each logit is N(0, s^2) with s = init_std * sqrt(d_model) (0.16 here): the
    # expected CE is ln(vocab) + s^2/2, and the mean over n = batch*decoder_len labels scatters by ~s/sqrt(n).
    s, n = TINY.init_std * math.sqrt(TINY.d_model), TINY_WL.batch * TINY_WL.decoder_len
    assert abs(float(out["loss"]) - (math.log(TINY.vocab_size) + s * s / 2)) < 4 * s / math.sqrt(n)
    grads = {k.removeprefix("grad/") for k in out if k.startswith("grad/")}
    assert grads == set(fam.parameter_shapes(TINY)) - {fam.ENCODER_POSITIONS}  # the sinusoids are frozen
    assert all(np.linalg.norm(out[f"grad/{g}"]) > 0 for g in grads)


# (c) the loss convention ---------------------------------------------------------------------------


def test_reference_loss_equals_torch_training_loss(tiny_model):
    train_inputs = inputs_for(TINY, TINY_WL, "training")
    loss = float(run(tiny_model, "training", train_inputs)["loss"])
    tiny_model.module.eval()
    outputs = run(tiny_model, "inference", {k: v for k, v in train_inputs.items() if k != "labels"})
    assert outputs["logits"].shape == (TINY_WL.batch, TINY_WL.decoder_len, TINY.vocab_size)
    assert outputs["encoder_hidden_states"].shape == (TINY_WL.batch, TINY.max_source_positions, TINY.d_model)
    ref = fam.reference_loss(TINY, TINY_WL, train_inputs, outputs)
    assert ref == pytest.approx(loss, rel=1e-6)
    # HF's labels-only path builds decoder_input_ids = [decoder_start_token_id, labels[:, :-1]]; every row
    # starts with decoder_start_token_id, so that is exactly our decoder_input_ids: the same loss.
    features, labels = (torch.from_numpy(train_inputs[k]) for k in ("input_features", "labels"))
    with torch.no_grad():
        assert float(tiny_model.module(input_features=features, labels=labels).loss) == pytest.approx(loss, rel=1e-6)
        unshifted = tiny_model.module(input_features=features, decoder_input_ids=labels, labels=labels).loss
    assert abs(float(unshifted) - loss) > 1e-3  # a second shift (or none) scores other pairs


def test_latency_step_equals_teacher_forcing_and_repeats(tiny_model):
    tiny_model.module.eval()
    lat = inputs_for(TINY, TINY_WL, "latency")
    step = impl.latency(tiny_model, lat)
    first, second = step.fetch(step.run()), step.fetch(step.run())
    np.testing.assert_array_equal(first["logits"], second["logits"])  # the cache is cropped back each call
    assert first["logits"].shape == (TINY_WL.batch, 1, TINY.vocab_size)
    row = np.concatenate([lat["decoder_input_ids"], lat["next_decoder_input_ids"]], axis=1)
    full = run(tiny_model, "inference", {"input_features": lat["input_features"], "decoder_input_ids": row})
    np.testing.assert_allclose(first["logits"][:, 0], full["logits"][:, -1], atol=1e-5, rtol=1e-5)


def test_fp32_within_spec_tolerance_and_perturbed_weight_is_not(tiny_weights, monkeypatch):
    """fp32 vs float64 of the same module passes the spec's fp32 tolerances; scaling the decoder's final
    LayerNorm by 1.01 fails them (on outputs and loss)."""
    monkeypatch.setattr(torch_common, "to_numpy", lambda t: t.detach().cpu().numpy())  # keep float64
    tol = SPEC.tolerances_for("torch", "fp32", "tiny")[0]

    def all_outputs(weights, double=False):
        model = impl.build(TINY, weights, CTX)
        if double:
            model.module.double()
            model.dtype = torch.float64
        res = {w: run(model, w, inputs_for(TINY, TINY_WL, w)) for w in ("inference", "latency")}
        return res | {"training": run(model, "training", inputs_for(TINY, TINY_WL, "training"))}

    def agrees(a, ref) -> bool:
        for w in ("inference", "latency"):
            for k in fam.OUTPUTS[w]:
                x, y = a[w][k].astype(np.float64).ravel(), ref[w][k].astype(np.float64).ravel()
                cosine = x @ y / (np.linalg.norm(x) * np.linalg.norm(y))
                if np.any(np.abs(x - y) > tol.output.atol + tol.output.rtol * np.abs(y)) or cosine < tol.output.min_cosine:
                    return False
        la, lb = float(a["training"]["loss"]), float(ref["training"]["loss"])
        if abs(la - lb) > tol.loss.atol + tol.loss.rtol * abs(lb):
            return False
        grads = [k for k in ref["training"] if k.startswith("grad/")]
        return all(
            abs(np.linalg.norm(a["training"][g]) - np.linalg.norm(ref["training"][g])) <= tol.grad.norm_rtol * np.linalg.norm(ref["training"][g])
            for g in grads
        )

    reference = all_outputs(tiny_weights, double=True)
    assert agrees(all_outputs(tiny_weights), reference)
    perturbed = dict(tiny_weights)
    perturbed["model.decoder.layer_norm.weight"] = perturbed["model.decoder.layer_norm.weight"] * np.float32(1.01)
    assert not agrees(all_outputs(perturbed), reference)


# (d) FLOPs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["tiny", "asymmetric"])
def test_flops_match_flop_counter(case, tiny_weights):
    """FlopCounterMode counts 2 per multiply-add of mm/addmm/bmm, convolutions and SDPA, and nothing for
    LayerNorm, GELU, softmax, embeddings, elementwise ops or the loss; the analytic count leaves out the
    same, so inference and latency agree exactly. In training, torch's CPU flash-attention backward
    recomputes QK^T (counted 5 products against our 4 = 2 x forward); that recomputation is replaced by
    2 x the SDPA forward count before comparing, and the rest must again agree exactly."""
    config, workloads, weights = (TINY, TINY_WL, tiny_weights) if case == "tiny" else (ASYMMETRIC, ASYMMETRIC_WL, generated(ASYMMETRIC))
    model = impl.build(config, weights, CTX)
    for workload in ("inference", "latency", "training"):
        step = getattr(impl, workload)(model, inputs_for(config, workloads, workload))
        with FlopCounterMode(display=False) as counter:
            step.run()
        counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
        total = counter.get_total_flops()
        sdpa_backward = sum(n for op, n in counts.items() if "scaled_dot_product" in op and "backward" in op)
        sdpa_forward = sum(n for op, n in counts.items() if "scaled_dot_product" in op and "backward" not in op)
        if sdpa_backward:
            total += 2 * sdpa_forward - sdpa_backward
        assert total == fam.flops(config, workloads, workload), workload
        if workload == "training":
            model.module.eval()


# (e) inputs ----------------------------------------------------------------------------------------


def test_make_inputs_deterministic_shared_and_realistic():
    a, b = (fam.make_inputs(TINY, TINY_WL, "training", rng_for(0, "x")) for _ in range(2))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["input_features"], fam.make_inputs(TINY, TINY_WL, "training", rng_for(1, "x"))["input_features"])
    inference = fam.make_inputs(TINY, TINY_WL, "inference", rng_for(0, "x"))
    latency = fam.make_inputs(TINY, TINY_WL, "latency", rng_for(0, "x"))
    assert inference.keys() == {"input_features", "decoder_input_ids"}
    for k in inference:  # the same draw in every workload
        assert np.array_equal(inference[k], a[k]) and np.array_equal(latency[k], a[k])
    tokens = np.concatenate([a["decoder_input_ids"], a["labels"][:, -1:]], axis=1)
    assert np.array_equal(a["labels"], tokens[:, 1:])  # labels shifted exactly once
    assert np.array_equal(latency["next_decoder_input_ids"], tokens[:, -1:])
    assert (tokens[:, 0] == TINY.decoder_start_token_id).all()
    assert not (tokens[:, 1:] == TINY.pad_token_id).any() and tokens.max() < TINY.vocab_size and tokens.min() >= 0
    assert a["input_features"].dtype == np.float32 and tokens.dtype == np.int64
    assert a["input_features"].shape == (TINY_WL.batch, TINY.num_mel_bins, 2 * TINY.max_source_positions)
    assert -1.5 < a["input_features"].min() and a["input_features"].max() < 2.0  # Whisper's log-mel range


def test_work_items_and_full_preset_sizes():
    assert FULL.num_frames == 3000 and FULL_WL.decoder_len + 1 <= FULL.max_target_positions
    assert fam.work_items(FULL_WL, "latency") == (FULL_WL.batch, "tokens")
    assert fam.work_items(FULL_WL, "inference") == (FULL_WL.batch, "utterances")
    assert sum(math.prod(s) for s in fam.parameter_shapes(FULL).values()) == 37_760_640  # whisper-tiny: 37.76 M
