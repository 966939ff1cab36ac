"""SmolVLA's action expert in tinygrad: lerobot's VLAFlowMatching denoising branch restated as pure
functions of the official-named weights (the JAX package's vla_expert.py, heads-first inside attention).

Follows lerobot `src/lerobot/policies/smolvla/modeling_smolvla.py` (embed_suffix, denoise_step,
sample_actions, forward) and `smolvlm_with_expert.py` (forward_attn_layer, forward_cross_attn_layer,
apply_rope, eager_attention_forward), as restated in `arena/frameworks/torch/vla_expert.py`; see
`arena/families/vla_expert.py` for the layer kinds, the inputs and the deviations shared by every
framework (the VLM enters as its per-layer K/V cache). Attention: GQA without repeating K/V, scores
scaled after QK^T, masked, softmax in float32 (lerobot's eager arithmetic).

The inference workload's Euler loop is unrolled in Python (num_steps is fixed per preset), so TinyJit
captures the whole denoise as one kernel list. The times of the steps (1, 1 + dt, ...) accumulate in
float32 on the host, as lerobot's loop does, and enter the JIT as an input buffer, so tinygrad never
folds them into constants with other rounding.

As in the JAX package, lerobot's float64 sinusoidal time embedding is evaluated exactly in float32
pieces (`time_cycle_parts`), so no float64 is needed on any device.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from tinygrad import Tensor, dtypes

from arena.families.vla_expert import EXPERT, TOP_BITS, Config, time_cycle_parts
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.frameworks.tinygrad.layers import attention, linear, llama_mlp, rms_norm, split_heads, upcast

# --- lerobot's small functions -------------------------------------------------------------------


def apply_rope(x: Tensor, positions: Tensor, max_wavelength: float) -> Tensor:
    """lerobot apply_rope: rotate-half RoPE of x [B, H, L, D] at positions [L], in float32 at least."""
    d_half = x.shape[-1] // 2
    x32 = upcast(x)
    freq_exponents = (2.0 / x.shape[-1]) * Tensor.arange(d_half, dtype=x32.dtype)
    timescale = Tensor.full((d_half,), max_wavelength, dtype=x32.dtype) ** freq_exponents
    radians = positions.cast(x32.dtype).unsqueeze(-1) / timescale  # [L, D/2], the same for every batch and head
    sin, cos = radians.sin(), radians.cos()
    x1, x2 = x32[..., :d_half], x32[..., d_half:]
    return (x1 * cos - x2 * sin).cat(x2 * cos + x1 * sin, dim=-1).cast(x.dtype)


def _top_bits(x: Tensor) -> Tensor:
    return (x.bitcast(dtypes.uint32) & TOP_BITS).bitcast(dtypes.float32)


def _turn_fraction(x: Tensor) -> Tensor:
    """x minus its nearest integer: exact in floating point."""
    return x - x.round()


@cache
def cycle_parts(config: Config) -> tuple[Tensor, ...]:
    """`time_cycle_parts` on the device, made once: a Tensor made from numpy inside a TinyJit function
    would be copied from the host again in every replayed call."""
    parts = tuple(Tensor(c, dtype=dtypes.float32) for c in time_cycle_parts(config))
    Tensor.realize(*parts)
    return parts


def time_embedding(time: Tensor, config: Config) -> Tensor:
    """lerobot create_sinusoidal_pos_embedding: [B] float32 -> [B, hidden_size] float32, sin half then
    cos; lerobot's float64 angle evaluated exactly in float32 pieces (see `time_cycle_parts`)."""
    c1, c2, c3 = cycle_parts(config)
    t = time.cast(dtypes.float32).unsqueeze(1)  # [B, 1]
    t1 = _top_bits(t)
    t2 = t - t1
    turns = _turn_fraction(c1 * t1) + (_turn_fraction(c1 * t2) + (_turn_fraction(c2 * t1) + (c2 * t2 + c3 * t)))
    radians = _turn_fraction(turns) * np.float32(2 * math.pi).item()  # [B, hidden / 2]
    return radians.sin().cat(radians.cos(), dim=1)


