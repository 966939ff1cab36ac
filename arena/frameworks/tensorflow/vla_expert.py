"""SmolVLA's action expert in TensorFlow: lerobot's VLAFlowMatching denoising branch restated as pure
functions of the official-named variables.

Follows lerobot `src/lerobot/policies/smolvla/modeling_smolvla.py` (embed_suffix, denoise_step,
sample_actions, forward) and `smolvlm_with_expert.py` (forward_attn_layer, forward_cross_attn_layer,
apply_rope, eager_attention_forward), as restated in `arena/frameworks/torch/vla_expert.py`; see
`arena/families/vla_expert.py` for the layer kinds, the inputs and the deviations shared by every
framework (the VLM enters as its per-layer K/V cache). Layers are a Python loop (traced unrolled);
the inference workload's Euler loop is a `tf.while_loop` over one denoising step, so the graph does
not grow with num_steps. Attention: GQA without repeating K/V, scores scaled after QK^T, masked,
softmax in float32 (lerobot's eager arithmetic).

One deviation in how a number is computed, not in what is computed: lerobot evaluates the sinusoidal
time embedding in float64. As in the JAX port (accelerators often lack float64), `time_embedding`
evaluates the same float64 product t / period exactly in float32 pieces and reduces it to one turn
before sin/cos; the result is within 4e-7 of the float64 one.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from arena.families.vla_expert import EXPERT, TOP_BITS, Config, time_cycle_parts
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow.common import Model, Params, build_model, device, forward_step, to_device, training_step
from arena.frameworks.tensorflow.layers import attention, linear, llama_mlp, rms_norm, upcast

# --- lerobot's small functions -------------------------------------------------------------------


def apply_rope(x: tf.Tensor, positions: tf.Tensor, max_wavelength: float) -> tf.Tensor:
    """lerobot apply_rope: rotate-half RoPE of x [B, L, H, D] at positions [B, L], in float32 at least."""
    d_half = x.shape[-1] // 2
    x32 = upcast(x)
    freq_exponents = (2.0 / x.shape[-1]) * tf.range(d_half, dtype=x32.dtype)
    timescale = tf.constant(max_wavelength, x32.dtype) ** freq_exponents
    radians = (tf.cast(positions, x32.dtype)[..., None] / timescale)[..., None, :]  # [B, L, 1, D/2]
    sin, cos = tf.sin(radians), tf.cos(radians)
    x1, x2 = x32[..., :d_half], x32[..., d_half:]
    return tf.cast(tf.concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1), x.dtype)


def _top_bits(x: tf.Tensor) -> tf.Tensor:
    bits = tf.bitwise.bitwise_and(tf.bitcast(x, tf.uint32), tf.constant(TOP_BITS, tf.uint32))
    return tf.bitcast(bits, tf.float32)


def _turn_fraction(x: tf.Tensor) -> tf.Tensor:
    """x minus its nearest integer (ties to even, as jnp.round): exact in floating point."""
    return x - tf.round(x)


def time_embedding(time: tf.Tensor, config: Config) -> tf.Tensor:
    """lerobot create_sinusoidal_pos_embedding: [B] float32 -> [B, hidden_size] float32, sin half then
    cos; lerobot's float64 angle evaluated exactly in float32 pieces (see `time_cycle_parts`)."""
    c1, c2, c3 = (tf.constant(c, tf.float32) for c in time_cycle_parts(config))
    t = tf.cast(time, tf.float32)[:, None]  # [B, 1]
    t1 = _top_bits(t)
    t2 = t - t1
    turns = _turn_fraction(c1 * t1) + (_turn_fraction(c1 * t2) + (_turn_fraction(c2 * t1) + (c2 * t2 + c3 * t)))
    radians = tf.constant(2 * math.pi, tf.float32) * _turn_fraction(turns)  # [B, hidden / 2]
    return tf.concat([tf.sin(radians), tf.cos(radians)], axis=1)


