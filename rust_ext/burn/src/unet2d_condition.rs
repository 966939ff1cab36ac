//! The SD 1.x / 2.x denoising UNet in Burn, after diffusers' UNet2DConditionModel
//! (`models/unets/unet_2d_condition.py`, blocks in `unet_2d_blocks.py`, `resnet.py`,
//! `transformers/transformer_2d.py`, `attention.py`, `embeddings.py`), for the configurations
//! arena/families/unet2d_condition.py accepts: sinusoidal timestep embedding -> TimestepEmbedding,
//! conv_in, down blocks (ResnetBlock2D [+ Transformer2DModel] x layers_per_block, stride-2 conv except
//! the last level), mid block (resnet, transformer, resnet), up blocks (layers_per_block + 1 resnets on
//! cat(x, skip) [+ transformers], nearest x2 + conv except the last), GroupNorm -> SiLU -> conv_out.
//!
//! inference / latency: one UNet call ("sample", the predicted noise; latency is the same call at the
//! latency batch, which the inputs already have). training: mean((unet(x_t, t, context) - noise)^2),
//! forward + backward; every tensor is trainable (the UNet has no buffers). Training runs on Burn's
//! balanced gradient checkpointing (`train_device`), which recomputes rather than keeps the outputs of
//! cheap ops: the same values, less memory.
//!
//! Deviations (none change the arithmetic): SiLU(temb) is computed once per call and shared by every
//! resnet's time_emb_proj (diffusers recomputes the same value in each ResnetBlock2D); the timestep
//! sinusoid is computed on the host in f32 as diffusers computes it (it carries no gradient).
//!
//! Names: the module tree spells the diffusers state-dict keys. Attention's `to_out` is the ModuleList
//! [Linear, Dropout], so a one-element Vec<Linear> spells `to_out.0`; FeedForward's `net` is
//! [GEGLU, Dropout, Linear], mixed types that a Vec cannot hold, so `RENAMES` maps `net.0` / `net.2`
//! onto named fields. proj_in / proj_out are an enum (Conv2d or Linear by config) whose variant name
//! is not part of the path (weights.rs).

use arena_common::tables;
use arena_common::array::get;
use arena_common::config::{self, HeadsPerLevel, Unet as Config};
use arena_common::{Arrays, Error, HostData, NativeModel, Result, Workload};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{gelu, silu};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};

use crate::layers::{self, Last};
use crate::weights::{Loaded, Renames};
use crate::{Family, Native};

/// Fixed in diffusers (not config fields): Transformer2DModel's GroupNorm eps and BasicTransformerBlock's
/// LayerNorm eps. The resnets and conv_norm_out take the config's norm_eps.
const TRANSFORMER_GROUP_NORM_EPS: f64 = 1e-6;
const TRANSFORMER_LAYER_NORM_EPS: f64 = 1e-5;

/// FeedForward.net.0 is the GEGLU, net.2 the output Linear (net.1 is a parameterless Dropout).
const RENAMES: Renames = &[("ff.net.0.", "ff.geglu."), ("ff.net.2.", "ff.out.")];

pub fn build(config_json: &str, weights: Arrays, device: &Device) -> Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("unet2d_condition", config_json)?;
    check(&cfg)?;
    let module = UNet2DConditionModel::new(&cfg, &train_device(device));
    let loaded = Loaded::new(module, weights, RENAMES)?;
    Ok(Box::new(Native::new(Unet { cfg, loaded, device: device.clone(), state: State::Empty })))
}

/// The training device: autodiff with Burn's balanced gradient checkpointing, which recomputes
/// memory-bound ops (norms, activations, softmax) in the backward instead of keeping their outputs;
/// compute-bound ones (matmul, conv) keep theirs. Without it every 4096-token self-attention of SD 1.5
/// keeps two [heads, 4096, 4096] tensors (1 GiB at batch 1) until the backward ends. Measured on a
/// reduced UNet (channels 64-128-256-256, latent 64, batch 1): peak RSS 5.0 GB instead of 9.9 GB and
/// 34 s instead of 36-42 s per step (fewer fresh allocations); at latent 32, 0.7 GB instead of 1.1 GB
/// and 2.7 s instead of 2.1 s.
fn train_device(device: &Device) -> Device {
    device.clone().autodiff().gradient_checkpointing()
}

