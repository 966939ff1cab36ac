"""SmolVLA's action expert in MLX: lerobot's VLAFlowMatching denoising branch as an `mlx.nn` module
tree with the official names (`model.vlm_with_expert.lm_expert.layers.{i}...`, `model.action_*`).

Follows lerobot `src/lerobot/policies/smolvla/modeling_smolvla.py` (embed_suffix, denoise_step,
sample_actions, forward) and `smolvlm_with_expert.py` (forward_attn_layer, forward_cross_attn_layer,
apply_rope, eager_attention_forward), as restated in `arena/frameworks/torch/vla_expert.py`; see
`arena/families/vla_expert.py` for the layer kinds, the inputs and the deviations shared by every
framework (the VLM enters as its per-layer K/V cache). Attention is
`mx.fast.scaled_dot_product_attention` with a boolean mask (GQA without repeating K/V, softmax in
float32); it scales q before QK^T where lerobot scales the scores: the same numbers when head_dim**-0.5
is a power of two (head_dim 16 or 64, as in both presets), one rounding apart otherwise. The Euler
loop of the inference workload is a Python loop, which mx.compile unrolls.

One deviation in how a number is computed, not in what is computed: lerobot evaluates the sinusoidal
time embedding in float64, which MLX has on the CPU only. `time_embedding` evaluates the same float64
product t / period exactly in float32 pieces and reduces it to one turn before sin/cos; the result is
within 4e-7 of the float64 one (a plain float32 product is off by up to 1.2e-4 at the 4 ms period,
which moves the full preset's velocity by ~1.4e-4).
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from arena.families.vla_expert import TOP_BITS, Config, time_cycle_parts
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.mlx.common import forward_step, load, to_device, training_step
from arena.frameworks.mlx.layers import LlamaMLP, attention

# --- lerobot's small functions -------------------------------------------------------------------


def apply_rope(x: mx.array, positions: mx.array, max_wavelength: float) -> mx.array:
    """lerobot apply_rope: rotate-half RoPE of x [B, L, H, D] at positions [B, L], in float32."""
    d_half = x.shape[-1] // 2
    x32 = x.astype(mx.float32)
    freq_exponents = (2.0 / x.shape[-1]) * mx.arange(d_half, dtype=mx.float32)
    timescale = mx.power(mx.array(max_wavelength, mx.float32), freq_exponents)
    radians = (positions[..., None].astype(mx.float32) / timescale)[..., None, :]  # [B, L, 1, D/2]
    sin, cos = mx.sin(radians), mx.cos(radians)
    x1, x2 = x32[..., :d_half], x32[..., d_half:]
    return mx.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def _top_bits(x: mx.array) -> mx.array:
    return mx.view(mx.view(x, mx.uint32) & TOP_BITS, mx.float32)


def _turn_fraction(x: mx.array) -> mx.array:
    """x minus its nearest integer: exact in floating point."""
    return x - mx.round(x)


def time_embedding(time: mx.array, config: Config) -> mx.array:
    """lerobot create_sinusoidal_pos_embedding: [B] float32 -> [B, hidden_size] float32, sin half then
    cos; lerobot's float64 angle evaluated exactly in float32 pieces (see `time_cycle_parts`)."""
    c1, c2, c3 = (mx.array(c) for c in time_cycle_parts(config))
    t = time.astype(mx.float32)[:, None]  # [B, 1]
    t1 = _top_bits(t)
    t2 = t - t1
    turns = _turn_fraction(c1 * t1) + (_turn_fraction(c1 * t2) + (_turn_fraction(c2 * t1) + (c2 * t2 + c3 * t)))
    radians = mx.array(2 * math.pi, mx.float32) * _turn_fraction(turns)  # [B, hidden / 2]
    return mx.concatenate([mx.sin(radians), mx.cos(radians)], axis=1)


def suffix_mask_and_positions(batch: int, prefix_len: int, chunk: int) -> tuple[mx.array, mx.array]:
    """denoise_step's masks with no prefix padding: [B, S, P + S] (every action token sees the whole
    prefix, the actions causally) and positions prefix_len + arange(S) [B, S]."""
    prefix = mx.ones((batch, chunk, prefix_len), dtype=mx.bool_)
    causal = mx.broadcast_to(mx.tril(mx.ones((chunk, chunk), dtype=mx.bool_)), (batch, chunk, chunk))
    positions = mx.broadcast_to(prefix_len + mx.arange(chunk), (batch, chunk))
    return mx.concatenate([prefix, causal], axis=2), positions


def _heads_first(x: mx.array) -> mx.array:
    """[B, L, heads, D] -> [B, heads, L, D], the layout mx.fast attention takes."""
    return x.transpose(0, 2, 1, 3)


