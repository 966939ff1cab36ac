"""The Stable Diffusion UNet, written once for JAX, TensorFlow and tinygrad: pure functions of the flat
diffusers-named parameter dict `p`, on the operations of a framework's layers module `nn`
(`arena.functional.layers.Layers`). Activations of the convolutions are in the framework's layout
(`nn.CHANNEL_AXIS`), token sequences [batch, tokens, channels].

Official implementation: diffusers UNet2DConditionModel with its down/mid/up blocks, ResnetBlock2D,
Transformer2DModel (BasicTransformerBlock, GEGLU) and timestep embedding (the source files are listed
in `arena/families/unet2d_condition.py`), for the configurations that family's Config accepts.

Deviations (none change the arithmetic):
    - SiLU(temb) is computed once per call and shared by every resnet's time_emb_proj; diffusers
      recomputes the same value inside each ResnetBlock2D.
    - Norms compute in float32 and return the activations' dtype (diffusers' GroupNorm / LayerNorm run
      in the activations' dtype; the same in fp32).
    - Attention is the caller's `attend` (`nn.attention`'s signature): JAX and TensorFlow pass theirs
      rematerialised in the backward pass, so SD 1.5 training need not hold every self-attention score
      matrix. Forward values are the same either way.
"""

from __future__ import annotations

import math
from typing import Callable

from arena.families.unet2d_condition import TRANSFORMER_GROUP_NORM_EPS, TRANSFORMER_LAYER_NORM_EPS, Config
from arena.functional.layers import Layers, Params, Tensor

Attend = Callable[..., Tensor]  # nn.attention(q, k, v), or a rematerialised form of it

# ---- embeddings ----------------------------------------------------------------------------------


