"""SD UNet in MLX: an `mlx.nn` module tree whose attribute names are diffusers' state-dict keys, NHWC.

Official implementation: diffusers UNet2DConditionModel with its down/mid/up blocks, ResnetBlock2D,
Transformer2DModel (BasicTransformerBlock, GEGLU) and timestep embedding (the source files are listed
in `arena/families/unet2d_condition.py`), for the configurations that family's Config accepts.

Deviations (none change the arithmetic):
    - Activations are channels-last (MLX's convolutions): `sample` and `noise` arrive NHWC, skips are
      concatenated on the last axis, and the transformer's pixel sequence is the NHWC reshape, which is
      the same row-major pixel order as diffusers' permute(0, 2, 3, 1).
    - SiLU(temb) is computed once per call and shared by every resnet's time_emb_proj; diffusers
      recomputes the same value inside each ResnetBlock2D.
    - diffusers' Dropout(p=0) modules have no tensors and do nothing: attention's to_out.1 is left out,
      ff.net.1 stays as an unused placeholder so that ff.net.2 keeps its official index.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from arena.families.unet2d_condition import TRANSFORMER_GROUP_NORM_EPS, TRANSFORMER_LAYER_NORM_EPS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.mlx.common import forward_step, load, to_device, training_step
from arena.frameworks.mlx.layers import attention, split_heads

# ---- embeddings ----------------------------------------------------------------------------------


def timestep_sinusoid(timesteps: mx.array, dim: int, flip_sin_to_cos: bool, freq_shift: int) -> mx.array:
    """diffusers get_timestep_embedding (max_period 10000, scale 1), in float32: [B] -> [B, dim]."""
    half = dim // 2
    exponent = -math.log(10000.0) * mx.arange(half, dtype=mx.float32) / (half - freq_shift)
    angles = timesteps.astype(mx.float32)[:, None] * mx.exp(exponent)[None, :]
    sin, cos = mx.sin(angles), mx.cos(angles)
    return mx.concatenate([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, dim: int, time_embed_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(dim, time_embed_dim)
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def __call__(self, t_emb: mx.array) -> mx.array:
        return self.linear_2(nn.silu(self.linear_1(t_emb)))


# ---- blocks --------------------------------------------------------------------------------------


def group_norm(groups: int, channels: int, eps: float) -> nn.GroupNorm:
    """torch.nn.GroupNorm semantics (groups of consecutive channels) on channels-last input."""
    return nn.GroupNorm(groups, channels, eps=eps, pytorch_compatible=True)


class ResnetBlock2D(nn.Module):
    """time_embedding_norm "default": GroupNorm -> SiLU -> conv1, + time_emb_proj, GroupNorm -> SiLU -> conv2."""

    def __init__(self, cin: int, cout: int, cfg: Config, output_scale_factor: float = 1.0):
        super().__init__()
        self.norm1 = group_norm(cfg.norm_num_groups, cin, cfg.norm_eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(cfg.time_embed_dim, cout)
        self.norm2 = group_norm(cfg.norm_num_groups, cout, cfg.norm_eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)
        self.output_scale_factor = output_scale_factor

    def __call__(self, x: mx.array, temb_act: mx.array) -> mx.array:
        # x [B, H, W, Cin], temb_act = SiLU(temb) [B, T]
        h = self.conv1(nn.silu(self.norm1(x)))
        h = h + self.time_emb_proj(temb_act)[:, None, None, :]
        h = self.conv2(nn.silu(self.norm2(h)))
        shortcut = self.conv_shortcut(x) if "conv_shortcut" in self else x
        return (shortcut + h) / self.output_scale_factor


class Attention(nn.Module):
    """diffusers Attention (AttnProcessor2_0): bias-free q/k/v, to_out.0 with bias."""

    def __init__(self, dim: int, kv_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(kv_dim, dim, bias=False)
        self.to_v = nn.Linear(kv_dim, dim, bias=False)
        self.to_out = [nn.Linear(dim, dim)]

    def __call__(self, x: mx.array, context: mx.array) -> mx.array:
        # x [B, N, C], context [B, M, D] -> [B, N, C]
        q, k, v = (split_heads(proj(src), self.heads) for proj, src in ((self.to_q, x), (self.to_k, context), (self.to_v, context)))
        return self.to_out[0](attention(q, k, v))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def __call__(self, x: mx.array) -> mx.array:
        value, gate = mx.split(self.proj(x), 2, axis=-1)  # first half the value, second half the gate
        return value * nn.gelu(gate)  # exact (erf) GELU, as F.gelu


class FeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = [GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)]

    def __call__(self, x: mx.array) -> mx.array:
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """Pre-LayerNorm self-attention, cross-attention and GEGLU MLP, each with its residual."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=TRANSFORMER_LAYER_NORM_EPS)
        self.attn1 = Attention(dim, dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=TRANSFORMER_LAYER_NORM_EPS)
        self.attn2 = Attention(dim, context_dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=TRANSFORMER_LAYER_NORM_EPS)
        self.ff = FeedForward(dim)

    def __call__(self, x: mx.array, context: mx.array) -> mx.array:
        h = self.norm1(x)
        x = x + self.attn1(h, h)
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    """Continuous input, one block: GroupNorm -> proj_in -> block -> proj_out, + input. proj_in/out are
    1x1 convs (SD 1.x) or Linear on the flattened pixels (use_linear_projection); on channels-last
    pixels the two are the same map, applied before or after the reshape as diffusers does."""

    def __init__(self, c: int, heads: int, cfg: Config):
        super().__init__()
        self.norm = group_norm(cfg.norm_num_groups, c, TRANSFORMER_GROUP_NORM_EPS)
        proj = (lambda: nn.Linear(c, c)) if cfg.use_linear_projection else (lambda: nn.Conv2d(c, c, 1))
        self.proj_in = proj()
        self.transformer_blocks = [BasicTransformerBlock(c, cfg.cross_attention_dim, heads)]
        self.proj_out = proj()

    def __call__(self, x: mx.array, context: mx.array) -> mx.array:
        b, hgt, wdt, c = x.shape
        h = self.proj_in(self.norm(x)).reshape(b, hgt * wdt, c)  # (B, HW, C)
        h = self.transformer_blocks[0](h, context)
        return self.proj_out(h.reshape(b, hgt, wdt, c)) + x


