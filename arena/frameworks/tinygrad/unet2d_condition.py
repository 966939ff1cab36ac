"""SD UNet in tinygrad: pure functions over the flat diffusers-named weights (the JAX package's
unet2d_condition.py), NCHW activations with OIHW kernels (PyTorch's layout, which tinygrad takes as it
is).

Official implementation: diffusers UNet2DConditionModel with its down/mid/up blocks, ResnetBlock2D,
Transformer2DModel (BasicTransformerBlock, GEGLU) and timestep embedding (the source files are listed
in `arena/families/unet2d_condition.py`), for the configurations that family's Config accepts.

Deviations (none change the arithmetic):
    - SiLU(temb) is computed once per call and shared by every resnet's time_emb_proj; diffusers
      recomputes the same value inside each ResnetBlock2D.
    - Norms compute in float32 and return the activations' dtype (diffusers' GroupNorm / LayerNorm run
      in the activations' dtype; the same in fp32).
"""

from __future__ import annotations

import math

import numpy as np
from tinygrad import Tensor, dtypes

from arena.families.unet2d_condition import TRANSFORMER_GROUP_NORM_EPS, TRANSFORMER_LAYER_NORM_EPS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad import layers
from arena.frameworks.tinygrad.common import Model, Params, build_model, forward_step, to_device, training_step

# ---- embeddings ----------------------------------------------------------------------------------


def timestep_sinusoid(timesteps: Tensor, dim: int, flip_sin_to_cos: bool, freq_shift: int) -> Tensor:
    """diffusers get_timestep_embedding (max_period 10000, scale 1), in float32: [B] -> [B, dim]."""
    half = dim // 2
    exponent = -math.log(10000.0) * Tensor.arange(half, dtype=dtypes.float32) / (half - freq_shift)
    angles = timesteps.cast(dtypes.float32).unsqueeze(1) * exponent.exp().unsqueeze(0)
    sin, cos = angles.sin(), angles.cos()
    return cos.cat(sin, dim=-1) if flip_sin_to_cos else sin.cat(cos, dim=-1)


def time_embedding(p: Params, t_emb: Tensor) -> Tensor:
    """TimestepEmbedding: linear_1 -> SiLU -> linear_2."""
    return layers.linear(p, "time_embedding.linear_2", layers.linear(p, "time_embedding.linear_1", t_emb).silu())


# ---- blocks --------------------------------------------------------------------------------------


def resnet(p: Params, name: str, x: Tensor, temb_act: Tensor, cfg: Config, scale: float = 1.0) -> Tensor:
    """ResnetBlock2D (time_embedding_norm "default"); `temb_act` is SiLU(temb) [B, T]."""
    h = layers.conv(p, f"{name}.conv1", layers.group_norm(p, f"{name}.norm1", x, cfg.norm_num_groups, cfg.norm_eps).silu(), padding=1)
    h = h + layers.linear(p, f"{name}.time_emb_proj", temb_act).reshape(*temb_act.shape[:1], -1, 1, 1)
    h = layers.conv(p, f"{name}.conv2", layers.group_norm(p, f"{name}.norm2", h, cfg.norm_num_groups, cfg.norm_eps).silu(), padding=1)
    shortcut = layers.conv(p, f"{name}.conv_shortcut", x) if f"{name}.conv_shortcut.weight" in p else x
    return (shortcut + h) / scale


def attention(p: Params, name: str, x: Tensor, context: Tensor, heads: int) -> Tensor:
    """diffusers Attention (AttnProcessor2_0): bias-free q/k/v, to_out.0 with bias; x [B, N, C], context [B, M, D]."""
    q, k, v = (layers.linear(p, f"{name}.to_{w}", src) for w, src in (("q", x), ("k", context), ("v", context)))
    d = q.shape[-1] // heads
    q, k, v = (layers.split_heads(t, d) for t in (q, k, v))  # [B, H, N or M, Dh]
    return layers.linear(p, f"{name}.to_out.0", layers.attention(q, k, v))


def feed_forward(p: Params, name: str, x: Tensor) -> Tensor:
    """FeedForward with GEGLU: proj to 2 x inner, first half the value, second half the gate."""
    value, gate = layers.linear(p, f"{name}.net.0.proj", x).chunk(2, dim=-1)
    return layers.linear(p, f"{name}.net.2", value * layers.gelu(gate))


def transformer_block(p: Params, name: str, x: Tensor, context: Tensor, heads: int) -> Tensor:
    """BasicTransformerBlock: pre-LayerNorm self-attention, cross-attention and GEGLU MLP, each residual."""
    eps = TRANSFORMER_LAYER_NORM_EPS
    h = layers.layer_norm(p, f"{name}.norm1", x, eps)
    x = x + attention(p, f"{name}.attn1", h, h, heads)
    x = x + attention(p, f"{name}.attn2", layers.layer_norm(p, f"{name}.norm2", x, eps), context, heads)
    return x + feed_forward(p, f"{name}.ff", layers.layer_norm(p, f"{name}.norm3", x, eps))


