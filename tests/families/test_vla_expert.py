"""vla_expert (SmolVLA's action expert): layout, init, inputs, loss and FLOPs against the torch reference,
plus a second, independent implementation of one denoising step written from lerobot's equations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

torch = pytest.importorskip("torch")

from arena import weights as W  # noqa: E402
from arena.families import vla_expert as fam  # noqa: E402
from arena.families.base import rng_for  # noqa: E402
from arena.frameworks.contract import BuildContext  # noqa: E402
from arena.frameworks.torch import vla_expert as impl  # noqa: E402
from arena.frameworks.torch.common import to_float64  # noqa: E402
from arena.specs import load_specs  # noqa: E402

SPEC = load_specs()["smolvla-expert"]
TINY, FULL = SPEC.presets["tiny"], SPEC.presets["full"]
CTX = BuildContext(device="cpu", dtype="fp32", threads=2)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> dict[str, np.ndarray]:
    return W.load(W.materialize(SPEC, "tiny", tmp_path_factory.mktemp("cache")).files)


@pytest.fixture(scope="module")
def tiny_model(tiny_weights):
    return impl.build(TINY.config, tiny_weights, CTX)


def tiny_inputs(workload: str, seed: int = 0) -> dict[str, np.ndarray]:
    return fam.make_inputs(TINY.config, TINY.workloads, workload, rng_for(seed, "inputs", workload))


# --- (a) layout: names and shapes, and the parameter count recounted by hand ----------------------


@pytest.mark.parametrize("preset", ["tiny", "full"])
def test_parameter_shapes_match_module(preset):
    config = SPEC.presets[preset].config
    with torch.device("meta"):
        module = impl.SmolVLAExpertPolicy(config)
    state = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    assert state == fam.parameter_shapes(config)


def _recount(c: fam.Config) -> int:
    """The parameter count from the architecture description alone (no parameter_shapes)."""
    h, i, a = c.hidden_size, c.intermediate_size, c.max_action_dim
    q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    vlm_kv = c.num_key_value_heads * c.head_dim  # the VLM shares heads and head_dim with the expert
    mlp_norms = 3 * h * i + 2 * h
    self_layer = h * q + 2 * h * kv + q * h + mlp_norms
    cross_layer = h * q + 2 * vlm_kv * kv + q * h + mlp_norms
    n_self = len(range(0, c.num_hidden_layers, c.self_attn_every_n_layers))
    expert = n_self * self_layer + (c.num_hidden_layers - n_self) * cross_layer + h
    projections = (a * h + h) + (h * a + a) + (2 * h * h + h) + (h * h + h)
    return expert + projections


@pytest.mark.parametrize("preset", ["tiny", "full"])
def test_parameter_count(preset):
    config = SPEC.presets[preset].config
    count = sum(math.prod(s) for s in fam.parameter_shapes(config).values())
    print(f"smolvla-expert {preset}: {count:,} parameters")
    assert count == _recount(config)
    if preset == "full":
        # 8 self layers of 6,268,320 + 8 cross layers of 6,012,320 + final norm 720 + projections 1,603,472
        assert count == 99_849_312


def test_full_config_is_smolvla_base():
    c = FULL.config
    assert c.hidden_size == int(960 * 0.75)
    assert c.intermediate_size == 256 * math.ceil(4 * int(2 * c.hidden_size / 3) / 256)  # get_intermediate_size
    assert c.vlm_kv_dim == 320
    assert [c.is_self_attn(i) for i in range(4)] == [True, False, True, False]


def test_config_errors_name_both_fields():
    fields = TINY.config.model_dump()
    with pytest.raises(ValidationError, match=r"num_key_value_heads \(3\) must divide num_attention_heads \(4\)"):
        fam.Config(**(fields | {"num_key_value_heads": 3}))
    with pytest.raises(ValidationError, match=r"min_period \(5.0\) must be below max_period \(4.0\)"):
        fam.Config(**(fields | {"min_period": 5.0}))


# --- (b) strict loading and a realistic loss at init -----------------------------------------------


def test_init_scheme(tiny_weights):
    c = TINY.config
    expert = "model.vlm_with_expert.lm_expert.layers"
    norm = tiny_weights[f"{expert}.0.input_layernorm.weight"]
    assert norm.mean() == pytest.approx(1, abs=0.05) and norm.std() == pytest.approx(0.1, rel=0.4)  # 1 + N(0, 0.1)
    assert tiny_weights[f"{expert}.0.mlp.up_proj.weight"].std() == pytest.approx(0.02, rel=0.1)  # HF normal
    query_std = 0.02 * math.sqrt(c.hidden_size)  # the query's spread at HF's init: attention logits at 2
    self_q, self_k = tiny_weights[f"{expert}.0.self_attn.q_proj.weight"], tiny_weights[f"{expert}.0.self_attn.k_proj.weight"]
    assert self_q.std() == pytest.approx(0.02 * 2 / query_std, rel=0.1)  # keys: the unit-spread prefix
    assert self_k.std() == pytest.approx(0.02 / query_std, rel=0.1)  # action keys at the prefix's spread
    cross_q = tiny_weights[f"{expert}.1.self_attn.q_proj.weight"]
    assert cross_q.std() == pytest.approx(0.02 * 2 * math.sqrt(3) / query_std, rel=0.1)
    cross_k = tiny_weights[f"{expert}.1.self_attn.k_proj.weight"]  # replaced nn.Linear: kaiming uniform
    assert np.abs(cross_k).max() <= 1 / math.sqrt(c.vlm_kv_dim)
    assert cross_k.std() == pytest.approx(1 / math.sqrt(3 * c.vlm_kv_dim), rel=0.1)
    bias = tiny_weights["model.action_time_mlp_in.bias"]
    assert np.abs(bias).max() <= 1 / math.sqrt(2 * c.hidden_size)


def test_loss_at_init_is_realistic(tiny_model):
    """u = noise - actions has variance 2 per element; at init v is nearly independent of u, with
    E[v^2] about 1/3 (action_out_proj, kaiming-uniform, on unit-RMS normalised features), so the loss
    should be about 2 + 1/3 (sampling noise of 128 squared N(0, 2) elements: std about 0.25)."""
    inputs = tiny_inputs("training")
    out = impl.training(tiny_model, inputs).run()
    loss = float(out)
    v = _velocity_at_training_point(tiny_model, inputs)
    u = inputs["noise"] - inputs["actions"]
    print(f"tiny loss at init {loss:.4f}; mean u^2 {np.mean(u**2):.4f}, mean v^2 {np.mean(v**2):.4f}")
    assert 0.1 < np.mean(v**2) < 1.0
    assert 1.5 < loss < 3.5
    assert loss == pytest.approx(np.mean(u**2) + np.mean(v**2), abs=0.3)


# --- (c) the numpy loss equals the torch training loss ---------------------------------------------


def _velocity_at_training_point(model, inputs) -> np.ndarray:
    _, prefix = model.prefix(inputs)
    x_t = torch.from_numpy(fam.noisy_actions(inputs).astype(np.float32))
    with torch.no_grad():
        return model.module.model.denoise_step(*prefix, x_t, model.time(inputs)).numpy()


def test_reference_loss_matches_training(tiny_model):
    inputs = tiny_inputs("training")
    outputs = impl.training(tiny_model, inputs)
    loss = float(outputs.fetch(outputs.run())["loss"])
    v = _velocity_at_training_point(tiny_model, inputs)
    assert fam.reference_loss(TINY.config, TINY.workloads, inputs, {"velocity": v}) == pytest.approx(loss, rel=1e-6)


def test_bf16_cell_keeps_time_in_float32(tiny_weights):
    """The time embedding's periods go down to 4 ms: t must not be rounded to bf16 (error up to 2e-3)."""
    model = impl.build(TINY.config, tiny_weights, CTX.model_copy(update={"dtype": "bf16"}))
    inputs = tiny_inputs("training")
    assert model.time(inputs).dtype == torch.float32
    step = impl.training(model, inputs)
    fp32 = impl.training(impl.build(TINY.config, tiny_weights, CTX), inputs)
    assert abs(float(step.fetch(step.run())["loss"]) - float(fp32.fetch(fp32.run())["loss"])) < 0.1