def suffix_mask_and_positions(prefix_len: int, chunk: int) -> tuple[Tensor, Tensor]:
    """denoise_step's mask with no prefix padding, the same for every batch row: [S, P + S] (every action
    token sees the whole prefix, the actions causally); and positions prefix_len + arange(S)."""
    prefix = Tensor.ones(chunk, prefix_len, dtype=dtypes.bool)
    causal = Tensor.ones(chunk, chunk, dtype=dtypes.bool).tril()
    return prefix.cat(causal, dim=1), Tensor.arange(chunk) + prefix_len


# --- the expert ----------------------------------------------------------------------------------


def self_attention(p: Params, name: str, c: Config, h: Tensor, prefix_k: Tensor, prefix_v: Tensor, mask: Tensor, positions: Tensor) -> Tensor:
    """forward_attn_layer: the actions' RoPE'd K/V appended to the cached prefix K/V [B, P, KVH, D]."""
    q = apply_rope(split_heads(linear(p, f"{name}.q_proj", h), c.head_dim), positions, c.rope_max_wavelength)  # [B, H, S, D]
    k = apply_rope(split_heads(linear(p, f"{name}.k_proj", h), c.head_dim), positions, c.rope_max_wavelength)
    k = prefix_k.transpose(1, 2).cat(k, dim=2)  # [B, KVH, P + S, D]
    v = prefix_v.transpose(1, 2).cat(split_heads(linear(p, f"{name}.v_proj", h), c.head_dim), dim=2)
    return attention(q, k, v, mask=mask, scale=c.head_dim**-0.5)


def cross_attention(p: Params, name: str, c: Config, h: Tensor, prefix_k: Tensor, prefix_v: Tensor, mask: Tensor, positions: Tensor) -> Tensor:
    """forward_cross_attn_layer: k_proj/v_proj of the cached prefix K/V (flattened over heads), no
    further RoPE; the query's RoPE positions start from 0; attention over the prefix only."""
    b, pl = prefix_k.shape[:2]
    q = apply_rope(split_heads(linear(p, f"{name}.q_proj", h), c.head_dim), positions, c.rope_max_wavelength)  # [B, H, S, D]
    k = split_heads(linear(p, f"{name}.k_proj", prefix_k.reshape(b, pl, -1)), c.head_dim)  # [B, KVH, P, D]
    v = split_heads(linear(p, f"{name}.v_proj", prefix_v.reshape(b, pl, -1)), c.head_dim)
    return attention(q, k, v, mask=mask[:, :pl], scale=c.head_dim**-0.5)


def expert(p: Params, c: Config, x: Tensor, prefix_keys: Tensor, prefix_values: Tensor) -> Tensor:
    """The expert's layers and final norm on the suffix x [B, S, hidden]; prefix K/V [layers, B, P, KVH, D]."""
    s = x.shape[1]
    mask, positions = suffix_mask_and_positions(prefix_keys.shape[2], s)
    cross_positions = Tensor.arange(s)  # lerobot: the cross-attention query positions "start from 0"
    for i in range(c.num_hidden_layers):
        name = f"{EXPERT}.layers.{i}"
        h = rms_norm(x, p[f"{name}.input_layernorm.weight"], c.rms_norm_eps)
        if c.is_self_attn(i):
            out = self_attention(p, f"{name}.self_attn", c, h, prefix_keys[i], prefix_values[i], mask, positions)
        else:
            out = cross_attention(p, f"{name}.self_attn", c, h, prefix_keys[i], prefix_values[i], mask, cross_positions)
        x = linear(p, f"{name}.self_attn.o_proj", out) + x
        h = rms_norm(x, p[f"{name}.post_attention_layernorm.weight"], c.rms_norm_eps)
        x = llama_mlp(p, f"{name}.mlp", h) + x
    return rms_norm(x, p[f"{EXPERT}.norm.weight"], c.rms_norm_eps)


def embed_suffix(p: Params, c: Config, noisy_actions: Tensor, time: Tensor) -> Tensor:
    action_emb = linear(p, "model.action_in_proj", noisy_actions)  # [B, S, h]
    time_emb = time_embedding(time, c).cast(action_emb.dtype).unsqueeze(1).expand(action_emb.shape)
    x = linear(p, "model.action_time_mlp_in", action_emb.cat(time_emb, dim=2))
    return linear(p, "model.action_time_mlp_out", x.silu())


