"""SmolVLA's action expert, written once: lerobot's VLAFlowMatching denoising branch restated as pure
functions of the official-named parameters, for any framework's layers module `nn`.

Follows lerobot `src/lerobot/policies/smolvla/modeling_smolvla.py` (embed_suffix, denoise_step,
sample_actions, forward) and `smolvlm_with_expert.py` (forward_attn_layer, forward_cross_attn_layer,
apply_rope, eager_attention_forward), as restated in `arena/frameworks/torch/vla_expert.py`; see
`arena/families/vla_expert.py` for the layer kinds, the inputs and the deviations shared by every
framework (the VLM enters as its per-layer K/V cache, [layers, B, P, KVH, D]). Attention is the
contract's: GQA without repeating K/V, scores scaled after QK^T, masked, softmax in float32 (lerobot's
eager arithmetic).

How lerobot's pieces map onto the contract, with the same arithmetic:
    - denoise_step's mask, with no prefix padding, lets every action token see the whole prefix and the
      actions up to itself: key j is visible from query i iff j <= P + i, which is `attention`'s
      `causal` alignment (last query with last key). Cross-attention sees the whole prefix: no mask.
    - lerobot's apply_rope (radians = position / max_wavelength^(2i/D), x1 cos - x2 sin, x2 cos + x1
      sin, in float32 at least) is restated as it is, not as the contract's HF-style `apply_rope`, whose
      angles (position * inv_freq) and sums round differently; `across_heads` gives its angles the
      heads axis of the framework's attention layout.

One deviation in how a number is computed, not in what is computed: lerobot evaluates the sinusoidal
time embedding in float64. Accelerators often lack float64 (and JAX runs without x64), so
`time_embedding` evaluates the same float64 product t / period exactly in float32 pieces and reduces it
to one turn before sin/cos (`arena.families.vla_expert.time_cycle_parts`); the result is within 4e-7 of
the float64 one (a plain float32 product is off by up to 1.2e-4 at the 4 ms period, which moves the
full preset's velocity by ~1.4e-4). The three parts arrive as `cycles`, on the device as the framework
keeps them.

Euler integration (`euler_step`) is one step here; the loop over the steps, with the time accumulating
in float32 as in lerobot, is the framework's (lax.fori_loop, tf.while_loop, unrolled for TinyJit).
"""

from __future__ import annotations

import math

import numpy as np

from arena.families.vla_expert import EXPERT, TOP_BITS, Config
from arena.functional.layers import Layers, Params, Tensor

TWO_PI = float(np.float32(2 * math.pi))  # lerobot's 2 pi, as the float32 the angle is scaled by
Cycles = tuple[Tensor, Tensor, Tensor]  # `time_cycle_parts` c1, c2, c3 as the framework holds them


# --- lerobot's small functions -------------------------------------------------------------------


def time_embedding(nn: Layers, time: Tensor, cycles: Cycles) -> Tensor:
    """lerobot create_sinusoidal_pos_embedding: [B] float32 -> [B, hidden_size] float32, sin half then
    cos; lerobot's float64 angle evaluated exactly in float32 pieces: t = t1 + t2 (t1 its 12 leading
    bits) against 1 / period = c1 + c2 + c3 (`cycles`, see `time_cycle_parts`)."""
    c1, c2, c3 = cycles
    t = nn.reshape(nn.cast(time, nn.FLOAT32), (-1, 1))  # [B, 1]
    t1 = nn.mask_bits(t, TOP_BITS)
    t2 = t - t1

    def turn_fraction(x: Tensor) -> Tensor:
        """x minus its nearest integer (ties to even): exact in floating point."""
        return x - nn.round(x)

    turns = turn_fraction(c1 * t1) + (turn_fraction(c1 * t2) + (turn_fraction(c2 * t1) + (c2 * t2 + c3 * t)))
    radians = TWO_PI * turn_fraction(turns)  # [B, hidden / 2]
    return nn.concat([nn.sin(radians), nn.cos(radians)], axis=1)


def rope(nn: Layers, x: Tensor, positions: Tensor, max_wavelength: float) -> Tensor:
    """lerobot apply_rope: rotate-half RoPE of x (the attention layout, `split_heads`) at positions
    [1, L] (integers, the same for every batch row), in float32 at least, cast back to x's dtype."""
    x32 = nn.upcast(x)
    d_half = x.shape[-1] // 2
    freq_exponents = (2.0 / x.shape[-1]) * nn.arange(d_half, x32.dtype)
    # a tensor base, as lerobot's: tinygrad rounds a Python-float base's power differently
    timescale = nn.full((), max_wavelength, x32.dtype) ** freq_exponents
    radians = nn.across_heads(nn.cast(positions, x32.dtype)[..., None] / timescale)  # [1, L, D/2], every head
    sin, cos = nn.sin(radians), nn.cos(radians)
    x1, x2 = x32[..., :d_half], x32[..., d_half:]
    return nn.cast(nn.concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1), x.dtype)


# --- the expert ----------------------------------------------------------------------------------


def _heads(nn: Layers, p: Params, name: str, x: Tensor, head_dim: int) -> Tensor:
    """Linear `name` of x [B, L, features], split into heads (the attention layout)."""
    return nn.split_heads(nn.linear(p, name, x), head_dim)