def test_gradients_reach_every_parameter(tiny_model):
    step = impl.training(tiny_model, tiny_inputs("training"))
    grads = {k for k in step.fetch(step.run()) if k.startswith("grad/")}
    assert grads == {f"grad/{name}" for name in fam.parameter_shapes(TINY.config)}


# --- (d) FLOPs against torch's own counter ----------------------------------------------------------


@pytest.mark.parametrize("workload", ["inference", "latency", "training"])
def test_flops_match_flop_counter(tiny_model, workload):
    """FlopCounterMode counts matmuls (mm/addmm/bmm) at 2 per MAC, forward and backward; it does not
    count norms, RoPE, softmax, SiLU or the time embedding, and neither does flops(), so the two
    agree exactly (one Linear more or less would move the count by > 0.3 %)."""
    from torch.utils.flop_counter import FlopCounterMode

    step = getattr(impl, workload)(tiny_model, tiny_inputs(workload))
    with FlopCounterMode(display=False) as counter:
        step.run()
    assert fam.flops(TINY.config, TINY.workloads, workload) == pytest.approx(counter.get_total_flops(), rel=1e-9)


# --- (e) inputs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", ["inference", "latency", "training"])
def test_make_inputs_deterministic(workload):
    a, b, other = tiny_inputs(workload), tiny_inputs(workload), tiny_inputs(workload, seed=1)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert a[name].dtype in (np.float32, np.int64)
    assert not np.array_equal(a["noise"], other["noise"])


