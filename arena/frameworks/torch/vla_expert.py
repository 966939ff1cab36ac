"""SmolVLA's action expert in PyTorch, following lerobot's modules, names and arithmetic.

Official implementation: lerobot `src/lerobot/policies/smolvla/modeling_smolvla.py` (VLAFlowMatching)
and `smolvlm_with_expert.py` (SmolVLMWithExpertModel). lerobot is not a dependency (it is large and
pulls the VLM and its processor from the Hub), so its expert-side code is restated here: the module
tree is lerobot's (`model.vlm_with_expert.lm_expert` is transformers' LlamaModel without embed_tokens,
built from a LlamaConfig exactly as lerobot's `AutoModel.from_config(lm_expert_config)` does, with the
cross-attention k_proj/v_proj swapped for Linear(vlm_kv_dim, kv) as lerobot swaps them), and the
functions below mirror apply_rope, eager_attention_forward, forward_attn_layer /
forward_cross_attn_layer (denoising branch, prefix K/V from the cache), embed_suffix, denoise_step,
sample_actions and forward. The VLM itself is replaced by its per-layer K/V cache (an input); see
`arena/families/vla_expert.py` for why that is exact and for every deviation.

Here apply_rope and the attention upcast to float32 *at least* (lerobot: exactly float32), so that a
float64 run used to measure tolerances stays float64 (`common.to_float64` also lifts LlamaRMSNorm's float32
upcast); for fp32/bf16/fp16 this is lerobot's arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from transformers import LlamaConfig, LlamaModel

from arena.families.vla_expert import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.torch import common
from arena.frameworks.torch.common import forward_step, load_strict, maybe_compile, to_device, torch_dtype, training_step

# --- lerobot's small functions -------------------------------------------------------------------


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, max_wavelength: float) -> torch.Tensor:
    """lerobot apply_rope: rotate-half RoPE of x [B, L, H, D] at positions [B, L]."""
    d_half = x.shape[-1] // 2
    dtype, compute = x.dtype, _compute_dtype(x.dtype)
    x = x.to(compute)
    freq_exponents = (2.0 / x.shape[-1]) * torch.arange(d_half, dtype=compute, device=x.device)
    timescale = max_wavelength**freq_exponents
    radians = positions[..., None].to(compute) / timescale[None, None, :]  # [B, L, D/2]
    radians = radians[..., None, :]  # [B, L, 1, D/2]
    sin, cos = torch.sin(radians), torch.cos(radians)
    x1, x2 = x.split(d_half, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(dtype)


def eager_attention(mask: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int) -> torch.Tensor:
    """lerobot eager_attention_forward. mask [B, Lq, Lk] (True = attend), q [B, Lq, H, D],
    k/v [B, Lk, KVH, D] -> [B, Lq, H*D]."""
    b, lk, kv_heads, d = k.shape
    groups = num_heads // kv_heads
    k = k[:, :, :, None, :].expand(b, lk, kv_heads, groups, d).reshape(b, lk, num_heads, d)
    v = v[:, :, :, None, :].expand(b, lk, kv_heads, groups, d).reshape(b, lk, num_heads, d)
    compute = _compute_dtype(q.dtype)
    q, k = q.to(compute).transpose(1, 2), k.to(compute).transpose(1, 2)  # [B, H, L, D]
    scores = torch.matmul(q, k.transpose(2, 3)) * d**-0.5  # [B, H, Lq, Lk]
    scores = torch.where(mask[:, None, :, :], scores, torch.finfo(scores.dtype).min)
    probs = F.softmax(scores, dim=-1).to(v.dtype)
    out = torch.matmul(probs, v.permute(0, 2, 1, 3))  # [B, H, Lq, D]
    return out.permute(0, 2, 1, 3).reshape(b, -1, num_heads * d)


def create_sinusoidal_pos_embedding(time: torch.Tensor, dimension: int, min_period: float, max_period: float) -> torch.Tensor:
    """lerobot create_sinusoidal_pos_embedding: [B] -> [B, dimension], sin half then cos half, float64."""
    fraction = torch.linspace(0.0, 1.0, dimension // 2, dtype=torch.float64, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    sin_input = (1.0 / period * 2 * math.pi)[None, :] * time[:, None]
    return torch.cat([torch.sin(sin_input), torch.cos(sin_input)], dim=1)


# --- the expert ----------------------------------------------------------------------------------


class ExpertWithCachedPrefix(nn.Module):
    """SmolVLMWithExpertModel's expert half, denoising branch: the VLM enters only as its K/V cache."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        llama = LlamaConfig(
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_key_value_heads,
            head_dim=config.head_dim,
            rms_norm_eps=config.rms_norm_eps,
            initializer_range=config.initializer_range,
            hidden_act="silu",
            attention_bias=False,
            mlp_bias=False,
            vocab_size=1,  # embed_tokens is dropped below, as in lerobot
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
        )
        self.lm_expert = LlamaModel(llama)
        kv = config.num_key_value_heads * config.head_dim
        for i, layer in enumerate(self.lm_expert.layers):
            if not config.is_self_attn(i):
                layer.self_attn.k_proj = nn.Linear(config.vlm_kv_dim, kv, bias=False)
                layer.self_attn.v_proj = nn.Linear(config.vlm_kv_dim, kv, bias=False)
        self.lm_expert.embed_tokens = None

    def forward(
        self,
        x: torch.Tensor,  # [B, S, hidden] suffix embeddings
        prefix_keys: torch.Tensor,  # [layers, B, P, KVH, D] post-RoPE
        prefix_values: torch.Tensor,  # [layers, B, P, KVH, D]
        mask: torch.Tensor,  # [B, S, P + S] bool
        positions: torch.Tensor,  # [B, S] = prefix_len + arange(S)
    ) -> torch.Tensor:
        c = self.config
        b, s, _ = x.shape
        p = prefix_keys.shape[2]
        cross_positions = positions - positions.min(dim=1, keepdim=True).values  # "start from 0"
        for i, layer in enumerate(self.lm_expert.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(b, s, -1, c.head_dim)  # [B, S, H, D]
            if c.is_self_attn(i):  # forward_attn_layer: append the actions' K/V to the cache
                k = apply_rope(attn.k_proj(h).view(b, s, -1, c.head_dim), positions, c.rope_max_wavelength)
                v = attn.v_proj(h).view(b, s, -1, c.head_dim)
                q = apply_rope(q, positions, c.rope_max_wavelength)
                k = torch.cat([prefix_keys[i], k], dim=1)  # [B, P + S, KVH, D]
                v = torch.cat([prefix_values[i], v], dim=1)
                out = eager_attention(mask, q, k, v, c.num_attention_heads)
            else:  # forward_cross_attn_layer: project the cached VLM K/V, attend to the prefix only
                k = attn.k_proj(prefix_keys[i].reshape(b, p, -1)).view(b, p, -1, c.head_dim)  # [B, P, KVH, D]
                v = attn.v_proj(prefix_values[i].reshape(b, p, -1)).view(b, p, -1, c.head_dim)
                q = apply_rope(q, cross_positions, c.rope_max_wavelength)
                out = eager_attention(mask[:, :, :p], q, k, v, c.num_attention_heads)
            x = attn.o_proj(out) + x
            x = layer.mlp(layer.post_attention_layernorm(x)) + x
        return self.lm_expert.norm(x)


class VLAFlowMatching(nn.Module):
    """lerobot VLAFlowMatching without the VLM prefix (embed_prefix, state_proj)."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        h, a = config.hidden_size, config.max_action_dim
        self.vlm_with_expert = ExpertWithCachedPrefix(config)
        self.action_in_proj = nn.Linear(a, h)
        self.action_out_proj = nn.Linear(h, a)
        self.action_time_mlp_in = nn.Linear(2 * h, h)
        self.action_time_mlp_out = nn.Linear(h, h)

    def embed_suffix(self, noisy_actions: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        action_emb = self.action_in_proj(noisy_actions)  # [B, S, h]
        c = self.config
        time_emb = create_sinusoidal_pos_embedding(time, c.hidden_size, c.min_period, c.max_period).to(action_emb.dtype)
        time_emb = time_emb[:, None, :].expand_as(action_emb)
        x = self.action_time_mlp_in(torch.cat([action_emb, time_emb], dim=2))
        return self.action_time_mlp_out(F.silu(x))

    def denoise_step(self, prefix_keys, prefix_values, mask, positions, x_t, time) -> torch.Tensor:
        """The velocity v_t [B, S, max_action_dim] at x_t [B, S, max_action_dim], time [B]."""
        suffix_out = self.vlm_with_expert(self.embed_suffix(x_t, time), prefix_keys, prefix_values, mask, positions)
        return self.action_out_proj(suffix_out)

    def sample_actions(self, prefix_keys, prefix_values, mask, positions, noise, num_steps: int) -> torch.Tensor:
        """Euler integration from t = 1 (noise) to t = 0; time accumulates in float32 as in lerobot."""
        time_dtype = _compute_dtype(noise.dtype)
        dt = torch.tensor(-1.0 / num_steps, dtype=time_dtype, device=noise.device)
        time = torch.tensor(1.0, dtype=time_dtype, device=noise.device)
        x_t = noise
        for _ in range(num_steps):
            v_t = self.denoise_step(prefix_keys, prefix_values, mask, positions, x_t, time.expand(noise.shape[0]))
            x_t = x_t + dt * v_t
            time = time + dt
        return x_t

    def forward(self, prefix_keys, prefix_values, mask, positions, noise, actions, time) -> torch.Tensor:
        """Flow-matching loss: mean((v_t(x_t, t) - (noise - actions))^2). `time` is float32 (or wider)."""
        t = time[:, None, None]
        x_t = (t * noise + (1 - t) * actions).to(noise.dtype)  # a no-op cast unless the cell is bf16/fp16
        u_t = noise - actions
        v_t = self.denoise_step(prefix_keys, prefix_values, mask, positions, x_t, time)
        return F.mse_loss(u_t, v_t, reduction="none").mean()


class SmolVLAExpertPolicy(nn.Module):
    """The root that gives SmolVLAPolicy's state-dict names (`model.` + VLAFlowMatching's)."""

    def __init__(self, config: Config):
        super().__init__()
        self.model = VLAFlowMatching(config)


def suffix_mask_and_positions(batch: int, prefix_len: int, chunk: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """denoise_step's masks with no prefix padding: each action token sees the whole prefix and the
    actions causally (make_att_2d_masks of all-ones suffix att_masks); positions prefix_len + arange."""
    prefix = torch.ones(batch, chunk, prefix_len, dtype=torch.bool, device=device)
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=device).tril().expand(batch, chunk, chunk)
    positions = prefix_len + torch.arange(chunk, device=device).expand(batch, chunk)
    return torch.cat([prefix, causal], dim=2), positions


# --- the arena contract --------------------------------------------------------------------------


class Model(common.Model):
    def __init__(self, module: SmolVLAExpertPolicy, ctx: BuildContext):
        super().__init__(module, ctx)
        flow = module.model
        self.sample_actions = maybe_compile(flow.sample_actions, ctx)
        self.denoise_step = maybe_compile(flow.denoise_step, ctx)
        self.loss = maybe_compile(flow.forward, ctx)

    def prefix(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
        """Inputs on the device plus (prefix_keys, prefix_values, mask, positions): the untimed set-up."""
        t = to_device(inputs, self.device, self.dtype)
        _, b, p = t["prefix_keys"].shape[:3]
        mask, positions = suffix_mask_and_positions(b, p, t["noise"].shape[1], self.device)
        return t, (t["prefix_keys"], t["prefix_values"], mask, positions)

    def time(self, inputs: dict[str, np.ndarray]) -> torch.Tensor:
        """The training times at float32 or wider whatever the cell's dtype, as lerobot keeps them: the
        time embedding's periods go down to min_period (4 ms), so a bf16-rounded t (error up to 2e-3)
        would turn its fast components into different numbers altogether."""
        return torch.from_numpy(inputs["time"]).to(self.device, _compute_dtype(self.dtype))


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    module = SmolVLAExpertPolicy(config)
    load_strict(module, weights)
    module.to(torch.device(ctx.device), torch_dtype(ctx)).eval()
    return Model(module, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    num_steps = int(inputs["num_steps"].item())
    t, prefix = model.prefix({k: v for k, v in inputs.items() if k != "num_steps"})
    return forward_step(lambda: {"actions": model.sample_actions(*prefix, t["noise"], num_steps)}, model.device, model.ctx)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1.0 (the first step of the inference loop)."""
    t, prefix = model.prefix(inputs)
    time = torch.ones(t["noise"].shape[0], dtype=_compute_dtype(model.dtype), device=model.device)
    return forward_step(lambda: {"velocity": model.denoise_step(*prefix, t["noise"], time)}, model.device, model.ctx)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    t, prefix = model.prefix(inputs)
    time = model.time(inputs)
    model.module.train()
    return training_step(model.module, lambda: model.loss(*prefix, t["noise"], t["actions"], time), model.device, model.ctx)