def self_attention(
    nn: Layers, p: Params, name: str, c: Config, h: Tensor, prefix_k: Tensor, prefix_v: Tensor, positions: Tensor
) -> Tensor:
    """forward_attn_layer: the actions' RoPE'd K/V appended to the cached prefix K/V [B, P, KVH, D]."""
    b, pl = prefix_k.shape[:2]
    d = c.head_dim
    q = rope(nn, _heads(nn, p, f"{name}.q_proj", h, d), positions, c.rope_max_wavelength)  # S positions
    k = rope(nn, _heads(nn, p, f"{name}.k_proj", h, d), positions, c.rope_max_wavelength)
    # the cache [B, P, KVH, D] in the attention layout (by way of [B, P, KVH * D]), then the actions'
    k = nn.append_positions(nn.split_heads(nn.reshape(prefix_k, (b, pl, -1)), d), k)  # P + S positions
    v = nn.append_positions(nn.split_heads(nn.reshape(prefix_v, (b, pl, -1)), d), _heads(nn, p, f"{name}.v_proj", h, d))
    return nn.attention(q, k, v, causal=True, scale=c.head_dim**-0.5)


def cross_attention(
    nn: Layers, p: Params, name: str, c: Config, h: Tensor, prefix_k: Tensor, prefix_v: Tensor, positions: Tensor
) -> Tensor:
    """forward_cross_attn_layer: k_proj/v_proj of the cached prefix K/V (flattened over heads), no
    further RoPE; the query's RoPE positions start from 0; attention over the whole prefix."""
    b, pl = prefix_k.shape[:2]
    d = c.head_dim
    q = rope(nn, _heads(nn, p, f"{name}.q_proj", h, d), positions, c.rope_max_wavelength)  # S positions
    k = _heads(nn, p, f"{name}.k_proj", nn.reshape(prefix_k, (b, pl, -1)), d)  # P positions
    v = _heads(nn, p, f"{name}.v_proj", nn.reshape(prefix_v, (b, pl, -1)), d)
    return nn.attention(q, k, v, scale=c.head_dim**-0.5)


def expert(nn: Layers, p: Params, c: Config, x: Tensor, prefix_keys: Tensor, prefix_values: Tensor) -> Tensor:
    """The expert's layers and final norm on the suffix x [B, S, hidden]; prefix K/V [layers, B, P, KVH, D]."""
    s, prefix_len = x.shape[1], prefix_keys.shape[2]
    cross_positions = nn.reshape(nn.arange(s, nn.INT32), (1, s))  # lerobot: "start from 0"
    positions = cross_positions + prefix_len  # the actions follow the prefix
    for i in range(c.num_hidden_layers):
        name = f"{EXPERT}.layers.{i}"
        h = nn.rms_norm(x, p[f"{name}.input_layernorm.weight"], c.rms_norm_eps)
        if c.is_self_attn(i):
            out = self_attention(nn, p, f"{name}.self_attn", c, h, prefix_keys[i], prefix_values[i], positions)
        else:
            out = cross_attention(nn, p, f"{name}.self_attn", c, h, prefix_keys[i], prefix_values[i], cross_positions)
        x = nn.linear(p, f"{name}.self_attn.o_proj", out) + x
        h = nn.rms_norm(x, p[f"{name}.post_attention_layernorm.weight"], c.rms_norm_eps)
        x = nn.llama_mlp(p, f"{name}.mlp", h) + x
    return nn.rms_norm(x, p[f"{EXPERT}.norm.weight"], c.rms_norm_eps)


def embed_suffix(nn: Layers, p: Params, cycles: Cycles, noisy_actions: Tensor, time: Tensor) -> Tensor:
    action_emb = nn.linear(p, "model.action_in_proj", noisy_actions)  # [B, S, h]
    time_emb = nn.broadcast_to(nn.cast(time_embedding(nn, time, cycles), action_emb.dtype)[:, None, :], action_emb.shape)
    x = nn.linear(p, "model.action_time_mlp_in", nn.concat([action_emb, time_emb], axis=2))
    return nn.linear(p, "model.action_time_mlp_out", nn.silu(x))


def denoise_step(nn: Layers, p: Params, c: Config, cycles: Cycles, prefix_keys: Tensor, prefix_values: Tensor, x_t: Tensor, time: Tensor) -> Tensor:
    """The velocity v_t [B, S, max_action_dim] at x_t [B, S, max_action_dim], time [B] (float32)."""
    suffix = embed_suffix(nn, p, cycles, x_t, time)
    return nn.linear(p, "model.action_out_proj", expert(nn, p, c, suffix, prefix_keys, prefix_values))


def euler_dt(num_steps: int) -> float:
    """sample_actions' dt = -1 / num_steps, as the float32 lerobot steps by (a float32-exact Python float)."""
    return float(np.float32(-1.0 / num_steps))


def euler_step(
    nn: Layers, p: Params, c: Config, cycles: Cycles, prefix_keys: Tensor, prefix_values: Tensor, x_t: Tensor, time: Tensor, dt: float
) -> Tensor:
    """One step of sample_actions' Euler integration at `time` (float32, 0-d or [B]): x_t + dt v_t, the
    step applied in float32 and cast to the cell's dtype, as torch's float32 0-d dt does."""
    v_t = denoise_step(nn, p, c, cycles, prefix_keys, prefix_values, x_t, nn.broadcast_to(time, x_t.shape[:1]))
    return x_t + nn.cast(nn.upcast(v_t) * dt, x_t.dtype)


def flow_matching_loss(
    nn: Layers, p: Params, c: Config, cycles: Cycles, prefix_keys: Tensor, prefix_values: Tensor, noise: Tensor, actions: Tensor, time: Tensor
) -> Tensor:
    """VLAFlowMatching.forward: mean((v_t(x_t, t) - (noise - actions))^2), `time` float32 [B]; x_t is
    mixed in float32 (time's dtype) and cast to the cell's."""
    t = nn.reshape(time, (-1, 1, 1))
    x_t = nn.cast(t * nn.upcast(noise) + (1 - t) * nn.upcast(actions), noise.dtype)
    u_t = noise - actions
    error = u_t - denoise_step(nn, p, c, cycles, prefix_keys, prefix_values, x_t, time)
    return nn.mean(error * error)