def test_inputs_shapes_and_sharing():
    """Given the same rng, all workloads share the prefix K/V and the noise (latency: the leading chunks)."""
    c, w = TINY.config, TINY.workloads
    inf, lat, train = (fam.make_inputs(c, w, workload, rng_for(0, "shared")) for workload in ("inference", "latency", "training"))
    assert inf["prefix_keys"].shape == (c.num_hidden_layers, w.batch, w.prefix_len, c.num_key_value_heads, c.head_dim)
    assert inf["noise"].shape == (w.batch, w.chunk_size, c.max_action_dim)
    assert int(inf["num_steps"]) == w.num_steps
    assert lat["noise"].shape[0] == w.latency_batch
    for name in ("prefix_keys", "prefix_values"):
        np.testing.assert_array_equal(inf[name], train[name])
        np.testing.assert_array_equal(lat[name], inf[name][:, : w.latency_batch])
    np.testing.assert_array_equal(lat["noise"], inf["noise"][: w.latency_batch])
    np.testing.assert_array_equal(train["noise"], inf["noise"])
    assert np.all((train["time"] > 0) & (train["time"] < 1))


def test_latency_is_the_first_euler_step(tiny_model):
    """With one Euler step (dt = -1) inference returns noise - v(noise, 1) and latency returns v(noise, 1)."""
    c, w = TINY.config, TINY.workloads
    inf = fam.make_inputs(c, w, "inference", rng_for(0, "shared")) | {"num_steps": np.array(1, dtype=np.int64)}
    step = impl.inference(tiny_model, inf)
    actions = step.fetch(step.run())["actions"]
    step = impl.latency(tiny_model, fam.make_inputs(c, w, "latency", rng_for(0, "shared")))
    velocity = step.fetch(step.run())["velocity"]
    b = velocity.shape[0]
    np.testing.assert_allclose(actions[:b], inf["noise"][:b] - velocity, rtol=1e-5, atol=1e-6)


# --- a second implementation of one denoising step, from lerobot's equations -----------------------


def _rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _silu(x):
    return x / (1 + np.exp(-x))


