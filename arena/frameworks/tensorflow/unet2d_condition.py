"""SD UNet in TensorFlow: pure functions over the flat diffusers-named variables, channels-last (NHWC
activations, HWIO kernels: the layout TensorFlow's CPU convolutions take, so no kernel is copied on a
call).

Official implementation: diffusers UNet2DConditionModel with its down/mid/up blocks, ResnetBlock2D,
Transformer2DModel (BasicTransformerBlock, GEGLU) and timestep embedding (the source files are listed
in `arena/families/unet2d_condition.py`), for the configurations that family's Config accepts.

Deviations (none change the arithmetic), as in the JAX port:
    - Attention is recomputed in the backward pass (tf.recompute_grad), so SD 1.5 training need not
      hold every self-attention score matrix; see `rematerialised_attention`.
    - SiLU(temb) is computed once per call and shared by every resnet's time_emb_proj; diffusers
      recomputes the same value inside each ResnetBlock2D.
    - Norms compute in float32 and return the activations' dtype (diffusers' GroupNorm / LayerNorm run
      in the activations' dtype; the same in fp32).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from arena.families.unet2d_condition import TRANSFORMER_GROUP_NORM_EPS, TRANSFORMER_LAYER_NORM_EPS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow import layers
from arena.frameworks.tensorflow.common import Model, Params, build_model, forward_step, to_device, training_step

# ---- embeddings ----------------------------------------------------------------------------------


def timestep_sinusoid(timesteps: tf.Tensor, dim: int, flip_sin_to_cos: bool, freq_shift: int) -> tf.Tensor:
    """diffusers get_timestep_embedding (max_period 10000, scale 1), in float32: [B] -> [B, dim]."""
    half = dim // 2
    exponent = -math.log(10000.0) * tf.range(half, dtype=tf.float32) / (half - freq_shift)
    angles = tf.cast(timesteps, tf.float32)[:, None] * tf.exp(exponent)[None, :]
    sin, cos = tf.sin(angles), tf.cos(angles)
    return tf.concat([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)


def time_embedding(p: Params, t_emb: tf.Tensor) -> tf.Tensor:
    """TimestepEmbedding: linear_1 -> SiLU -> linear_2."""
    return layers.linear(p, "time_embedding.linear_2", tf.nn.silu(layers.linear(p, "time_embedding.linear_1", t_emb)))


# ---- blocks --------------------------------------------------------------------------------------


def resnet(p: Params, name: str, x: tf.Tensor, temb_act: tf.Tensor, cfg: Config, scale: float = 1.0) -> tf.Tensor:
    """ResnetBlock2D (time_embedding_norm "default"); `temb_act` is SiLU(temb) [B, T]."""
    h = layers.conv(p, f"{name}.conv1", tf.nn.silu(layers.group_norm(p, f"{name}.norm1", x, cfg.norm_num_groups, cfg.norm_eps)), padding=1)
    h = h + layers.linear(p, f"{name}.time_emb_proj", temb_act)[:, None, None, :]
    h = layers.conv(p, f"{name}.conv2", tf.nn.silu(layers.group_norm(p, f"{name}.norm2", h, cfg.norm_num_groups, cfg.norm_eps)), padding=1)
    shortcut = layers.conv(p, f"{name}.conv_shortcut", x) if f"{name}.conv_shortcut.weight" in p else x
    return (shortcut + h) / scale


# The score matrix of a 64x64 latent's self-attention is [B, heads, 4096, 4096]: 0.5 GB a layer at batch
# 1, and the tape would keep it (and the softmax) for the backward pass of every such layer. As JAX's
# port does with jax.checkpoint, tf.recompute_grad recomputes the attention in the backward pass
# instead, as torch's fused CPU SDPA kernel does (it never stores the probabilities either). Forward
# values are unchanged.
rematerialised_attention = tf.recompute_grad(layers.attention)


def attention(p: Params, name: str, x: tf.Tensor, context: tf.Tensor, heads: int) -> tf.Tensor:
    """diffusers Attention (AttnProcessor2_0): bias-free q/k/v, to_out.0 with bias; x [B, N, C], context [B, M, D]."""
    b, n, _ = x.shape
    m = context.shape[1]
    q = tf.reshape(layers.linear(p, f"{name}.to_q", x), [b, n, heads, -1])  # (B, N, H, Dh)
    k = tf.reshape(layers.linear(p, f"{name}.to_k", context), [b, m, heads, -1])
    v = tf.reshape(layers.linear(p, f"{name}.to_v", context), [b, m, heads, -1])
    return layers.linear(p, f"{name}.to_out.0", rematerialised_attention(q, k, v))


def feed_forward(p: Params, name: str, x: tf.Tensor) -> tf.Tensor:
    """FeedForward with GEGLU: proj to 2 x inner, first half the value, second half the gate."""
    value, gate = tf.split(layers.linear(p, f"{name}.net.0.proj", x), 2, axis=-1)
    return layers.linear(p, f"{name}.net.2", value * layers.gelu(gate))


def transformer_block(p: Params, name: str, x: tf.Tensor, context: tf.Tensor, heads: int) -> tf.Tensor:
    """BasicTransformerBlock: pre-LayerNorm self-attention, cross-attention and GEGLU MLP, each residual."""
    eps = TRANSFORMER_LAYER_NORM_EPS
    h = layers.layer_norm(p, f"{name}.norm1", x, eps)
    x = x + attention(p, f"{name}.attn1", h, h, heads)
    x = x + attention(p, f"{name}.attn2", layers.layer_norm(p, f"{name}.norm2", x, eps), context, heads)
    return x + feed_forward(p, f"{name}.ff", layers.layer_norm(p, f"{name}.norm3", x, eps))


def transformer(p: Params, name: str, x: tf.Tensor, context: tf.Tensor, heads: int, cfg: Config) -> tf.Tensor:
    """Transformer2DModel (continuous input, one block): GroupNorm -> proj_in -> block -> proj_out, + x.
    proj_in/out are 1x1 convs (SD 1.x) or Linear on the flattened pixels (use_linear_projection)."""
    b, hgt, wdt, c = x.shape
    h = layers.group_norm(p, f"{name}.norm", x, cfg.norm_num_groups, TRANSFORMER_GROUP_NORM_EPS)
    if not cfg.use_linear_projection:
        h = layers.conv(p, f"{name}.proj_in", h)
    h = tf.reshape(h, [b, hgt * wdt, c])  # (B, HW, C): diffusers' permute(0, 2, 3, 1) pixel order
    if cfg.use_linear_projection:
        h = layers.linear(p, f"{name}.proj_in", h)
    h = transformer_block(p, f"{name}.transformer_blocks.0", h, context, heads)
    if cfg.use_linear_projection:
        h = layers.linear(p, f"{name}.proj_out", h)
    h = tf.reshape(h, [b, hgt, wdt, c])
    if not cfg.use_linear_projection:
        h = layers.conv(p, f"{name}.proj_out", h)
    return h + x


def upsample_nearest2x(x: tf.Tensor) -> tf.Tensor:
    """F.interpolate(scale_factor=2, mode="nearest") on NHWC."""
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


# ---- the model -----------------------------------------------------------------------------------


def forward(p: Params, cfg: Config, sample: tf.Tensor, timestep: tf.Tensor, context: tf.Tensor) -> tf.Tensor:
    """UNet2DConditionModel.forward: sample [B, H, W, Cin], timestep [B] int, context [B, M, D] -> [B, H, W, Cout]."""
    n = cfg.num_levels
    if cfg.center_input_sample:
        sample = 2 * sample - 1.0
    t_emb = tf.cast(timestep_sinusoid(timestep, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift), sample.dtype)
    temb_act = tf.nn.silu(time_embedding(p, t_emb))  # every resnet applies SiLU before time_emb_proj

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
            x = tf.concat([x, skips.pop()], axis=-1)  # skips are consumed last-in, first-out
            x = resnet(p, f"up_blocks.{i}.resnets.{j}", x, temb_act, cfg)
            if kind == "CrossAttnUpBlock2D":
                x = transformer(p, f"up_blocks.{i}.attentions.{j}", x, context, cfg.heads(n - 1 - i), cfg)
        if i < n - 1:
            x = layers.conv(p, f"up_blocks.{i}.upsamplers.0.conv", upsample_nearest2x(x), padding=1)

    x = tf.nn.silu(layers.group_norm(p, "conv_norm_out", x, cfg.norm_num_groups, cfg.norm_eps))
    return layers.conv(p, "conv_out", x, padding=1)


# ---- build and workloads -------------------------------------------------------------------------


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The config is closed over (static), so every Python branch in `forward` is resolved at trace time."""
    x = to_device(inputs, model.ctx, channels_last=["sample"])
    args = (x["sample"], x["timestep"], x["encoder_hidden_states"])
    return forward_step(model, lambda p, s, t, c: {"sample": forward(p, model.config, s, t, c)}, *args, channels_first=["sample"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The same call as inference at latency_batch (the inputs already have that batch)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Noise-prediction MSE, mean over every element, taken in float32 (as diffusers' training script
    does in half precision)."""
    x = to_device(inputs, model.ctx, channels_last=["sample", "noise"])
    cfg = model.config

    def loss_fn(p: Params, sample: tf.Tensor, timestep: tf.Tensor, context: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
        pred = tf.cast(forward(p, cfg, sample, timestep, context), tf.float32)
        return tf.reduce_mean(tf.square(pred - tf.cast(noise, tf.float32)))

    return training_step(model, loss_fn, x["sample"], x["timestep"], x["encoder_hidden_states"], x["noise"])
