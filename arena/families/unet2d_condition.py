"""Text-conditioned latent-diffusion UNet (Stable Diffusion 1.x / 2.x shapes).

Official implementation: diffusers `models/unets/unet_2d_condition.py` (UNet2DConditionModel), with its
blocks in `models/unets/unet_2d_blocks.py` (CrossAttnDownBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn,
UpBlock2D, CrossAttnUpBlock2D), `models/resnet.py` (ResnetBlock2D), `models/transformers/
transformer_2d.py` + `models/attention.py` (Transformer2DModel, BasicTransformerBlock, GEGLU) and
`models/embeddings.py` (Timesteps, TimestepEmbedding). Config fields are the diffusers config.json names;
tensor names are the diffusers state-dict keys.

The architecture, per sample (c0 = block_out_channels[0], T = 4 * c0 the time-embedding width):
    t -> sinusoid(c0) -> time_embedding.linear_1 -> SiLU -> linear_2 = temb [T]
    conv_in -> down_blocks (each: layers_per_block x [ResnetBlock2D (+ Transformer2DModel)],
    then a stride-2 conv except in the last block) -> mid_block (resnet, transformer, resnet) ->
    up_blocks (each: layers_per_block + 1 x [ResnetBlock2D on cat(x, skip) (+ Transformer2DModel)],
    then nearest x2 + conv except in the last block) -> GroupNorm -> SiLU -> conv_out.
A Transformer2DModel is GroupNorm(eps 1e-6) -> proj_in -> one BasicTransformerBlock (LayerNorm(eps 1e-5)
-> self-attention, LayerNorm -> cross-attention on the text context, LayerNorm -> GEGLU MLP of width 4C,
each with its residual; attention q/k/v have no bias, scores scaled by 1/sqrt(head_dim)) -> proj_out,
plus the residual. Resnets: GroupNorm(norm_eps) -> SiLU -> conv1, + time_emb_proj(SiLU(temb)) per
channel, GroupNorm -> SiLU -> conv2, + shortcut; the output is divided by output_scale_factor (1 except
mid_block_scale_factor in the mid block).

Naming quirk (diffusers issue #2011): in SD 1.x configs `attention_head_dim` is the NUMBER OF HEADS
(8), not the head width; diffusers reads it as `num_attention_heads` when that field is absent, which it
always is for SD. The head width is then channels // heads (40, 80, 160, 160 for SD 1.5). This module
keeps the diffusers field name and meaning; `heads(i)` / `head_dim(i)` spell the real quantities out.

Workloads (one UNet call each; the denoising loop and the VAE / text encoder are not part of it):
    inference  one UNet call on `batch` latents [batch, in_channels, latent_size, latent_size] at
               `timestep`, cross-attending to `encoder_hidden_states` [batch, context_len,
               cross_attention_dim]; output "sample" = the predicted noise. The full preset's batch 2 is
               the classifier-free-guidance pair (unconditional + text) of one 512x512 image.
    latency    the same at `latency_batch`.
    training   noise-prediction MSE (diffusers examples/text_to_image/train_text_to_image.py, epsilon
               target): loss = mean((unet(x_t, t, context) - noise)^2), forward + backward, where
               x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise is built in `make_inputs` with SD's
               training schedule (scaled_linear betas 0.00085..0.012 over 1000 steps), so the noise the
               loss targets is the noise actually in the input. Output "loss".

Inputs (numpy, seeded; every framework gets the same arrays):
    sample                 N(0, 1) float32. SD latents are VAE latents * 0.18215, about unit variance,
                           and so is x_t at every t; training's `sample` is x_t from x0 ~ N(0, 1).
    timestep               int64 [batch], every entry `workloads.timestep` (a fixed DDPM step, default
                           500: mid-schedule, where SD's loss is typical; fixed so that every framework
                           and every call sees the same time embedding).
    encoder_hidden_states  N(0, 1) float32, standing in for CLIP ViT-L/14's last hidden state (it leaves
                           a final LayerNorm, so its entries are about unit scale; the real one also has a
                           few large outlier channels that are not modelled here).
    noise                  (training only) N(0, 1) float32, the regression target.

Weights: diffusers gives UNet2DConditionModel no `_init_weights`, so a fresh module has PyTorch's
default init and that is what `init_tensor` reproduces: every Conv2d / Linear weight
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)) and its bias U(+-1/sqrt(fan_in));
GroupNorm / LayerNorm weight 1, bias 0. (The original CompVis LDM code zero-initialises proj_out,
resnet conv2 and conv_out; diffusers does not, and we follow diffusers.) Two changes make every
parameter matter (arena/families/base.py): GroupNorm / LayerNorm weights 1 + N(0, 0.1) and biases
N(0, 0.02) instead of constants, and the attention to_q / to_k weights scaled by `qk_gain`: their
inputs (a LayerNorm output, or the unit-scale text context) have unit spread, so q and k have spread
1/sqrt(3) at PyTorch's init and attention is nearly uniform; the gain (sqrt(6)) brings the logits to a
spread of 2. At init the UNet's output has a standard deviation of about 0.3-0.4 and the MSE against
unit noise is about 1.1.

Deviations from the official module, all of them restrictions (the published SD 1.x / 2.x UNets fit):
    - Only the fields below are accepted. Everything else is fixed at the SD value: mid_block_type
      UNetMidBlock2DCrossAttn, one transformer layer per block, no class / addition embeddings,
      positional time embedding of width 4 * c0, time_embedding_act_fn / timestep_post_act None,
      conv_in / conv_out kernel 3, resnet_time_scale_shift "default", dropout 0, no dual /
      only-cross attention, upcast_attention False (it changes nothing in fp32, and diffusers' SDPA
      processor ignores it).
    - act_fn is SiLU only and downsample_padding 1 only (padding 0 is diffusers' asymmetric-pad path).
    - layers_per_block and cross_attention_dim are single ints (diffusers also takes per-block tuples);
      attention_head_dim may be an int or one value per block (SD 2.x uses [5, 10, 20, 20]).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from arena.families.base import FamilyConfig, FamilyWorkloads, bias_uniform, kaiming_uniform, norm_weight, qk_gain, small_bias

OUTPUTS = {"inference": ("sample",), "latency": ("sample",), "training": ("loss",)}

DownBlockType = Literal["CrossAttnDownBlock2D", "DownBlock2D"]
UpBlockType = Literal["UpBlock2D", "CrossAttnUpBlock2D"]

# SD's training noise schedule (scheduler_config.json of runwayml/stable-diffusion-v1-5 and SD 2.x).
NUM_TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012
# Fixed in diffusers, not config fields: Transformer2DModel's GroupNorm eps, and BasicTransformerBlock's
# LayerNorm eps (Transformer2DModel's norm_eps default; the UNet does not pass its own norm_eps down).
TRANSFORMER_GROUP_NORM_EPS = 1e-6
TRANSFORMER_LAYER_NORM_EPS = 1e-5


class Config(FamilyConfig):
    in_channels: int = Field(4, gt=0, description="latent channels in")
    out_channels: int = Field(4, gt=0, description="predicted-noise channels out")
    center_input_sample: bool = Field(False, description="if true the input is mapped x -> 2x - 1 first")
    flip_sin_to_cos: bool = Field(True, description="timestep sinusoid ordered (cos, sin) instead of (sin, cos)")
    freq_shift: int = Field(0, ge=0, description="downscale_freq_shift of the timestep sinusoid")
    down_block_types: tuple[DownBlockType, ...] = Field(min_length=1)
    up_block_types: tuple[UpBlockType, ...] = Field(min_length=1)
    block_out_channels: tuple[int, ...] = Field(min_length=1, description="channels of each resolution level")
    layers_per_block: int = Field(gt=0, description="resnets per down block (up blocks have one more)")
    downsample_padding: Literal[1] = 1
    mid_block_scale_factor: float = Field(1.0, gt=0, description="output_scale_factor of the mid-block resnets")
    act_fn: Literal["silu"] = "silu"
    norm_num_groups: int = Field(32, gt=0)
    norm_eps: float = Field(1e-5, gt=0, description="eps of the resnet GroupNorms and conv_norm_out")
    cross_attention_dim: int = Field(gt=0, description="width of encoder_hidden_states (768 = CLIP ViT-L/14)")
    attention_head_dim: int | tuple[int, ...] = Field(
        description="the NUMBER OF HEADS per block in SD configs (diffusers naming quirk, issue #2011)"
    )
    use_linear_projection: bool = Field(False, description="proj_in/proj_out as Linear (SD 2.x) instead of 1x1 Conv2d (SD 1.x)")

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        n = len(self.block_out_channels)
        for field in ("down_block_types", "up_block_types"):
            if len(getattr(self, field)) != n:
                raise ValueError(f"{field} ({len(getattr(self, field))} entries) must have one entry per block_out_channels ({n})")
        if isinstance(self.attention_head_dim, tuple) and len(self.attention_head_dim) != n:
            raise ValueError(f"attention_head_dim ({len(self.attention_head_dim)} entries) must have one entry per block_out_channels ({n})")
        for c in self.block_out_channels:
            if c <= 0 or c % self.norm_num_groups:
                raise ValueError(f"block_out_channels ({list(self.block_out_channels)}) must be positive multiples of norm_num_groups ({self.norm_num_groups})")
        for i in self.attention_levels:
            heads, c = self.heads(i), self.block_out_channels[i]
            if heads <= 0 or c % heads:
                raise ValueError(f"attention_head_dim (heads, {heads}) must divide block_out_channels[{i}] ({c})")
        if self.block_out_channels[0] % 2:
            raise ValueError(f"block_out_channels[0] ({self.block_out_channels[0]}) must be even (the timestep sinusoid width)")
        return self

    def heads(self, level: int) -> int:
        """Attention heads at resolution level `level` (diffusers' num_attention_heads)."""
        h = self.attention_head_dim
        return h if isinstance(h, int) else h[level]

    def head_dim(self, level: int) -> int:
        return self.block_out_channels[level] // self.heads(level)

    @property
    def num_levels(self) -> int:
        return len(self.block_out_channels)

    @property
    def attention_levels(self) -> list[int]:
        """Resolution levels with a Transformer2DModel: cross-attention down / up blocks, and the mid block."""
        n = self.num_levels
        return [
            i for i in range(n)
            if self.down_block_types[i] == "CrossAttnDownBlock2D" or self.up_block_types[n - 1 - i] == "CrossAttnUpBlock2D" or i == n - 1
        ]  # fmt: skip

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.block_out_channels[0]


class Workloads(FamilyWorkloads):
    batch: int = Field(gt=0, description="latents per inference call (2 = the classifier-free-guidance pair)")
    latent_size: int = Field(gt=0, description="latent height = width (64 = 512 px / the VAE's factor 8)")
    context_len: int = Field(gt=0, description="text tokens in encoder_hidden_states (77 for CLIP)")
    latency_batch: int = Field(1, gt=0, description="latents per latency call")
    training_batch: int = Field(gt=0, description="latents per training step")
    timestep: int = Field(500, ge=0, lt=NUM_TRAIN_TIMESTEPS, description="the DDPM timestep of every call")


def check_fits(config: Config, workloads: Workloads) -> None:
    """The latent must halve cleanly at every downsampler, so the up path meets its skips exactly."""
    factor = 2 ** (config.num_levels - 1)
    if workloads.latent_size % factor:
        raise ValueError(
            f"latent_size ({workloads.latent_size}) must be divisible by 2**(len(block_out_channels) - 1) ({factor})"
        )


# ---- tensor layout -------------------------------------------------------------------------------


def _resnet(p: str, cin: int, cout: int, temb: int) -> dict[str, tuple[int, ...]]:
    """ResnetBlock2D: GroupNorm, 3x3 conv, time projection, GroupNorm, 3x3 conv, 1x1 shortcut if cin != cout."""
    shapes = {
        f"{p}.norm1.weight": (cin,), f"{p}.norm1.bias": (cin,),
        f"{p}.conv1.weight": (cout, cin, 3, 3), f"{p}.conv1.bias": (cout,),
        f"{p}.time_emb_proj.weight": (cout, temb), f"{p}.time_emb_proj.bias": (cout,),
        f"{p}.norm2.weight": (cout,), f"{p}.norm2.bias": (cout,),
        f"{p}.conv2.weight": (cout, cout, 3, 3), f"{p}.conv2.bias": (cout,),
    }  # fmt: skip
    if cin != cout:
        shapes |= {f"{p}.conv_shortcut.weight": (cout, cin, 1, 1), f"{p}.conv_shortcut.bias": (cout,)}
    return shapes


def _transformer(p: str, c: int, context_dim: int, linear_proj: bool) -> dict[str, tuple[int, ...]]:
    """Transformer2DModel with one BasicTransformerBlock; inner width = heads * head_dim = c."""
    proj = (c, c) if linear_proj else (c, c, 1, 1)
    b = f"{p}.transformer_blocks.0"
    shapes = {f"{p}.norm.weight": (c,), f"{p}.norm.bias": (c,), f"{p}.proj_in.weight": proj, f"{p}.proj_in.bias": (c,)}
    # registration order: norm1, attn1, norm2, attn2, norm3, ff
    shapes |= {f"{b}.norm1.weight": (c,), f"{b}.norm1.bias": (c,)}
    for attn, kv_dim in (("attn1", c), ("attn2", context_dim)):
        shapes |= {
            f"{b}.{attn}.to_q.weight": (c, c),
            f"{b}.{attn}.to_k.weight": (c, kv_dim),
            f"{b}.{attn}.to_v.weight": (c, kv_dim),
            f"{b}.{attn}.to_out.0.weight": (c, c),
            f"{b}.{attn}.to_out.0.bias": (c,),
        }
        if attn == "attn1":
            shapes |= {f"{b}.norm2.weight": (c,), f"{b}.norm2.bias": (c,)}
    shapes |= {
        f"{b}.norm3.weight": (c,), f"{b}.norm3.bias": (c,),
        f"{b}.ff.net.0.proj.weight": (8 * c, c), f"{b}.ff.net.0.proj.bias": (8 * c,),  # GEGLU: value and gate
        f"{b}.ff.net.2.weight": (c, 4 * c), f"{b}.ff.net.2.bias": (c,),
        f"{p}.proj_out.weight": proj, f"{p}.proj_out.bias": (c,),
    }  # fmt: skip
    return shapes


@cache
def _layout(config: Config) -> dict[str, tuple[int, ...]]:
    """Every tensor in diffusers' state-dict order (conv_in, time, down, up, mid, out)."""
    ch, temb, n = config.block_out_channels, config.time_embed_dim, config.num_levels
    ctx, lin = config.cross_attention_dim, config.use_linear_projection
    shapes = {
        "conv_in.weight": (ch[0], config.in_channels, 3, 3), "conv_in.bias": (ch[0],),
        "time_embedding.linear_1.weight": (temb, ch[0]), "time_embedding.linear_1.bias": (temb,),
        "time_embedding.linear_2.weight": (temb, temb), "time_embedding.linear_2.bias": (temb,),
    }  # fmt: skip
    for i, kind in enumerate(config.down_block_types):
        p, cin, cout = f"down_blocks.{i}", ch[max(i - 1, 0)], ch[i]
        if kind == "CrossAttnDownBlock2D":
            for j in range(config.layers_per_block):
                shapes |= _transformer(f"{p}.attentions.{j}", cout, ctx, lin)
        for j in range(config.layers_per_block):
            shapes |= _resnet(f"{p}.resnets.{j}", cin if j == 0 else cout, cout, temb)
        if i < n - 1:
            shapes |= {f"{p}.downsamplers.0.conv.weight": (cout, cout, 3, 3), f"{p}.downsamplers.0.conv.bias": (cout,)}
    rev = ch[::-1]
    for i, kind in enumerate(config.up_block_types):
        # diffusers UNet2DConditionModel.__init__ / UpBlock2D: resnet j sees cat(x, skip) where x has
        # prev_out channels (j == 0) or out, and the skip has out channels, except the last which takes
        # the skip from the next level down (`in_ch`).
        p, prev_out, cout, in_ch = f"up_blocks.{i}", rev[max(i - 1, 0)], rev[i], rev[min(i + 1, n - 1)]
        layers = config.layers_per_block + 1
        if kind == "CrossAttnUpBlock2D":
            for j in range(layers):
                shapes |= _transformer(f"{p}.attentions.{j}", cout, ctx, lin)
        for j in range(layers):
            skip = in_ch if j == layers - 1 else cout
            shapes |= _resnet(f"{p}.resnets.{j}", (prev_out if j == 0 else cout) + skip, cout, temb)
        if i < n - 1:
            shapes |= {f"{p}.upsamplers.0.conv.weight": (cout, cout, 3, 3), f"{p}.upsamplers.0.conv.bias": (cout,)}
    shapes |= _transformer("mid_block.attentions.0", ch[-1], ctx, lin)
    shapes |= _resnet("mid_block.resnets.0", ch[-1], ch[-1], temb) | _resnet("mid_block.resnets.1", ch[-1], ch[-1], temb)
    shapes |= {
        "conv_norm_out.weight": (ch[0],), "conv_norm_out.bias": (ch[0],),
        "conv_out.weight": (config.out_channels, ch[0], 3, 3), "conv_out.bias": (config.out_channels,),
    }  # fmt: skip
    return shapes


def parameter_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    return dict(_layout(config))


def _is_norm(name: str) -> bool:
    """GroupNorm / LayerNorm tensors: resnet norm1/2, transformer norm / norm1-3, conv_norm_out."""
    module = name.rsplit(".", 2)[-2]
    return module.startswith("norm") or module == "conv_norm_out"


def init_tensor(name: str, shape: tuple[int, ...], config: Config, rng: np.random.Generator) -> np.ndarray:
    """PyTorch's default module init (diffusers adds none for this model): every Conv2d and Linear weight
    kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), its bias U(+-1/sqrt(fan_in)); norms and attention
    as the module docstring says."""
    if _is_norm(name):
        return norm_weight(rng, shape) if name.endswith(".weight") else small_bias(rng, shape)
    if name.endswith((".to_q.weight", ".to_k.weight")):
        spread = 1 / math.sqrt(3)  # kaiming_uniform over unit-spread inputs, whatever the fan-in
        return kaiming_uniform(rng, shape) * np.float32(qk_gain(spread, spread))
    if name.endswith(".weight"):
        return kaiming_uniform(rng, shape)
    weight_shape = _layout(config)[name.removesuffix(".bias") + ".weight"]
    return bias_uniform(rng, shape, math.prod(weight_shape[1:]))


# ---- inputs and loss -----------------------------------------------------------------------------


def alphas_cumprod() -> np.ndarray:
    """SD's training schedule: "scaled_linear" betas (linear in sqrt(beta)), cumulative product of 1 - beta."""
    betas = np.linspace(BETA_START**0.5, BETA_END**0.5, NUM_TRAIN_TIMESTEPS, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


def make_inputs(config: Config, workloads: Workloads, workload: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Latents and text context N(0, 1), a fixed timestep; training adds the noise and noises the latents.

    Draw order is latents, context, noise, so inference and training at the same batch and seed share
    their latents (training's x0) and context."""
    check_fits(config, workloads)
    batch = {"inference": workloads.batch, "latency": workloads.latency_batch, "training": workloads.training_batch}[workload]
    size = workloads.latent_size
    latents = rng.standard_normal((batch, config.in_channels, size, size), dtype=np.float32)
    context = rng.standard_normal((batch, workloads.context_len, config.cross_attention_dim), dtype=np.float32)
    timestep = np.full((batch,), workloads.timestep, dtype=np.int64)
    inputs = {"sample": latents, "timestep": timestep, "encoder_hidden_states": context}
    if workload == "training":
        if config.in_channels != config.out_channels:
            raise ValueError(
                f"training noises the latents, so in_channels ({config.in_channels}) must equal out_channels ({config.out_channels})"
            )
        noise = rng.standard_normal((batch, config.out_channels, size, size), dtype=np.float32)
        abar = alphas_cumprod()[workloads.timestep]
        # DDPMScheduler.add_noise: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (needs in == out channels)
        inputs["sample"] = (np.sqrt(abar) * latents + np.sqrt(1.0 - abar) * noise).astype(np.float32)
        inputs["noise"] = noise
    return inputs


def reference_loss(config: Config, workloads: Workloads, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> float:
    """Noise-prediction MSE, mean over every element (F.mse_loss(pred, noise)), in float64; `outputs`
    is the UNet's "sample" on the training inputs."""
    diff = outputs["sample"].astype(np.float64) - inputs["noise"].astype(np.float64)
    return float(np.mean(diff * diff))


# ---- FLOPs ---------------------------------------------------------------------------------------


def _forward_flops(config: Config, batch: int, latent_size: int, context_len: int) -> float:
    """2 FLOPs per multiply-add of every Conv2d, Linear and attention matmul, per sample times batch.

    Per term (HW = pixels at that level, C its channels, T = 4 c0, M = context_len, D = cross_attention_dim):
        conv k x k, cin -> cout at output HW:  HW * cout * cin * k^2 MACs (stride-2 downsamplers count
                                                the output HW; upsampler convs run after the nearest x2)
        resnet time_emb_proj:                   T * cout (once per sample, not per pixel)
        transformer: proj_in + proj_out         2 HW C^2
                     self-attn q, k, v, out     4 HW C^2, scores QK^T + PV: 2 HW^2 C
                     cross-attn q, out          2 HW C^2, k, v on the context: 2 M D C, scores 2 HW M C
                     GEGLU C -> 8C, 4C -> C     12 HW C^2
        time embedding:                         c0 T + T^2
    Left out (all elementwise, < 1 % here): GroupNorm, LayerNorm, SiLU, GELU and the GEGLU product,
    softmax, residual adds, biases, the nearest upsampling and the timestep sinusoid.
    """
    ch, temb, n = config.block_out_channels, config.time_embed_dim, config.num_levels
    m, d = context_len, config.cross_attention_dim
    hw = [(latent_size // 2**i) ** 2 for i in range(n)]

    def resnet(cin: int, cout: int, pixels: int) -> int:
        return pixels * (9 * cin * cout + 9 * cout * cout + (cin * cout if cin != cout else 0)) + temb * cout

    def transformer(c: int, pixels: int) -> int:
        projections = (2 + 4 + 2 + 12) * pixels * c * c + 2 * m * d * c
        attention = 2 * pixels * pixels * c + 2 * pixels * m * c
        return projections + attention

    macs = 9 * config.in_channels * ch[0] * hw[0] + ch[0] * temb + temb * temb
    for i, kind in enumerate(config.down_block_types):
        for j in range(config.layers_per_block):
            macs += resnet(ch[max(i - 1, 0)] if j == 0 else ch[i], ch[i], hw[i])
            macs += transformer(ch[i], hw[i]) if kind == "CrossAttnDownBlock2D" else 0
        if i < n - 1:
            macs += 9 * ch[i] * ch[i] * hw[i + 1]
    macs += 2 * resnet(ch[-1], ch[-1], hw[-1]) + transformer(ch[-1], hw[-1])
    rev = ch[::-1]
    for i, kind in enumerate(config.up_block_types):
        level, prev_out, cout, in_ch = n - 1 - i, rev[max(i - 1, 0)], rev[i], rev[min(i + 1, n - 1)]
        layers = config.layers_per_block + 1
        for j in range(layers):
            skip = in_ch if j == layers - 1 else cout
            macs += resnet((prev_out if j == 0 else cout) + skip, cout, hw[level])
            macs += transformer(cout, hw[level]) if kind == "CrossAttnUpBlock2D" else 0
        if i < n - 1:
            macs += 9 * cout * cout * hw[level - 1]
    macs += 9 * ch[0] * config.out_channels * hw[0]
    return 2.0 * batch * macs


def flops(config: Config, workloads: Workloads, workload: str) -> float:
    check_fits(config, workloads)
    size, m = workloads.latent_size, workloads.context_len
    if workload == "inference":
        return _forward_flops(config, workloads.batch, size, m)
    if workload == "latency":
        return _forward_flops(config, workloads.latency_batch, size, m)
    # backward costs about twice the forward (grads w.r.t. activations and w.r.t. weights)
    return 3.0 * _forward_flops(config, workloads.training_batch, size, m)


def work_items(workloads: Workloads, workload: str) -> tuple[float, str]:
    """Latents through one UNet call (one denoising step each; an image takes ~50 such steps)."""
    batch = {"inference": workloads.batch, "latency": workloads.latency_batch, "training": workloads.training_batch}[workload]
    return batch, "latents"