# --- the expert ----------------------------------------------------------------------------------


class Attention(nn.Module):
    """LlamaAttention's projections; k_proj/v_proj read `kv_in` features (hidden_size for a
    self-attention layer, the VLM's K/V width for a cross-attention one, as lerobot swaps them)."""

    def __init__(self, c: Config, kv_in: int):
        super().__init__()
        self.head_dim, self.max_wavelength = c.head_dim, c.rope_max_wavelength
        q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, q, bias=False)
        self.k_proj = nn.Linear(kv_in, kv, bias=False)
        self.v_proj = nn.Linear(kv_in, kv, bias=False)
        self.o_proj = nn.Linear(q, c.hidden_size, bias=False)

    def split(self, x: mx.array) -> mx.array:
        """[B, L, heads * D] -> [B, L, heads, D]."""
        b, length, _ = x.shape
        return x.reshape(b, length, -1, self.head_dim)


class SelfAttention(Attention):
    """forward_attn_layer: the actions' RoPE'd K/V appended to the cached prefix K/V [B, P, KVH, D]."""

    def __call__(self, h: mx.array, prefix_k: mx.array, prefix_v: mx.array, mask: mx.array, positions: mx.array) -> mx.array:
        q = apply_rope(self.split(self.q_proj(h)), positions, self.max_wavelength)  # [B, S, H, D]
        k = apply_rope(self.split(self.k_proj(h)), positions, self.max_wavelength)
        k = mx.concatenate([prefix_k, k], axis=1)  # [B, P + S, KVH, D]
        v = mx.concatenate([prefix_v, self.split(self.v_proj(h))], axis=1)
        out = attention(_heads_first(q), _heads_first(k), _heads_first(v), mask=mask[:, None], scale=self.head_dim**-0.5)
        return self.o_proj(out)


class CrossAttention(Attention):
    """forward_cross_attn_layer: k_proj/v_proj of the cached prefix K/V (flattened over heads), no
    further RoPE; the query's RoPE positions start from 0; attention over the prefix only."""

    def __call__(self, h: mx.array, prefix_k: mx.array, prefix_v: mx.array, mask: mx.array, positions: mx.array) -> mx.array:
        b, p = prefix_k.shape[:2]
        q = apply_rope(self.split(self.q_proj(h)), positions, self.max_wavelength)  # [B, S, H, D]
        k = self.split(self.k_proj(prefix_k.reshape(b, p, -1)))  # [B, P, KVH, D]
        v = self.split(self.v_proj(prefix_v.reshape(b, p, -1)))
        out = attention(_heads_first(q), _heads_first(k), _heads_first(v), mask=mask[:, None, :, :p], scale=self.head_dim**-0.5)
        return self.o_proj(out)


class DecoderLayer(nn.Module):
    def __init__(self, c: Config, i: int):
        super().__init__()
        self.self_attn = SelfAttention(c, c.hidden_size) if c.is_self_attn(i) else CrossAttention(c, c.vlm_kv_dim)
        self.mlp = LlamaMLP(c.hidden_size, c.intermediate_size)
        self.input_layernorm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)

    def __call__(self, x: mx.array, prefix_k: mx.array, prefix_v: mx.array, mask: mx.array, positions: mx.array) -> mx.array:
        x = self.self_attn(self.input_layernorm(x), prefix_k, prefix_v, mask, positions) + x
        return self.mlp(self.post_attention_layernorm(x)) + x


class LlamaExpert(nn.Module):
    """transformers' LlamaModel without embed_tokens (lerobot drops it)."""

    def __init__(self, c: Config):
        super().__init__()
        self.layers = [DecoderLayer(c, i) for i in range(c.num_hidden_layers)]
        self.norm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)


class ExpertWithCachedPrefix(nn.Module):
    """SmolVLMWithExpertModel's expert half, denoising branch: the VLM enters only as its K/V cache."""

    def __init__(self, c: Config):
        super().__init__()
        self.config = c
        self.lm_expert = LlamaExpert(c)

    def __call__(self, x: mx.array, prefix_keys: mx.array, prefix_values: mx.array) -> mx.array:
        """x [B, S, hidden] suffix embeddings; prefix K/V [layers, B, P, KVH, D] (keys post-RoPE)."""
        b, s, _ = x.shape
        mask, positions = suffix_mask_and_positions(b, prefix_keys.shape[2], s)
        cross_positions = positions - positions.min(axis=1, keepdims=True)  # lerobot: "start from 0"
        for i, layer in enumerate(self.lm_expert.layers):
            layer_positions = positions if self.config.is_self_attn(i) else cross_positions
            x = layer(x, prefix_keys[i], prefix_values[i], mask, layer_positions)
        return self.lm_expert.norm(x)