def timestep_sinusoid(nn: Layers, timesteps: Tensor, dim: int, flip_sin_to_cos: bool, freq_shift: int) -> Tensor:
    """diffusers get_timestep_embedding (max_period 10000, scale 1), in float32: [B] -> [B, dim]."""
    half = dim // 2
    exponent = -math.log(10000.0) * nn.arange(half, nn.FLOAT32) / (half - freq_shift)
    angles = nn.reshape(nn.cast(timesteps, nn.FLOAT32), (-1, 1)) * nn.reshape(nn.exp(exponent), (1, half))  # [B, half]
    sin, cos = nn.sin(angles), nn.cos(angles)
    return nn.concat([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)


def time_embedding(nn: Layers, p: Params, t_emb: Tensor) -> Tensor:
    """TimestepEmbedding: linear_1 -> SiLU -> linear_2."""
    return nn.linear(p, "time_embedding.linear_2", nn.silu(nn.linear(p, "time_embedding.linear_1", t_emb)))


# ---- blocks --------------------------------------------------------------------------------------


def resnet(nn: Layers, p: Params, name: str, x: Tensor, temb_act: Tensor, cfg: Config, scale: float = 1.0) -> Tensor:
    """ResnetBlock2D (time_embedding_norm "default"); `temb_act` is SiLU(temb) [B, T]."""
    h = nn.conv(p, f"{name}.conv1", nn.silu(nn.group_norm(p, f"{name}.norm1", x, cfg.norm_num_groups, cfg.norm_eps)), padding=1)
    h = h + nn.per_channel(nn.linear(p, f"{name}.time_emb_proj", temb_act))
    h = nn.conv(p, f"{name}.conv2", nn.silu(nn.group_norm(p, f"{name}.norm2", h, cfg.norm_num_groups, cfg.norm_eps)), padding=1)
    shortcut = nn.conv(p, f"{name}.conv_shortcut", x) if f"{name}.conv_shortcut.weight" in p else x
    return (shortcut + h) / scale


def attention(nn: Layers, p: Params, name: str, x: Tensor, context: Tensor, head_dim: int, attend: Attend) -> Tensor:
    """diffusers Attention (AttnProcessor2_0): bias-free q/k/v, to_out.0 with bias; x [B, N, C], context [B, M, D]."""
    q = nn.split_heads(nn.linear(p, f"{name}.to_q", x), head_dim)  # the attention layout of [B, N, H, Dh]
    k = nn.split_heads(nn.linear(p, f"{name}.to_k", context), head_dim)
    v = nn.split_heads(nn.linear(p, f"{name}.to_v", context), head_dim)
    return nn.linear(p, f"{name}.to_out.0", attend(q, k, v))  # [B, N, H * Dh] -> [B, N, C]


def feed_forward(nn: Layers, p: Params, name: str, x: Tensor) -> Tensor:
    """FeedForward with GEGLU: proj to 2 x inner, first half the value, second half the gate."""
    value, gate = nn.chunk(nn.linear(p, f"{name}.net.0.proj", x), 2)
    return nn.linear(p, f"{name}.net.2", value * nn.gelu(gate))


def transformer_block(nn: Layers, p: Params, name: str, x: Tensor, context: Tensor, head_dim: int, attend: Attend) -> Tensor:
    """BasicTransformerBlock: pre-LayerNorm self-attention, cross-attention and GEGLU MLP, each residual."""
    eps = TRANSFORMER_LAYER_NORM_EPS
    h = nn.layer_norm(p, f"{name}.norm1", x, eps)
    x = x + attention(nn, p, f"{name}.attn1", h, h, head_dim, attend)
    x = x + attention(nn, p, f"{name}.attn2", nn.layer_norm(p, f"{name}.norm2", x, eps), context, head_dim, attend)
    return x + feed_forward(nn, p, f"{name}.ff", nn.layer_norm(p, f"{name}.norm3", x, eps))


def transformer(nn: Layers, p: Params, name: str, x: Tensor, context: Tensor, head_dim: int, cfg: Config, attend: Attend) -> Tensor:
    """Transformer2DModel (continuous input, one block): GroupNorm -> proj_in -> block -> proj_out, + x.
    proj_in/out are 1x1 convs (SD 1.x) or Linear on the flattened pixels (use_linear_projection)."""
    h = nn.group_norm(p, f"{name}.norm", x, cfg.norm_num_groups, TRANSFORMER_GROUP_NORM_EPS)
    if not cfg.use_linear_projection:
        h = nn.conv(p, f"{name}.proj_in", h)
    h = nn.pixels_to_tokens(h)  # [B, HW, C]: diffusers' permute(0, 2, 3, 1) pixel order
    if cfg.use_linear_projection:
        h = nn.linear(p, f"{name}.proj_in", h)
    h = transformer_block(nn, p, f"{name}.transformer_blocks.0", h, context, head_dim, attend)
    if cfg.use_linear_projection:
        h = nn.linear(p, f"{name}.proj_out", h)
    h = nn.tokens_to_pixels(h, x)  # proj_in / proj_out keep the channel count
    if not cfg.use_linear_projection:
        h = nn.conv(p, f"{name}.proj_out", h)
    return h + x


# ---- the model -----------------------------------------------------------------------------------


def forward(nn: Layers, p: Params, sample: Tensor, timestep: Tensor, context: Tensor, *, cfg: Config, attend: Attend) -> Tensor:
    """UNet2DConditionModel.forward: sample [B, Cin, H, W] in the framework's layout, timestep [B] int,
    context [B, M, D] -> the predicted noise [B, Cout, H, W], in the same layout. `cfg` and `attend`
    are static (keyword-only, so a framework binds them with functools.partial and traces the rest)."""
    n = cfg.num_levels
    if cfg.center_input_sample:
        sample = 2 * sample - 1.0
    t_emb = nn.cast(timestep_sinusoid(nn, timestep, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift), sample.dtype)
    temb_act = nn.silu(time_embedding(nn, p, t_emb))  # every resnet applies SiLU before time_emb_proj

    x = nn.conv(p, "conv_in", sample, padding=1)
    skips = [x]
    for i, kind in enumerate(cfg.down_block_types):
        for j in range(cfg.layers_per_block):
            x = resnet(nn, p, f"down_blocks.{i}.resnets.{j}", x, temb_act, cfg)
            if kind == "CrossAttnDownBlock2D":
                x = transformer(nn, p, f"down_blocks.{i}.attentions.{j}", x, context, cfg.head_dim(i), cfg, attend)
            skips.append(x)
        if i < n - 1:
            x = nn.conv(p, f"down_blocks.{i}.downsamplers.0.conv", x, stride=2, padding=1)
            skips.append(x)

    x = resnet(nn, p, "mid_block.resnets.0", x, temb_act, cfg, cfg.mid_block_scale_factor)
    x = transformer(nn, p, "mid_block.attentions.0", x, context, cfg.head_dim(n - 1), cfg, attend)
    x = resnet(nn, p, "mid_block.resnets.1", x, temb_act, cfg, cfg.mid_block_scale_factor)

    for i, kind in enumerate(cfg.up_block_types):
        for j in range(cfg.layers_per_block + 1):
            x = nn.concat([x, skips.pop()], axis=nn.CHANNEL_AXIS)  # skips are consumed last-in, first-out
            x = resnet(nn, p, f"up_blocks.{i}.resnets.{j}", x, temb_act, cfg)
            if kind == "CrossAttnUpBlock2D":
                x = transformer(nn, p, f"up_blocks.{i}.attentions.{j}", x, context, cfg.head_dim(n - 1 - i), cfg, attend)
        if i < n - 1:
            x = nn.conv(p, f"up_blocks.{i}.upsamplers.0.conv", nn.upsample_nearest2x(x), padding=1)

    x = nn.silu(nn.group_norm(p, "conv_norm_out", x, cfg.norm_num_groups, cfg.norm_eps))
    return nn.conv(p, "conv_out", x, padding=1)


def loss(nn: Layers, p: Params, sample: Tensor, timestep: Tensor, context: Tensor, noise: Tensor, *, cfg: Config, attend: Attend) -> Tensor:
    """Noise-prediction MSE, mean over every element, taken in float32 (as diffusers' training script
    does in half precision): F.mse_loss(unet(x_t, t, context).float(), noise.float())."""
    pred = forward(nn, p, sample, timestep, context, cfg=cfg, attend=attend)
    diff = nn.cast(pred, nn.FLOAT32) - nn.cast(noise, nn.FLOAT32)
    return nn.mean(diff * diff)