/// What this implementation relies on that the Python Config validates; checked again so that a bad
/// config fails at build with a message rather than deep in a forward.
fn check(cfg: &Config) -> Result<()> {
    let n = cfg.block_out_channels.len();
    let bad = |what: String| Err(Error(format!("unet2d_condition config: {what}")));
    if n == 0 || cfg.down_block_types.len() != n || cfg.up_block_types.len() != n {
        return bad(format!("down_block_types / up_block_types need one entry per block_out_channels ({n})"));
    }
    if let Some(kind) = cfg.down_block_types.iter().find(|k| !matches!(k.as_str(), "CrossAttnDownBlock2D" | "DownBlock2D")) {
        return bad(format!("unknown down block type {kind:?}"));
    }
    if let Some(kind) = cfg.up_block_types.iter().find(|k| !matches!(k.as_str(), "CrossAttnUpBlock2D" | "UpBlock2D")) {
        return bad(format!("unknown up block type {kind:?}"));
    }
    if let HeadsPerLevel::PerLevel(h) = &cfg.attention_head_dim {
        if h.len() != n {
            return bad(format!("attention_head_dim has {} entries, needs {n}", h.len()));
        }
    }
    Ok(())
}

// ---- the module tree (diffusers' state-dict names) -----------------------------------------------

/// UNet2DConditionModel.
#[derive(Module, Debug)]
pub struct UNet2DConditionModel {
    conv_in: Conv2d,
    time_embedding: TimestepEmbedding,
    down_blocks: Vec<DownBlock>,
    up_blocks: Vec<UpBlock>,
    mid_block: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// TimestepEmbedding: linear_1 -> SiLU -> linear_2.
#[derive(Module, Debug)]
struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

/// CrossAttnDownBlock2D (one transformer after each resnet) or DownBlock2D (`attentions` empty);
/// `downsamplers` holds the stride-2 conv, except at the last level.
#[derive(Module, Debug)]
struct DownBlock {
    attentions: Vec<Transformer2d>,
    resnets: Vec<Resnet>,
    downsamplers: Vec<Resample>,
}

/// UNetMidBlock2DCrossAttn: resnets.0, attentions.0, resnets.1.
#[derive(Module, Debug)]
struct MidBlock {
    attentions: Vec<Transformer2d>,
    resnets: Vec<Resnet>,
}

/// CrossAttnUpBlock2D or UpBlock2D; `upsamplers` holds the conv after the nearest x2, except at the
/// last level.
#[derive(Module, Debug)]
struct UpBlock {
    attentions: Vec<Transformer2d>,
    resnets: Vec<Resnet>,
    upsamplers: Vec<Resample>,
}

/// Downsample2D / Upsample2D: their 3x3 conv.
#[derive(Module, Debug)]
struct Resample {
    conv: Conv2d,
}

/// ResnetBlock2D (time_embedding_norm "default").
#[derive(Module, Debug)]
struct Resnet {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
    output_scale_factor: f64,
}

/// Transformer2DModel, continuous input, one BasicTransformerBlock.
#[derive(Module, Debug)]
struct Transformer2d {
    norm: GroupNorm,
    proj_in: Projection,
    transformer_blocks: Vec<BasicTransformerBlock>,
    proj_out: Projection,
}

/// proj_in / proj_out: a 1x1 Conv2d on pixels (SD 1.x) or a Linear on tokens (use_linear_projection,
/// SD 2.x). The variant name is not part of the tensor path (weights.rs).
#[derive(Module, Debug)]
enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

#[derive(Module, Debug)]
struct BasicTransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff: FeedForward,
}

/// diffusers Attention: bias-free q/k/v, `to_out` = [Linear with bias, Dropout].
#[derive(Module, Debug)]
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Vec<Linear>,
    heads: usize,
}

/// FeedForward with GEGLU: `ff.net.0` -> `geglu`, `ff.net.2` -> `out` (RENAMES).
#[derive(Module, Debug)]
struct FeedForward {
    geglu: Geglu,
    out: Linear,
}

/// GEGLU: one projection to value and gate, value * gelu(gate) (exact erf GELU, as diffusers).
#[derive(Module, Debug)]
struct Geglu {
    proj: Linear,
}

// ---- construction (parameters are lazily initialised: Loaded::new overwrites every one) ----------

fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .init(device)
}

fn linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_bias(bias).init(device)
}

fn group_norm(cfg: &Config, channels: usize, eps: f64, device: &Device) -> GroupNorm {
    GroupNormConfig::new(cfg.norm_num_groups, channels).with_epsilon(eps).init(device)
}