class Downsample2D(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def __call__(self, x: mx.array) -> mx.array:
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def __call__(self, x: mx.array) -> mx.array:
        b, h, w, c = x.shape  # nearest x2 (F.interpolate mode="nearest"), then the conv
        x = mx.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c)).reshape(b, 2 * h, 2 * w, c)
        return self.conv(x)


class DownBlock(nn.Module):
    """CrossAttnDownBlock2D (with `attentions`) or DownBlock2D: (resnet [+ transformer]) x layers, then a
    stride-2 conv except in the last block. Returns the output and the skips it leaves for the up path."""

    def __init__(self, cin: int, cout: int, cross_attention: bool, downsample: bool, heads: int, cfg: Config):
        super().__init__()
        layers = cfg.layers_per_block
        if cross_attention:
            self.attentions = [Transformer2DModel(cout, heads, cfg) for _ in range(layers)]
        self.resnets = [ResnetBlock2D(cin if j == 0 else cout, cout, cfg) for j in range(layers)]
        if downsample:
            self.downsamplers = [Downsample2D(cout)]

    def __call__(self, x: mx.array, temb_act: mx.array, context: mx.array) -> tuple[mx.array, list[mx.array]]:
        skips = []
        for j, resnet in enumerate(self.resnets):
            x = resnet(x, temb_act)
            if "attentions" in self:
                x = self.attentions[j](x, context)
            skips.append(x)
        if "downsamplers" in self:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """CrossAttnUpBlock2D (with `attentions`) or UpBlock2D: (resnet on cat(x, skip) [+ transformer]) x
    (layers + 1), then nearest x2 + conv except in the last block."""

    def __init__(self, prev_out: int, cout: int, skip_in: int, cross_attention: bool, upsample: bool, heads: int, cfg: Config):
        super().__init__()
        layers = cfg.layers_per_block + 1
        if cross_attention:
            self.attentions = [Transformer2DModel(cout, heads, cfg) for _ in range(layers)]
        # resnet j sees x (prev_out channels for j == 0, else cout) + a skip (skip_in for the last one)
        self.resnets = [
            ResnetBlock2D((prev_out if j == 0 else cout) + (skip_in if j == layers - 1 else cout), cout, cfg)
            for j in range(layers)
        ]  # fmt: skip
        if upsample:
            self.upsamplers = [Upsample2D(cout)]

    def __call__(self, x: mx.array, skips: list[mx.array], temb_act: mx.array, context: mx.array) -> mx.array:
        for j, resnet in enumerate(self.resnets):
            x = resnet(mx.concatenate([x, skips.pop()], axis=-1), temb_act)  # skips are last-in, first-out
            if "attentions" in self:
                x = self.attentions[j](x, context)
        return self.upsamplers[0](x) if "upsamplers" in self else x