def suffix_mask_and_positions(batch: int, prefix_len: int, chunk: int) -> tuple[tf.Tensor, tf.Tensor]:
    """denoise_step's masks with no prefix padding: [B, S, P + S] (every action token sees the whole
    prefix, the actions causally) and positions prefix_len + arange(S) [B, S]."""
    prefix = tf.ones((batch, chunk, prefix_len), dtype=tf.bool)
    causal = tf.broadcast_to(tf.range(chunk)[None, :] <= tf.range(chunk)[:, None], (batch, chunk, chunk))
    positions = tf.broadcast_to(prefix_len + tf.range(chunk), (batch, chunk))
    return tf.concat([prefix, causal], axis=2), positions


# --- the expert ----------------------------------------------------------------------------------


def _heads(p: Params, name: str, x: tf.Tensor, head_dim: int) -> tf.Tensor:
    """Linear `name` of x [B, L, features], split into heads: [B, L, heads, head_dim]."""
    b, length, _ = x.shape
    return tf.reshape(linear(p, name, x), [b, length, -1, head_dim])


def self_attention(
    p: Params, name: str, c: Config, h: tf.Tensor, prefix_k: tf.Tensor, prefix_v: tf.Tensor, mask: tf.Tensor, positions: tf.Tensor
) -> tf.Tensor:
    """forward_attn_layer: the actions' RoPE'd K/V appended to the cached prefix K/V [B, P, KVH, D]."""
    q = apply_rope(_heads(p, f"{name}.q_proj", h, c.head_dim), positions, c.rope_max_wavelength)  # [B, S, H, D]
    k = apply_rope(_heads(p, f"{name}.k_proj", h, c.head_dim), positions, c.rope_max_wavelength)
    k = tf.concat([prefix_k, k], axis=1)  # [B, P + S, KVH, D]
    v = tf.concat([prefix_v, _heads(p, f"{name}.v_proj", h, c.head_dim)], axis=1)
    return attention(q, k, v, mask=mask[:, None], scale=c.head_dim**-0.5)


def cross_attention(
    p: Params, name: str, c: Config, h: tf.Tensor, prefix_k: tf.Tensor, prefix_v: tf.Tensor, mask: tf.Tensor, positions: tf.Tensor
) -> tf.Tensor:
    """forward_cross_attn_layer: k_proj/v_proj of the cached prefix K/V (flattened over heads), no
    further RoPE; the query's RoPE positions start from 0; attention over the prefix only."""
    b, pl = prefix_k.shape[:2]
    q = apply_rope(_heads(p, f"{name}.q_proj", h, c.head_dim), positions, c.rope_max_wavelength)  # [B, S, H, D]
    k = _heads(p, f"{name}.k_proj", tf.reshape(prefix_k, [b, pl, -1]), c.head_dim)  # [B, P, KVH, D]
    v = _heads(p, f"{name}.v_proj", tf.reshape(prefix_v, [b, pl, -1]), c.head_dim)
    return attention(q, k, v, mask=mask[:, None, :, :pl], scale=c.head_dim**-0.5)


def expert(p: Params, c: Config, x: tf.Tensor, prefix_keys: tf.Tensor, prefix_values: tf.Tensor) -> tf.Tensor:
    """The expert's layers and final norm on the suffix x [B, S, hidden]; prefix K/V [layers, B, P, KVH, D]."""
    b, s, _ = x.shape
    mask, positions = suffix_mask_and_positions(b, prefix_keys.shape[2], s)
    cross_positions = positions - tf.reduce_min(positions, axis=1, keepdims=True)  # lerobot: "start from 0"
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


def embed_suffix(p: Params, c: Config, noisy_actions: tf.Tensor, time: tf.Tensor) -> tf.Tensor:
    action_emb = linear(p, "model.action_in_proj", noisy_actions)  # [B, S, h]
    time_emb = tf.broadcast_to(tf.cast(time_embedding(time, c), action_emb.dtype)[:, None, :], action_emb.shape)
    x = linear(p, "model.action_time_mlp_in", tf.concat([action_emb, time_emb], axis=2))
    return linear(p, "model.action_time_mlp_out", tf.nn.silu(x))