impl Resnet {
    fn new(cfg: &Config, cin: usize, cout: usize, output_scale_factor: f64, device: &Device) -> Self {
        Resnet {
            norm1: group_norm(cfg, cin, cfg.norm_eps, device),
            conv1: conv(cin, cout, 3, 1, device),
            time_emb_proj: linear(cfg.time_embed_dim(), cout, true, device),
            norm2: group_norm(cfg, cout, cfg.norm_eps, device),
            conv2: conv(cout, cout, 3, 1, device),
            conv_shortcut: (cin != cout).then(|| conv(cin, cout, 1, 1, device)),
            output_scale_factor,
        }
    }
}

impl Attention {
    fn new(c: usize, kv_dim: usize, heads: usize, device: &Device) -> Self {
        Attention {
            to_q: linear(c, c, false, device),
            to_k: linear(kv_dim, c, false, device),
            to_v: linear(kv_dim, c, false, device),
            to_out: vec![linear(c, c, true, device)],
            heads,
        }
    }
}

impl Transformer2d {
    fn new(cfg: &Config, c: usize, heads: usize, device: &Device) -> Self {
        let proj = || {
            if cfg.use_linear_projection { Projection::Linear(linear(c, c, true, device)) } else { Projection::Conv(conv(c, c, 1, 1, device)) }
        };
        let layer_norm = || LayerNormConfig::new(c).with_epsilon(TRANSFORMER_LAYER_NORM_EPS).init(device);
        Transformer2d {
            norm: group_norm(cfg, c, TRANSFORMER_GROUP_NORM_EPS, device),
            proj_in: proj(),
            transformer_blocks: vec![BasicTransformerBlock {
                norm1: layer_norm(),
                attn1: Attention::new(c, c, heads, device),
                norm2: layer_norm(),
                attn2: Attention::new(c, cfg.cross_attention_dim, heads, device),
                norm3: layer_norm(),
                ff: FeedForward { geglu: Geglu { proj: linear(c, 8 * c, true, device) }, out: linear(4 * c, c, true, device) },
            }],
            proj_out: proj(),
        }
    }
}

impl UNet2DConditionModel {
    /// The layout of arena/families/unet2d_condition.py `_layout` (diffusers' __init__).
    fn new(cfg: &Config, device: &Device) -> Self {
        let ch = &cfg.block_out_channels;
        let (n, temb) = (ch.len(), cfg.time_embed_dim());
        // A block without cross-attention has no transformers; the last level has no resampler.
        let attentions = |cross: bool, count: usize, c: usize, level: usize| -> Vec<Transformer2d> {
            let count = if cross { count } else { 0 };
            (0..count).map(|_| Transformer2d::new(cfg, c, cfg.heads(level), device)).collect()
        };
        let resample = |c: usize, stride: usize, last: bool| -> Vec<Resample> {
            if last { Vec::new() } else { vec![Resample { conv: conv(c, c, 3, stride, device) }] }
        };
        let down_blocks = (0..n)
            .map(|i| {
                let (cin, cout) = (ch[i.saturating_sub(1)], ch[i]);
                DownBlock {
                    attentions: attentions(cfg.down_block_types[i] == "CrossAttnDownBlock2D", cfg.layers_per_block, cout, i),
                    resnets: (0..cfg.layers_per_block).map(|j| Resnet::new(cfg, if j == 0 { cin } else { cout }, cout, 1.0, device)).collect(),
                    downsamplers: resample(cout, 2, i == n - 1),
                }
            })
            .collect();
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let count = cfg.layers_per_block + 1;
        let up_blocks = (0..n)
            .map(|i| {
                // resnet j sees cat(x, skip): x has prev_out channels (j == 0) or cout; the skip has
                // cout channels, except the last one, which comes from the next level down (in_ch).
                let (prev_out, cout, in_ch) = (rev[i.saturating_sub(1)], rev[i], rev[(i + 1).min(n - 1)]);
                let resnet = |j: usize| {
                    let skip = if j == count - 1 { in_ch } else { cout };
                    Resnet::new(cfg, if j == 0 { prev_out } else { cout } + skip, cout, 1.0, device)
                };
                UpBlock {
                    attentions: attentions(cfg.up_block_types[i] == "CrossAttnUpBlock2D", count, cout, n - 1 - i),
                    resnets: (0..count).map(resnet).collect(),
                    upsamplers: resample(cout, 1, i == n - 1),
                }
            })
            .collect();
        let last = ch[n - 1];
        let mid_resnet = || Resnet::new(cfg, last, last, cfg.mid_block_scale_factor, device);
        UNet2DConditionModel {
            conv_in: conv(cfg.in_channels, ch[0], 3, 1, device),
            time_embedding: TimestepEmbedding { linear_1: linear(ch[0], temb, true, device), linear_2: linear(temb, temb, true, device) },
            down_blocks,
            up_blocks,
            mid_block: MidBlock { attentions: attentions(true, 1, last, n - 1), resnets: vec![mid_resnet(), mid_resnet()] },
            conv_norm_out: group_norm(cfg, ch[0], cfg.norm_eps, device),
            conv_out: conv(ch[0], cfg.out_channels, 3, 1, device),
        }
    }
}