class VLAFlowMatching(nn.Module):
    """lerobot VLAFlowMatching without the VLM prefix (embed_prefix, state_proj)."""

    def __init__(self, c: Config):
        super().__init__()
        self.config = c
        h, a = c.hidden_size, c.max_action_dim
        self.vlm_with_expert = ExpertWithCachedPrefix(c)
        self.action_in_proj = nn.Linear(a, h)
        self.action_out_proj = nn.Linear(h, a)
        self.action_time_mlp_in = nn.Linear(2 * h, h)
        self.action_time_mlp_out = nn.Linear(h, h)

    def embed_suffix(self, noisy_actions: mx.array, time: mx.array) -> mx.array:
        action_emb = self.action_in_proj(noisy_actions)  # [B, S, h]
        time_emb = mx.broadcast_to(time_embedding(time, self.config).astype(action_emb.dtype)[:, None, :], action_emb.shape)
        x = self.action_time_mlp_in(mx.concatenate([action_emb, time_emb], axis=2))
        return self.action_time_mlp_out(nn.silu(x))

    def denoise_step(self, prefix_keys: mx.array, prefix_values: mx.array, x_t: mx.array, time: mx.array) -> mx.array:
        """The velocity v_t [B, S, max_action_dim] at x_t [B, S, max_action_dim], time [B] (float32)."""
        return self.action_out_proj(self.vlm_with_expert(self.embed_suffix(x_t, time), prefix_keys, prefix_values))

    def sample_actions(self, prefix_keys: mx.array, prefix_values: mx.array, noise: mx.array, num_steps: int) -> mx.array:
        """Euler integration from t = 1 (noise) to t = 0; time accumulates in float32 as in lerobot. The
        step is applied in float32 and cast to the cell's dtype, as torch's float32 0-d dt does."""
        dt = mx.array(-1.0 / num_steps, mx.float32)
        time = mx.array(1.0, mx.float32)
        x_t = noise
        for _ in range(num_steps):
            v_t = self.denoise_step(prefix_keys, prefix_values, x_t, mx.broadcast_to(time, noise.shape[:1]))
            x_t = x_t + (dt * v_t).astype(x_t.dtype)
            time = time + dt
        return x_t

    def loss(self, prefix_keys: mx.array, prefix_values: mx.array, noise: mx.array, actions: mx.array, time: mx.array) -> mx.array:
        """VLAFlowMatching.forward: mean((v_t(x_t, t) - (noise - actions))^2), `time` float32."""
        t = time[:, None, None]
        x_t = (t * noise + (1 - t) * actions).astype(noise.dtype)  # a no-op cast unless the cell is bf16/fp16
        u_t = noise - actions
        v_t = self.denoise_step(prefix_keys, prefix_values, x_t, time)
        return mx.mean(mx.square(u_t - v_t))


class SmolVLAExpertPolicy(nn.Module):
    """The root that gives SmolVLAPolicy's state-dict names (`model.` + VLAFlowMatching's)."""

    def __init__(self, c: Config):
        super().__init__()
        self.model = VLAFlowMatching(c)


# --- the arena contract --------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> SmolVLAExpertPolicy:
    return load(SmolVLAExpertPolicy(config), weights, ctx)


def inference(model: SmolVLAExpertPolicy, inputs: dict[str, np.ndarray]) -> Step:
    """The whole Euler denoise of the chunk; num_steps is read once here (the loop is unrolled)."""
    num_steps = int(inputs["num_steps"])
    t = to_device({k: v for k, v in inputs.items() if k != "num_steps"}, model.ctx)
    return forward_step(lambda keys, values, noise: {"actions": model.model.sample_actions(keys, values, noise, num_steps)},
                        t["prefix_keys"], t["prefix_values"], t["noise"])  # fmt: skip


def latency(model: SmolVLAExpertPolicy, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1.0 (the first step of the inference loop)."""
    t = to_device(inputs, model.ctx)
    time = mx.ones(t["noise"].shape[:1], mx.float32)
    return forward_step(lambda keys, values, noise, time: {"velocity": model.model.denoise_step(keys, values, noise, time)},
                        t["prefix_keys"], t["prefix_values"], t["noise"], time)  # fmt: skip


def training(model: SmolVLAExpertPolicy, inputs: dict[str, np.ndarray]) -> Step:
    """Flow-matching MSE; the times stay float32 whatever the cell's dtype, as in lerobot (see the family)."""
    t = to_device({k: v for k, v in inputs.items() if k != "time"}, model.ctx)
    time = mx.array(inputs["time"], mx.float32)
    return training_step(model, model.model.loss, t["prefix_keys"], t["prefix_values"], t["noise"], t["actions"], time)