def _rope(x, positions, wavelength):
    """RoPE as complex rotation: (x1 + i x2) * exp(i pos / wavelength^(2k/D)) -> [Re, Im]."""
    d = x.shape[-1]
    angles = positions[:, :, None] / wavelength ** (2.0 * np.arange(d // 2) / d)  # [B, L, D/2]
    z = (x[..., : d // 2] + 1j * x[..., d // 2 :]) * np.exp(1j * angles)[:, :, None, :]
    return np.concatenate([z.real, z.imag], axis=-1)


def _attend(q, k, v, mask, groups):
    """Per head, looping: head h uses KV head h // groups. q [B, Lq, H, D], k/v [B, Lk, KVH, D]."""
    b, lq, heads, d = q.shape
    out = np.zeros_like(q)
    for h in range(heads):
        scores = np.einsum("bqd,bkd->bqk", q[:, :, h], k[:, :, h // groups]) / math.sqrt(d)
        scores = np.where(mask, scores, -np.inf)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        out[:, :, h] = probs @ v[:, :, h // groups]
    return out.reshape(b, lq, heads * d)


def _equations_velocity(c: fam.Config, w: dict[str, np.ndarray], keys, values, x_t, time) -> np.ndarray:
    """v_t of SmolVLA's expert, from the weights dict, in float64, without the torch module."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    lin = lambda x, name: x @ w[f"{name}.weight"].T + (w[f"{name}.bias"] if f"{name}.bias" in w else 0)  # noqa: E731
    b, s, _ = x_t.shape
    p = keys.shape[2]
    # embed_suffix
    half = c.hidden_size // 2
    period = c.min_period * (c.max_period / c.min_period) ** np.linspace(0, 1, half)
    angle = 2 * np.pi * time[:, None] / period
    time_emb = np.broadcast_to(np.concatenate([np.sin(angle), np.cos(angle)], -1)[:, None], (b, s, c.hidden_size))
    x = lin(np.concatenate([lin(x_t, "model.action_in_proj"), time_emb], -1), "model.action_time_mlp_in")
    x = lin(_silu(x), "model.action_time_mlp_out")
    # make_att_2d_masks over [prefix (images+language att 0, state att 1); actions (att 1)], no padding
    att = np.array([0] * (p - 1) + [1] + [1] * s)
    cum = np.cumsum(att)
    mask_2d = cum[None, :] <= cum[:, None]  # [P+S, P+S]
    mask = np.broadcast_to(mask_2d[p:], (b, s, p + s))  # the action rows
    positions = np.broadcast_to((np.cumsum(np.ones(p + s)) - 1)[p:], (b, s))
    groups = c.num_attention_heads // c.num_key_value_heads
    for i in range(c.num_hidden_layers):
        pre = f"model.vlm_with_expert.lm_expert.layers.{i}"
        hn = _rms(x, w[f"{pre}.input_layernorm.weight"], c.rms_norm_eps)
        q = lin(hn, f"{pre}.self_attn.q_proj").reshape(b, s, -1, c.head_dim)
        if c.is_self_attn(i):
            k = lin(hn, f"{pre}.self_attn.k_proj").reshape(b, s, -1, c.head_dim)
            v = lin(hn, f"{pre}.self_attn.v_proj").reshape(b, s, -1, c.head_dim)
            q, k = _rope(q, positions, c.rope_max_wavelength), _rope(k, positions, c.rope_max_wavelength)
            out = _attend(q, np.concatenate([keys[i], k], 1), np.concatenate([values[i], v], 1), mask, groups)
        else:
            k = lin(keys[i].reshape(b, p, -1), f"{pre}.self_attn.k_proj").reshape(b, p, -1, c.head_dim)
            v = lin(values[i].reshape(b, p, -1), f"{pre}.self_attn.v_proj").reshape(b, p, -1, c.head_dim)
            q = _rope(q, positions - positions.min(1, keepdims=True), c.rope_max_wavelength)
            out = _attend(q, k, v, mask[:, :, :p], groups)
        x = x + lin(out, f"{pre}.self_attn.o_proj")
        hn = _rms(x, w[f"{pre}.post_attention_layernorm.weight"], c.rms_norm_eps)
        x = x + lin(_silu(lin(hn, f"{pre}.mlp.gate_proj")) * lin(hn, f"{pre}.mlp.up_proj"), f"{pre}.mlp.down_proj")
    x = _rms(x, w["model.vlm_with_expert.lm_expert.norm.weight"], c.rms_norm_eps)
    return lin(x, "model.action_out_proj")


def test_one_step_matches_equations(tiny_weights):
    c = TINY.config
    inputs = tiny_inputs("training")
    x_t = fam.noisy_actions(inputs).astype(np.float64)
    keys, values, time64 = inputs["prefix_keys"], inputs["prefix_values"], inputs["time"].astype(np.float64)
    expected = _equations_velocity(c, tiny_weights, keys, values, x_t, time64)
    model = to_float64(impl.build(c, tiny_weights, CTX))
    _, prefix = model.prefix(inputs)
    time = model.time(inputs)
    with torch.no_grad():
        got = model.module.model.denoise_step(*prefix, torch.from_numpy(x_t), time).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10)
    # the check can fail: a wrong RoPE position for the actions (positions from 0) moves v visibly
    positions = prefix[3]
    with torch.no_grad():
        shifted = model.module.model.denoise_step(*prefix[:3], positions - positions.min(), torch.from_numpy(x_t), time)
    assert np.abs(shifted.numpy() - expected).max() > 1e-4