// ---- the forward ----------------------------------------------------------------------------------

impl Resnet {
    /// x [b, cin, h, w], `temb_act` = SiLU(temb) [b, T] -> [b, cout, h, w].
    fn forward(&self, x: Tensor<4>, temb_act: Tensor<2>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let t = self.time_emb_proj.forward(temb_act).unsqueeze_dims::<4>(&[2, 3]); // [b, cout, 1, 1]
        let h = self.conv2.forward(silu(self.norm2.forward(h + t)));
        let shortcut = match &self.conv_shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        let out = shortcut + h;
        if self.output_scale_factor == 1.0 { out } else { out / self.output_scale_factor }
    }
}

impl Attention {
    /// x [b, n, c] attending to `context` [b, m, d] (x itself for self-attention); scores scaled by
    /// 1/sqrt(head_dim), no mask.
    fn forward(&self, x: Tensor<3>, context: Tensor<3>) -> Tensor<3> {
        let q = layers::split_heads(self.to_q.forward(x), self.heads);
        let k = layers::split_heads(self.to_k.forward(context.clone()), self.heads);
        let v = layers::split_heads(self.to_v.forward(context), self.heads);
        self.to_out[0].forward(layers::merge_heads(layers::attention(q, k, v, false)))
    }
}

impl FeedForward {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let proj = self.geglu.proj.forward(x); // [b, n, 8c]: value, then gate
        let inner = proj.dims()[2] / 2;
        let (value, gate) = (proj.clone().narrow(2, 0, inner), proj.narrow(2, inner, inner));
        self.out.forward(value * gelu(gate))
    }
}

impl BasicTransformerBlock {
    /// Pre-LayerNorm self-attention, cross-attention and GEGLU MLP, each with its residual.
    fn forward(&self, x: Tensor<3>, context: Tensor<3>) -> Tensor<3> {
        let h = self.norm1.forward(x.clone());
        let x = x + self.attn1.forward(h.clone(), h);
        let x = x.clone() + self.attn2.forward(self.norm2.forward(x), context);
        x.clone() + self.ff.forward(self.norm3.forward(x))
    }
}

impl Projection {
    /// Pixels [b, c, h, w] -> projected tokens [b, h*w, c] in diffusers' permute(0, 2, 3, 1) order.
    fn pixels_to_tokens(&self, x: Tensor<4>) -> Tensor<3> {
        match self {
            Projection::Conv(conv) => tokens(conv.forward(x)),
            Projection::Linear(linear) => linear.forward(tokens(x)),
        }
    }

    /// Tokens [b, h*w, c] -> projected pixels [b, c, h, w].
    fn tokens_to_pixels(&self, x: Tensor<3>, height: usize, width: usize) -> Tensor<4> {
        match self {
            Projection::Conv(conv) => conv.forward(pixels(x, height, width)),
            Projection::Linear(linear) => pixels(linear.forward(x), height, width),
        }
    }
}

/// [b, c, h, w] -> [b, h*w, c]
fn tokens(x: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).swap_dims(1, 2)
}

/// [b, h*w, c] -> [b, c, h, w]
fn pixels(x: Tensor<3>, height: usize, width: usize) -> Tensor<4> {
    let [b, _, c] = x.dims();
    x.swap_dims(1, 2).reshape([b, c, height, width])
}

impl Transformer2d {
    /// GroupNorm -> proj_in -> the block -> proj_out, + x.
    fn forward(&self, x: Tensor<4>, context: Tensor<3>) -> Tensor<4> {
        let [_, _, height, width] = x.dims();
        let mut h = self.proj_in.pixels_to_tokens(self.norm.forward(x.clone()));
        for block in &self.transformer_blocks {
            h = block.forward(h, context.clone());
        }
        self.proj_out.tokens_to_pixels(h, height, width) + x
    }
}