class MidBlock(nn.Module):
    """UNetMidBlock2DCrossAttn: resnet, transformer, resnet."""

    def __init__(self, c: int, heads: int, cfg: Config):
        super().__init__()
        self.attentions = [Transformer2DModel(c, heads, cfg)]
        self.resnets = [ResnetBlock2D(c, c, cfg, cfg.mid_block_scale_factor) for _ in range(2)]

    def __call__(self, x: mx.array, temb_act: mx.array, context: mx.array) -> mx.array:
        x = self.resnets[0](x, temb_act)
        return self.resnets[1](self.attentions[0](x, context), temb_act)


# ---- the model -----------------------------------------------------------------------------------


class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        ch, n = cfg.block_out_channels, cfg.num_levels
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], cfg.time_embed_dim)
        self.down_blocks = [
            DownBlock(ch[max(i - 1, 0)], ch[i], kind == "CrossAttnDownBlock2D", i < n - 1, cfg.heads(i), cfg)
            for i, kind in enumerate(cfg.down_block_types)
        ]  # fmt: skip
        rev = ch[::-1]
        self.up_blocks = [
            UpBlock(rev[max(i - 1, 0)], rev[i], rev[min(i + 1, n - 1)], kind == "CrossAttnUpBlock2D", i < n - 1, cfg.heads(n - 1 - i), cfg)
            for i, kind in enumerate(cfg.up_block_types)
        ]  # fmt: skip
        self.mid_block = MidBlock(ch[-1], cfg.heads(n - 1), cfg)
        self.conv_norm_out = group_norm(cfg.norm_num_groups, ch[0], cfg.norm_eps)
        self.conv_out = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)

    def __call__(self, sample: mx.array, timestep: mx.array, context: mx.array) -> mx.array:
        # sample [B, H, W, Cin], timestep [B] int, context [B, M, D] -> [B, H, W, Cout]
        cfg = self.cfg
        if cfg.center_input_sample:
            sample = 2 * sample - 1.0
        t_emb = timestep_sinusoid(timestep, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift).astype(sample.dtype)
        temb_act = nn.silu(self.time_embedding(t_emb))  # every resnet applies SiLU before time_emb_proj

        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb_act, context)
            skips += block_skips
        x = self.mid_block(x, temb_act, context)
        for block in self.up_blocks:
            x = block(x, skips, temb_act, context)
        return self.conv_out(nn.silu(self.conv_norm_out(x)))


# ---- build and workloads -------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> UNet2DConditionModel:
    return load(UNet2DConditionModel(config), weights, ctx)


def _inputs(model: UNet2DConditionModel, inputs: dict[str, np.ndarray]) -> dict[str, mx.array]:
    """Latents and the noise target channels-last, like every activation in the module."""
    return to_device(inputs, model.ctx, channels_last=["sample", "noise"])


def inference(model: UNet2DConditionModel, inputs: dict[str, np.ndarray]) -> Step:
    x = _inputs(model, inputs)
    args = (x["sample"], x["timestep"], x["encoder_hidden_states"])
    return forward_step(lambda s, t, c: {"sample": model(s, t, c)}, *args, channels_first=["sample"])


def latency(model: UNet2DConditionModel, inputs: dict[str, np.ndarray]) -> Step:
    """The same call as inference at latency_batch (the inputs already have that batch)."""
    return inference(model, inputs)


def training(model: UNet2DConditionModel, inputs: dict[str, np.ndarray]) -> Step:
    """Noise-prediction MSE, mean over every element, taken in float32 (as diffusers' training script
    does in half precision); prediction and noise are both channels-last, which the mean ignores."""
    x = _inputs(model, inputs)

    def loss_fn(sample: mx.array, timestep: mx.array, context: mx.array, noise: mx.array) -> mx.array:
        pred = model(sample, timestep, context).astype(mx.float32)
        return mx.mean(mx.square(pred - noise.astype(mx.float32)))

    return training_step(model, loss_fn, x["sample"], x["timestep"], x["encoder_hidden_states"], x["noise"])