def transformer(p: Params, name: str, x: Tensor, context: Tensor, heads: int, cfg: Config) -> Tensor:
    """Transformer2DModel (continuous input, one block): GroupNorm -> proj_in -> block -> proj_out, + x.
    proj_in/out are 1x1 convs (SD 1.x) or Linear on the flattened pixels (use_linear_projection)."""
    b, c, hgt, wdt = x.shape
    h = layers.group_norm(p, f"{name}.norm", x, cfg.norm_num_groups, TRANSFORMER_GROUP_NORM_EPS)
    if not cfg.use_linear_projection:
        h = layers.conv(p, f"{name}.proj_in", h)
    h = h.reshape(b, c, hgt * wdt).transpose(1, 2)  # (B, HW, C): diffusers' permute(0, 2, 3, 1) pixel order
    if cfg.use_linear_projection:
        h = layers.linear(p, f"{name}.proj_in", h)
    h = transformer_block(p, f"{name}.transformer_blocks.0", h, context, heads)
    if cfg.use_linear_projection:
        h = layers.linear(p, f"{name}.proj_out", h)
    h = h.transpose(1, 2).reshape(b, c, hgt, wdt)
    if not cfg.use_linear_projection:
        h = layers.conv(p, f"{name}.proj_out", h)
    return h + x


def upsample_nearest2x(x: Tensor) -> Tensor:
    """F.interpolate(scale_factor=2, mode="nearest") on NCHW."""
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


# ---- the model -----------------------------------------------------------------------------------


def forward(p: Params, cfg: Config, sample: Tensor, timestep: Tensor, context: Tensor) -> Tensor:
    """UNet2DConditionModel.forward: sample [B, Cin, H, W], timestep [B] int, context [B, M, D] -> [B, Cout, H, W]."""
    n = cfg.num_levels
    if cfg.center_input_sample:
        sample = 2 * sample - 1.0
    t_emb = timestep_sinusoid(timestep, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift).cast(sample.dtype)
    temb_act = time_embedding(p, t_emb).silu()  # every resnet applies SiLU before time_emb_proj

    x = layers.conv(p, "conv_in", sample, padding=1)
    skips = [x]
    for i, kind in enumerate(cfg.down_block_types):
        for j in range(cfg.layers_per_block):
            x = resnet(p, f"down_blocks.{i}.resnets.{j}", x, temb_act, cfg)
            if kind == "CrossAttnDownBlock2D":
                x = transformer(p, f"down_blocks.{i}.attentions.{j}", x, context, cfg.heads(i), cfg)
            skips.append(x)
        if i < n - 1:
            x = layers.conv(p, f"down_blocks.{i}.downsamplers.0.conv", x, stride=2, padding=1)
            skips.append(x)

    x = resnet(p, "mid_block.resnets.0", x, temb_act, cfg, cfg.mid_block_scale_factor)
    x = transformer(p, "mid_block.attentions.0", x, context, cfg.heads(n - 1), cfg)
    x = resnet(p, "mid_block.resnets.1", x, temb_act, cfg, cfg.mid_block_scale_factor)

    for i, kind in enumerate(cfg.up_block_types):
        for j in range(cfg.layers_per_block + 1):
            x = x.cat(skips.pop(), dim=1)  # skips are consumed last-in, first-out
            x = resnet(p, f"up_blocks.{i}.resnets.{j}", x, temb_act, cfg)
            if kind == "CrossAttnUpBlock2D":
                x = transformer(p, f"up_blocks.{i}.attentions.{j}", x, context, cfg.heads(n - 1 - i), cfg)
        if i < n - 1:
            x = layers.conv(p, f"up_blocks.{i}.upsamplers.0.conv", upsample_nearest2x(x), padding=1)

    x = layers.group_norm(p, "conv_norm_out", x, cfg.norm_num_groups, cfg.norm_eps).silu()
    return layers.conv(p, "conv_out", x, padding=1)


# ---- build and workloads -------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    x = to_device(inputs, model.ctx)

    def denoise(sample: Tensor, timestep: Tensor, context: Tensor) -> dict[str, Tensor]:
        return {"sample": forward(model.params, model.config, sample, timestep, context)}

    return forward_step(denoise, model, x["sample"], x["timestep"], x["encoder_hidden_states"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The same call as inference at latency_batch (the inputs already have that batch)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Noise-prediction MSE, mean over every element, taken in float32 (as diffusers' training script
    does in half precision)."""
    x = to_device(inputs, model.ctx)

    def loss(sample: Tensor, timestep: Tensor, context: Tensor, noise: Tensor) -> Tensor:
        pred = layers.upcast(forward(model.params, model.config, sample, timestep, context))
        return ((pred - layers.upcast(noise)) ** 2).mean()

    return training_step(model, loss, x["sample"], x["timestep"], x["encoder_hidden_states"], x["noise"])