def denoise_step(p: Params, c: Config, prefix_keys: tf.Tensor, prefix_values: tf.Tensor, x_t: tf.Tensor, time: tf.Tensor) -> tf.Tensor:
    """The velocity v_t [B, S, max_action_dim] at x_t [B, S, max_action_dim], time [B] (float32)."""
    return linear(p, "model.action_out_proj", expert(p, c, embed_suffix(p, c, x_t, time), prefix_keys, prefix_values))


def sample_actions(p: Params, c: Config, num_steps: int, prefix_keys: tf.Tensor, prefix_values: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Euler integration from t = 1 (noise) to t = 0; time accumulates in float32 as in lerobot. The
    step is applied in float32 and cast to the cell's dtype, as torch's float32 0-d dt does."""
    dt = tf.constant(-1.0 / num_steps, tf.float32)

    def step(x_t: tf.Tensor, time: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        v_t = denoise_step(p, c, prefix_keys, prefix_values, x_t, tf.broadcast_to(time, x_t.shape[:1]))
        return x_t + tf.cast(dt * tf.cast(v_t, tf.float32), x_t.dtype), time + dt

    x_t, _ = tf.while_loop(lambda *_: True, step, (noise, tf.constant(1.0, tf.float32)), maximum_iterations=num_steps)
    return x_t


def flow_matching_loss(
    p: Params, c: Config, prefix_keys: tf.Tensor, prefix_values: tf.Tensor, noise: tf.Tensor, actions: tf.Tensor, time: tf.Tensor
) -> tf.Tensor:
    """VLAFlowMatching.forward: mean((v_t(x_t, t) - (noise - actions))^2), `time` float32."""
    t = time[:, None, None]
    x_t = tf.cast(t * tf.cast(noise, tf.float32) + (1 - t) * tf.cast(actions, tf.float32), noise.dtype)
    u_t = noise - actions
    v_t = denoise_step(p, c, prefix_keys, prefix_values, x_t, time)
    return tf.reduce_mean(tf.square(u_t - v_t))


# --- the arena contract --------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The whole Euler denoise of the chunk; num_steps is read once here and closed over (static)."""
    num_steps = int(inputs["num_steps"])
    t = to_device({k: v for k, v in inputs.items() if k != "num_steps"}, model.ctx)

    def actions(p: Params, keys: tf.Tensor, values: tf.Tensor, noise: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"actions": sample_actions(p, model.config, num_steps, keys, values, noise)}

    return forward_step(model, actions, t["prefix_keys"], t["prefix_values"], t["noise"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1.0 (the first step of the inference loop)."""
    t = to_device(inputs, model.ctx)
    with tf.device(device(model.ctx)):
        time = tf.ones(t["noise"].shape[:1], tf.float32)

    def velocity(p: Params, keys: tf.Tensor, values: tf.Tensor, noise: tf.Tensor, time: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"velocity": denoise_step(p, model.config, keys, values, noise, time)}

    return forward_step(model, velocity, t["prefix_keys"], t["prefix_values"], t["noise"], time)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Flow-matching MSE; the times stay float32 whatever the cell's dtype, as in lerobot (see the family)."""
    t = to_device({k: v for k, v in inputs.items() if k != "time"}, model.ctx)
    with tf.device(device(model.ctx)):
        time = tf.constant(inputs["time"], tf.float32)

    def loss(p: Params, keys: tf.Tensor, values: tf.Tensor, noise: tf.Tensor, actions: tf.Tensor, time: tf.Tensor) -> tf.Tensor:
        return flow_matching_loss(p, model.config, keys, values, noise, actions, time)

    return training_step(model, loss, t["prefix_keys"], t["prefix_values"], t["noise"], t["actions"], time)