def denoise_step(p: Params, c: Config, prefix_keys: Tensor, prefix_values: Tensor, x_t: Tensor, time: Tensor) -> Tensor:
    """The velocity v_t [B, S, max_action_dim] at x_t [B, S, max_action_dim], time [B] (float32)."""
    return linear(p, "model.action_out_proj", expert(p, c, embed_suffix(p, c, x_t, time), prefix_keys, prefix_values))


def euler_times(num_steps: int, batch: int) -> np.ndarray:
    """The time of each Euler step, [num_steps, batch] float32: from 1, accumulated in float32 as lerobot does."""
    dt, time, times = np.float32(-1.0 / num_steps), np.float32(1.0), []
    for _ in range(num_steps):
        times.append(time)
        time = np.float32(time + dt)
    return np.repeat(np.array(times, dtype=np.float32)[:, None], batch, axis=1)


def sample_actions(p: Params, c: Config, prefix_keys: Tensor, prefix_values: Tensor, noise: Tensor, times: Tensor) -> Tensor:
    """Euler integration from t = 1 (noise) to t = 0 over the step times `times` [num_steps, B]. The step
    is applied in float32 and cast to the cell's dtype, as torch's float32 0-d dt does."""
    num_steps = times.shape[0]
    dt, x_t = np.float32(-1.0 / num_steps).item(), noise
    for i in range(num_steps):
        v_t = denoise_step(p, c, prefix_keys, prefix_values, x_t, times[i])
        x_t = x_t + (upcast(v_t) * dt).cast(x_t.dtype)
    return x_t


def flow_matching_loss(p: Params, c: Config, prefix_keys: Tensor, prefix_values: Tensor, noise: Tensor, actions: Tensor, time: Tensor) -> Tensor:
    """VLAFlowMatching.forward: mean((v_t(x_t, t) - (noise - actions))^2), `time` float32."""
    t = time.reshape(-1, 1, 1)
    x_t = (t * noise + (1 - t) * actions).cast(noise.dtype)  # a no-op cast unless the cell is bf16/fp16
    u_t = noise - actions
    v_t = denoise_step(p, c, prefix_keys, prefix_values, x_t, time)
    return ((u_t - v_t) ** 2).mean()


# --- the arena contract --------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The whole Euler denoise of the chunk; num_steps is read once here (the loop is unrolled)."""
    t = to_device({k: v for k, v in inputs.items() if k != "num_steps"}, model.ctx)
    times = to_device({"times": euler_times(int(inputs["num_steps"]), t["noise"].shape[0])}, model.ctx, dtypes.float32)["times"]

    def actions(keys: Tensor, values: Tensor, noise: Tensor, times: Tensor) -> dict[str, Tensor]:
        return {"actions": sample_actions(model.params, model.config, keys, values, noise, times)}

    return forward_step(actions, model, t["prefix_keys"], t["prefix_values"], t["noise"], times)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1.0 (the first step of the inference loop)."""
    t = to_device(inputs, model.ctx)
    time = to_device({"time": euler_times(1, t["noise"].shape[0])[0]}, model.ctx, dtypes.float32)["time"]

    def velocity(keys: Tensor, values: Tensor, noise: Tensor, time: Tensor) -> dict[str, Tensor]:
        return {"velocity": denoise_step(model.params, model.config, keys, values, noise, time)}

    return forward_step(velocity, model, t["prefix_keys"], t["prefix_values"], t["noise"], time)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Flow-matching MSE; the times stay float32 whatever the cell's dtype, as in lerobot (see the family)."""
    t = to_device({k: v for k, v in inputs.items() if k != "time"}, model.ctx)
    time = to_device({"time": inputs["time"]}, model.ctx, dtypes.float32)["time"]

    def loss(keys: Tensor, values: Tensor, noise: Tensor, actions: Tensor, time: Tensor) -> Tensor:
        return flow_matching_loss(model.params, model.config, keys, values, noise, actions, time)

    return training_step(model, loss, t["prefix_keys"], t["prefix_values"], t["noise"], t["actions"], time)