impl UNet2DConditionModel {
    /// sample [b, cin, h, w], the timestep sinusoid [b, c0], context [b, m, d] -> the predicted noise
    /// [b, cout, h, w].
    fn forward(&self, sample: Tensor<4>, t_sinusoid: Tensor<2>, context: Tensor<3>) -> Tensor<4> {
        let emb = &self.time_embedding;
        let temb = emb.linear_2.forward(silu(emb.linear_1.forward(t_sinusoid)));
        let temb_act = silu(temb); // every resnet applies SiLU before its time_emb_proj

        let mut x = self.conv_in.forward(sample);
        let mut skips = vec![x.clone()];
        for block in &self.down_blocks {
            for (j, resnet) in block.resnets.iter().enumerate() {
                x = resnet.forward(x, temb_act.clone());
                if let Some(transformer) = block.attentions.get(j) {
                    x = transformer.forward(x, context.clone());
                }
                skips.push(x.clone());
            }
            for down in &block.downsamplers {
                x = down.conv.forward(x);
                skips.push(x.clone());
            }
        }

        let mid = &self.mid_block;
        x = mid.resnets[0].forward(x, temb_act.clone());
        x = mid.attentions[0].forward(x, context.clone());
        x = mid.resnets[1].forward(x, temb_act.clone());

        for block in &self.up_blocks {
            for (j, resnet) in block.resnets.iter().enumerate() {
                // skips are consumed last-in, first-out; the count matches by construction
                let skip = skips.pop().expect("one skip connection per up-block resnet");
                x = resnet.forward(Tensor::cat(vec![x, skip], 1), temb_act.clone());
                if let Some(transformer) = block.attentions.get(j) {
                    x = transformer.forward(x, context.clone());
                }
            }
            for up in &block.upsamplers {
                let nearest = InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor([2.0, 2.0]);
                x = up.conv.forward(interpolate(x, nearest));
            }
        }

        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }
}

/// diffusers get_timestep_embedding as a [b, dim] tensor (arena_common::tables).
fn timestep_sinusoid(timesteps: &[i64], dim: usize, flip_sin_to_cos: bool, freq_shift: f64, device: &Device) -> Tensor<2> {
    let values = tables::timestep_sinusoid(timesteps, dim, flip_sin_to_cos, freq_shift);
    Tensor::from_data(TensorData::new(values, [timesteps.len(), dim]), device)
}

// ---- the workloads --------------------------------------------------------------------------------

/// One UNet call's inputs, on the device of the module that runs it; the timesteps stay on the host
/// (the sinusoid is computed there).
struct Call {
    sample: Tensor<4>,
    timesteps: Vec<i64>,
    context: Tensor<3>,
}

enum State {
    Empty,
    Forward(Call),
    Training { call: Call, noise: Tensor<4> },
}

struct Unet {
    cfg: Config,
    loaded: Loaded<UNet2DConditionModel>,
    device: Device,
    state: State,
}

impl Unet {
    fn forward(&self, m: &UNet2DConditionModel, call: &Call) -> Tensor<4> {
        let cfg = &self.cfg;
        let sample = if cfg.center_input_sample { call.sample.clone() * 2.0 - 1.0 } else { call.sample.clone() };
        let t = timestep_sinusoid(&call.timesteps, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift, &sample.device());
        m.forward(sample, t, call.context.clone())
    }

    fn call(inputs: &Arrays, device: &Device) -> Result<Call> {
        let sample: Tensor<4> = layers::input(inputs, "sample", device)?;
        let timesteps = match &get(inputs, "timestep")?.data {
            HostData::I64(values) => values.clone(),
            HostData::F32(_) => return Err(Error("input \"timestep\" is float32; expected int64".into())),
        };
        let batch = sample.dims()[0];
        let timesteps = match timesteps.len() {
            1 => vec![timesteps[0]; batch], // diffusers expands a single timestep over the batch
            n if n == batch => timesteps,
            n => return Err(Error(format!("input \"timestep\" has {n} entries for a batch of {batch}"))),
        };
        Ok(Call { sample, timesteps, context: layers::input(inputs, "encoder_hidden_states", device)? })
    }
}

impl Family for Unet {
    type Module = UNet2DConditionModel;

    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        self.state = match workload {
            Workload::Inference | Workload::Latency => State::Forward(Self::call(inputs, &self.device)?),
            Workload::Training => {
                let train_dev = train_device(&self.device);
                State::Training { call: Self::call(inputs, &train_dev)?, noise: layers::input(inputs, "noise", &train_dev)? }
            }
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => return Err(Error("run before setup".into())),
            State::Forward(call) => Last::output("sample", self.forward(&self.loaded.valid, call)),
            State::Training { call, noise } => {
                let pred = self.forward(&self.loaded.train, call);
                Last::from_loss((pred - noise.clone()).square().mean())
            }
        })
    }

    fn loaded(&self) -> &Loaded<UNet2DConditionModel> {
        &self.loaded
    }
}
