"""SmolVLA's action expert in JAX: lerobot's VLAFlowMatching denoising branch restated as pure functions
of the official-named parameters.

Follows lerobot `src/lerobot/policies/smolvla/modeling_smolvla.py` (embed_suffix, denoise_step,
sample_actions, forward) and `smolvlm_with_expert.py` (forward_attn_layer, forward_cross_attn_layer,
apply_rope, eager_attention_forward), as restated in `arena/frameworks/torch/vla_expert.py`; see
`arena/families/vla_expert.py` for the layer kinds, the inputs and the deviations shared by every
framework (the VLM enters as its per-layer K/V cache). Layers are a Python loop (jit unrolls them);
the inference workload's Euler loop is a `lax.fori_loop` over one compiled denoising step, so the
program size does not grow with num_steps. Attention is XLA's dot_product_attention (GQA without
repeating K/V, scores scaled after QK^T, masked, softmax in float32: lerobot's eager arithmetic).

One deviation in how a number is computed, not in what is computed: lerobot evaluates the sinusoidal
time embedding in float64. JAX runs without x64 (and accelerators often lack float64), so
`time_embedding` evaluates the same float64 product t / period exactly in float32 pieces and reduces it
to one turn before sin/cos; the result is within 4e-7 of the float64 one (a plain float32 product is
off by up to 1.2e-4 at the 4 ms period, which moves the full preset's velocity by ~1.4e-4).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from arena.families.vla_expert import EXPERT, TOP_BITS, Config, time_cycle_parts
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.jax.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.frameworks.jax.layers import attention, linear, rms_norm, llama_mlp

# --- lerobot's small functions -------------------------------------------------------------------


def apply_rope(x: jax.Array, positions: jax.Array, max_wavelength: float) -> jax.Array:
    """lerobot apply_rope: rotate-half RoPE of x [B, L, H, D] at positions [B, L], in float32 at least."""
    d_half = x.shape[-1] // 2
    compute = jnp.promote_types(x.dtype, jnp.float32)
    x32 = x.astype(compute)
    freq_exponents = (2.0 / x.shape[-1]) * jnp.arange(d_half, dtype=compute)
    timescale = jnp.asarray(max_wavelength, compute) ** freq_exponents
    radians = (positions[..., None].astype(compute) / timescale)[..., None, :]  # [B, L, 1, D/2]
    sin, cos = jnp.sin(radians), jnp.cos(radians)
    x1, x2 = x32[..., :d_half], x32[..., d_half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def _top_bits(x: jax.Array) -> jax.Array:
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32) & jnp.uint32(TOP_BITS)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


def _turn_fraction(x: jax.Array) -> jax.Array:
    """x minus its nearest integer: exact in floating point."""
    return x - jnp.round(x)


def time_embedding(time: jax.Array, config: Config) -> jax.Array:
    """lerobot create_sinusoidal_pos_embedding: [B] float32 -> [B, hidden_size] float32, sin half then
    cos; lerobot's float64 angle evaluated exactly in float32 pieces (see `time_cycle_parts`)."""
    c1, c2, c3 = time_cycle_parts(config)
    t = time.astype(jnp.float32)[:, None]  # [B, 1]
    t1 = _top_bits(t)
    t2 = t - t1
    turns = _turn_fraction(c1 * t1) + (_turn_fraction(c1 * t2) + (_turn_fraction(c2 * t1) + (c2 * t2 + c3 * t)))
    radians = jnp.float32(2 * math.pi) * _turn_fraction(turns)  # [B, hidden / 2]
    return jnp.concatenate([jnp.sin(radians), jnp.cos(radians)], axis=1)


def suffix_mask_and_positions(batch: int, prefix_len: int, chunk: int) -> tuple[jax.Array, jax.Array]:
    """denoise_step's masks with no prefix padding: [B, S, P + S] (every action token sees the whole
    prefix, the actions causally) and positions prefix_len + arange(S) [B, S]."""
    prefix = jnp.ones((batch, chunk, prefix_len), dtype=bool)
    causal = jnp.broadcast_to(jnp.tril(jnp.ones((chunk, chunk), dtype=bool)), (batch, chunk, chunk))
    positions = jnp.broadcast_to(prefix_len + jnp.arange(chunk), (batch, chunk))
    return jnp.concatenate([prefix, causal], axis=2), positions


# --- the expert ----------------------------------------------------------------------------------


def _heads(p: Params, name: str, x: jax.Array, head_dim: int) -> jax.Array:
    """Linear `name` of x [B, L, features], split into heads: [B, L, heads, head_dim]."""
    b, length, _ = x.shape
    return linear(p, name, x).reshape(b, length, -1, head_dim)


def self_attention(
    p: Params, name: str, c: Config, h: jax.Array, prefix_k: jax.Array, prefix_v: jax.Array, mask: jax.Array, positions: jax.Array
) -> jax.Array:
    """forward_attn_layer: the actions' RoPE'd K/V appended to the cached prefix K/V [B, P, KVH, D]."""
    q = apply_rope(_heads(p, f"{name}.q_proj", h, c.head_dim), positions, c.rope_max_wavelength)  # [B, S, H, D]
    k = apply_rope(_heads(p, f"{name}.k_proj", h, c.head_dim), positions, c.rope_max_wavelength)
    k = jnp.concatenate([prefix_k, k], axis=1)  # [B, P + S, KVH, D]
    v = jnp.concatenate([prefix_v, _heads(p, f"{name}.v_proj", h, c.head_dim)], axis=1)
    return attention(q, k, v, mask=mask[:, None], scale=c.head_dim**-0.5)


def cross_attention(
    p: Params, name: str, c: Config, h: jax.Array, prefix_k: jax.Array, prefix_v: jax.Array, mask: jax.Array, positions: jax.Array
) -> jax.Array:
    """forward_cross_attn_layer: k_proj/v_proj of the cached prefix K/V (flattened over heads), no
    further RoPE; the query's RoPE positions start from 0; attention over the prefix only."""
    b, pl = prefix_k.shape[:2]
    q = apply_rope(_heads(p, f"{name}.q_proj", h, c.head_dim), positions, c.rope_max_wavelength)  # [B, S, H, D]
    k = _heads(p, f"{name}.k_proj", prefix_k.reshape(b, pl, -1), c.head_dim)  # [B, P, KVH, D]
    v = _heads(p, f"{name}.v_proj", prefix_v.reshape(b, pl, -1), c.head_dim)
    return attention(q, k, v, mask=mask[:, None, :, :pl], scale=c.head_dim**-0.5)


def expert(p: Params, c: Config, x: jax.Array, prefix_keys: jax.Array, prefix_values: jax.Array) -> jax.Array:
    """The expert's layers and final norm on the suffix x [B, S, hidden]; prefix K/V [layers, B, P, KVH, D]."""
    b, s, _ = x.shape
    mask, positions = suffix_mask_and_positions(b, prefix_keys.shape[2], s)
    cross_positions = positions - positions.min(axis=1, keepdims=True)  # lerobot: "start from 0"
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


def embed_suffix(p: Params, c: Config, noisy_actions: jax.Array, time: jax.Array) -> jax.Array:
    action_emb = linear(p, "model.action_in_proj", noisy_actions)  # [B, S, h]
    time_emb = jnp.broadcast_to(time_embedding(time, c).astype(action_emb.dtype)[:, None, :], action_emb.shape)
    x = linear(p, "model.action_time_mlp_in", jnp.concatenate([action_emb, time_emb], axis=2))
    return linear(p, "model.action_time_mlp_out", jax.nn.silu(x))


def denoise_step(p: Params, c: Config, prefix_keys: jax.Array, prefix_values: jax.Array, x_t: jax.Array, time: jax.Array) -> jax.Array:
    """The velocity v_t [B, S, max_action_dim] at x_t [B, S, max_action_dim], time [B] (float32)."""
    return linear(p, "model.action_out_proj", expert(p, c, embed_suffix(p, c, x_t, time), prefix_keys, prefix_values))


def sample_actions(p: Params, c: Config, num_steps: int, prefix_keys: jax.Array, prefix_values: jax.Array, noise: jax.Array) -> jax.Array:
    """Euler integration from t = 1 (noise) to t = 0; time accumulates in float32 as in lerobot. The
    step is applied in float32 and cast to the cell's dtype, as torch's float32 0-d dt does."""
    dt = jnp.float32(-1.0 / num_steps)

    def step(_: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        x_t, time = carry
        v_t = denoise_step(p, c, prefix_keys, prefix_values, x_t, jnp.broadcast_to(time, x_t.shape[:1]))
        return x_t + (dt * v_t).astype(x_t.dtype), time + dt

    x_t, _ = jax.lax.fori_loop(0, num_steps, step, (noise, jnp.float32(1.0)))
    return x_t


def flow_matching_loss(
    p: Params, c: Config, prefix_keys: jax.Array, prefix_values: jax.Array, noise: jax.Array, actions: jax.Array, time: jax.Array
) -> jax.Array:
    """VLAFlowMatching.forward: mean((v_t(x_t, t) - (noise - actions))^2), `time` float32."""
    t = time[:, None, None]
    x_t = (t * noise + (1 - t) * actions).astype(noise.dtype)  # a no-op cast unless the cell is bf16/fp16
    u_t = noise - actions
    v_t = denoise_step(p, c, prefix_keys, prefix_values, x_t, time)
    return jnp.mean(jnp.square(u_t - v_t))


# --- the arena contract --------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The whole Euler denoise of the chunk; num_steps is read once here and closed over (static)."""
    num_steps = int(inputs["num_steps"])
    t = to_device({k: v for k, v in inputs.items() if k != "num_steps"}, model.dtype)

    def actions(p: Params, keys: jax.Array, values: jax.Array, noise: jax.Array) -> dict[str, jax.Array]:
        return {"actions": sample_actions(p, model.config, num_steps, keys, values, noise)}

    return forward_step(actions, model.params, t["prefix_keys"], t["prefix_values"], t["noise"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1.0 (the first step of the inference loop)."""
    t = to_device(inputs, model.dtype)
    time = jnp.ones(t["noise"].shape[:1], jnp.float32)

    def velocity(p: Params, keys: jax.Array, values: jax.Array, noise: jax.Array, time: jax.Array) -> dict[str, jax.Array]:
        return {"velocity": denoise_step(p, model.config, keys, values, noise, time)}

    return forward_step(velocity, model.params, t["prefix_keys"], t["prefix_values"], t["noise"], time)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Flow-matching MSE; the times stay float32 whatever the cell's dtype, as in lerobot (see the family)."""
    t = to_device({k: v for k, v in inputs.items() if k != "time"}, model.dtype)
    time = jnp.asarray(inputs["time"], jnp.float32)

    def loss(p: Params, keys: jax.Array, values: jax.Array, noise: jax.Array, actions: jax.Array, time: jax.Array) -> jax.Array:
        return flow_matching_loss(p, model.config, keys, values, noise, actions, time)

    return training_step(model, loss, t["prefix_keys"], t["prefix_values"], t["noise"], t["actions"], time)
