//! The SD 1.x / 2.x denoising UNet in Candle, after diffusers' UNet2DConditionModel (the configurations
//! arena/families/unet2d_condition.py accepts): sinusoidal timestep embedding -> TimestepEmbedding,
//! conv_in, down blocks (ResnetBlock2D [+ Transformer2DModel] x layers_per_block, stride-2 conv except
//! the last level), mid block (resnet, transformer, resnet), up blocks (layers_per_block + 1 resnets on
//! cat(x, skip) [+ transformers], nearest x2 + conv except the last), GroupNorm -> SiLU -> conv_out.
//!
//! inference / latency: one UNet call ("sample", the predicted noise; latency is the same call at the
//! latency batch, which the inputs already have). training: mean((unet(x_t, t, context) - noise)^2),
//! forward + backward, every tensor trainable (the UNet has no buffers).
//!
//! Deviations (none change the arithmetic): SiLU(temb) is computed once per call and shared by every
//! resnet's time_emb_proj (diffusers recomputes the same value in each ResnetBlock2D); the timestep
//! sinusoid is computed on the host in f32, as diffusers computes it (it carries no gradient).
//! GroupNorm is candle-nn's, built from basic (differentiable) ops, in both modes; LayerNorm and the
//! attention softmax are the fused kernels for inference and the differentiable forms for training.

use candle_core::{Device, Module, Result, Tensor, D};

use arena_common::tables;
use arena_common::config::{self, Unet as Config};
use arena_common::{Arrays, NativeModel, Workload};

use crate::layers::{self, Last, Mode, Params};
use crate::{native_error, Family, Native};

/// Fixed in diffusers (not config fields): Transformer2DModel's GroupNorm eps and BasicTransformerBlock's
/// LayerNorm eps.
const TRANSFORMER_GROUP_NORM_EPS: f64 = 1e-6;
const TRANSFORMER_LAYER_NORM_EPS: f64 = 1e-5;

pub fn build(config_json: &str, weights: Arrays, device: &Device) -> arena_common::Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("unet2d_condition", config_json)?;
    check(&cfg)?;
    let params = Params::load(weights, &parameter_shapes(&cfg), device).map_err(native_error)?;
    Ok(Box::new(Native::new(Unet { cfg, params, state: State::Empty })))
}

/// What this implementation relies on that the Python Config validates; checked again so that a bad
/// config fails at build with a message rather than deep in a forward.
fn check(cfg: &Config) -> arena_common::Result<()> {
    let n = cfg.block_out_channels.len();
    let bad = |what: String| Err(arena_common::Error(format!("unet2d_condition config: {what}")));
    if n == 0 || cfg.down_block_types.len() != n || cfg.up_block_types.len() != n {
        return bad(format!("down_block_types / up_block_types need one entry per block_out_channels ({n})"));
    }
    for kind in &cfg.down_block_types {
        if kind != "CrossAttnDownBlock2D" && kind != "DownBlock2D" {
            return bad(format!("unknown down block type {kind:?}"));
        }
    }
    for kind in &cfg.up_block_types {
        if kind != "CrossAttnUpBlock2D" && kind != "UpBlock2D" {
            return bad(format!("unknown up block type {kind:?}"));
        }
    }
    if let config::HeadsPerLevel::PerLevel(h) = &cfg.attention_head_dim {
        if h.len() != n {
            return bad(format!("attention_head_dim has {} entries, needs {n}", h.len()));
        }
    }
    Ok(())
}

fn resnet_shapes(p: &str, cin: usize, cout: usize, temb: usize) -> Vec<(String, Vec<usize>)> {
    let mut shapes = vec![
        (format!("{p}.norm1.weight"), vec![cin]),
        (format!("{p}.norm1.bias"), vec![cin]),
        (format!("{p}.conv1.weight"), vec![cout, cin, 3, 3]),
        (format!("{p}.conv1.bias"), vec![cout]),
        (format!("{p}.time_emb_proj.weight"), vec![cout, temb]),
        (format!("{p}.time_emb_proj.bias"), vec![cout]),
        (format!("{p}.norm2.weight"), vec![cout]),
        (format!("{p}.norm2.bias"), vec![cout]),
        (format!("{p}.conv2.weight"), vec![cout, cout, 3, 3]),
        (format!("{p}.conv2.bias"), vec![cout]),
    ];
    if cin != cout {
        shapes.push((format!("{p}.conv_shortcut.weight"), vec![cout, cin, 1, 1]));
        shapes.push((format!("{p}.conv_shortcut.bias"), vec![cout]));
    }
    shapes
}

/// Transformer2DModel with one BasicTransformerBlock, in diffusers' registration order.
fn transformer_shapes(p: &str, c: usize, context_dim: usize, linear_proj: bool) -> Vec<(String, Vec<usize>)> {
    let proj = if linear_proj { vec![c, c] } else { vec![c, c, 1, 1] };
    let b = format!("{p}.transformer_blocks.0");
    let mut shapes = vec![
        (format!("{p}.norm.weight"), vec![c]),
        (format!("{p}.norm.bias"), vec![c]),
        (format!("{p}.proj_in.weight"), proj.clone()),
        (format!("{p}.proj_in.bias"), vec![c]),
        (format!("{b}.norm1.weight"), vec![c]),
        (format!("{b}.norm1.bias"), vec![c]),
    ];
    for (attn, kv_dim) in [("attn1", c), ("attn2", context_dim)] {
        shapes.extend([
            (format!("{b}.{attn}.to_q.weight"), vec![c, c]),
            (format!("{b}.{attn}.to_k.weight"), vec![c, kv_dim]),
            (format!("{b}.{attn}.to_v.weight"), vec![c, kv_dim]),
            (format!("{b}.{attn}.to_out.0.weight"), vec![c, c]),
            (format!("{b}.{attn}.to_out.0.bias"), vec![c]),
        ]);
        if attn == "attn1" {
            shapes.push((format!("{b}.norm2.weight"), vec![c]));
            shapes.push((format!("{b}.norm2.bias"), vec![c]));
        }
    }
    shapes.extend([
        (format!("{b}.norm3.weight"), vec![c]),
        (format!("{b}.norm3.bias"), vec![c]),
        (format!("{b}.ff.net.0.proj.weight"), vec![8 * c, c]), // GEGLU: value and gate
        (format!("{b}.ff.net.0.proj.bias"), vec![8 * c]),
        (format!("{b}.ff.net.2.weight"), vec![c, 4 * c]),
        (format!("{b}.ff.net.2.bias"), vec![c]),
        (format!("{p}.proj_out.weight"), proj),
        (format!("{p}.proj_out.bias"), vec![c]),
    ]);
    shapes
}

/// Every tensor of the diffusers state dict, in the order arena/families/unet2d_condition.py lists them
/// (conv_in, time embedding, down, up, mid, out).
pub fn parameter_shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let ch = &cfg.block_out_channels;
    let (temb, n, ctx, lin) = (cfg.time_embed_dim(), ch.len(), cfg.cross_attention_dim, cfg.use_linear_projection);
    let mut shapes = vec![
        ("conv_in.weight".to_string(), vec![ch[0], cfg.in_channels, 3, 3]),
        ("conv_in.bias".to_string(), vec![ch[0]]),
        ("time_embedding.linear_1.weight".to_string(), vec![temb, ch[0]]),
        ("time_embedding.linear_1.bias".to_string(), vec![temb]),
        ("time_embedding.linear_2.weight".to_string(), vec![temb, temb]),
        ("time_embedding.linear_2.bias".to_string(), vec![temb]),
    ];
    for (i, kind) in cfg.down_block_types.iter().enumerate() {
        let (p, cin, cout) = (format!("down_blocks.{i}"), ch[i.saturating_sub(1)], ch[i]);
        if kind == "CrossAttnDownBlock2D" {
            for j in 0..cfg.layers_per_block {
                shapes.extend(transformer_shapes(&format!("{p}.attentions.{j}"), cout, ctx, lin));
            }
        }
        for j in 0..cfg.layers_per_block {
            shapes.extend(resnet_shapes(&format!("{p}.resnets.{j}"), if j == 0 { cin } else { cout }, cout, temb));
        }
        if i < n - 1 {
            shapes.push((format!("{p}.downsamplers.0.conv.weight"), vec![cout, cout, 3, 3]));
            shapes.push((format!("{p}.downsamplers.0.conv.bias"), vec![cout]));
        }
    }
    let rev: Vec<usize> = ch.iter().rev().copied().collect();
    for (i, kind) in cfg.up_block_types.iter().enumerate() {
        // resnet j sees cat(x, skip): x has prev_out channels (j == 0) or cout; the skip has cout
        // channels, except the last one, which comes from the next level down (in_ch).
        let (p, prev_out, cout, in_ch) = (format!("up_blocks.{i}"), rev[i.saturating_sub(1)], rev[i], rev[(i + 1).min(n - 1)]);
        let count = cfg.layers_per_block + 1;
        if kind == "CrossAttnUpBlock2D" {
            for j in 0..count {
                shapes.extend(transformer_shapes(&format!("{p}.attentions.{j}"), cout, ctx, lin));
            }
        }
        for j in 0..count {
            let skip = if j == count - 1 { in_ch } else { cout };
            shapes.extend(resnet_shapes(&format!("{p}.resnets.{j}"), if j == 0 { prev_out } else { cout } + skip, cout, temb));
        }
        if i < n - 1 {
            shapes.push((format!("{p}.upsamplers.0.conv.weight"), vec![cout, cout, 3, 3]));
            shapes.push((format!("{p}.upsamplers.0.conv.bias"), vec![cout]));
        }
    }
    let last = ch[n - 1];
    shapes.extend(transformer_shapes("mid_block.attentions.0", last, ctx, lin));
    shapes.extend(resnet_shapes("mid_block.resnets.0", last, last, temb));
    shapes.extend(resnet_shapes("mid_block.resnets.1", last, last, temb));
    shapes.extend([
        ("conv_norm_out.weight".to_string(), vec![ch[0]]),
        ("conv_norm_out.bias".to_string(), vec![ch[0]]),
        ("conv_out.weight".to_string(), vec![cfg.out_channels, ch[0], 3, 3]),
        ("conv_out.bias".to_string(), vec![cfg.out_channels]),
    ]);
    shapes
}

/// diffusers get_timestep_embedding as a [B, dim] tensor (arena_common::tables).
fn timestep_sinusoid(timesteps: &[i64], dim: usize, flip_sin_to_cos: bool, freq_shift: f64, device: &Device) -> Result<Tensor> {
    Tensor::from_vec(tables::timestep_sinusoid(timesteps, dim, flip_sin_to_cos, freq_shift), (timesteps.len(), dim), device)
}

enum State {
    Empty,
    Forward { sample: Tensor, timestep: Tensor, context: Tensor },
    Training { sample: Tensor, timestep: Tensor, context: Tensor, noise: Tensor },
}


struct Unet {
    cfg: Config,
    params: Params,
    state: State,
}

/// The parameters of one forward, read in one mode.
struct Weights<'a> {
    params: &'a Params,
    mode: Mode,
}

impl Weights<'_> {
    fn get(&self, name: &str) -> Result<Tensor> {
        self.params.get(name, self.mode)
    }

    fn has(&self, name: &str) -> bool {
        self.params.names().iter().any(|n| n == name)
    }

    fn linear(&self, name: &str, x: &Tensor) -> Result<Tensor> {
        let bias = format!("{name}.bias");
        let bias = if self.has(&bias) { Some(self.get(&bias)?) } else { None };
        layers::linear(x, &self.get(&format!("{name}.weight"))?, bias.as_ref())
    }

    /// Conv2d [B, C, H, W] with PyTorch's [out, in, k, k] kernel and a bias.
    fn conv(&self, name: &str, x: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
        let weight = self.get(&format!("{name}.weight"))?;
        let bias = self.get(&format!("{name}.bias"))?;
        let y = x.conv2d(&weight, padding, stride, 1, 1)?;
        y.broadcast_add(&bias.reshape((1, bias.dim(0)?, 1, 1))?)
    }

    fn group_norm(&self, name: &str, x: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
        let (weight, bias) = (self.get(&format!("{name}.weight"))?, self.get(&format!("{name}.bias"))?);
        let channels = weight.dim(0)?;
        candle_nn::GroupNorm::new(weight, bias, channels, groups, eps)?.forward(x)
    }

    fn layer_norm(&self, name: &str, x: &Tensor) -> Result<Tensor> {
        let (weight, bias) = (self.get(&format!("{name}.weight"))?, self.get(&format!("{name}.bias"))?);
        layers::layer_norm(x, &weight, &bias, TRANSFORMER_LAYER_NORM_EPS, self.mode)
    }
}

impl Unet {
    /// ResnetBlock2D (time_embedding_norm "default"); `temb_act` is SiLU(temb) [B, T].
    fn resnet(&self, w: &Weights, name: &str, x: &Tensor, temb_act: &Tensor, scale: f64) -> Result<Tensor> {
        let (groups, eps) = (self.cfg.norm_num_groups, self.cfg.norm_eps);
        let h = w.group_norm(&format!("{name}.norm1"), x, groups, eps)?.silu()?;
        let h = w.conv(&format!("{name}.conv1"), &h, 1, 1)?;
        let t = w.linear(&format!("{name}.time_emb_proj"), temb_act)?.unsqueeze(2)?.unsqueeze(3)?;
        let h = h.broadcast_add(&t)?;
        let h = w.group_norm(&format!("{name}.norm2"), &h, groups, eps)?.silu()?;
        let h = w.conv(&format!("{name}.conv2"), &h, 1, 1)?;
        let shortcut = if w.has(&format!("{name}.conv_shortcut.weight")) { w.conv(&format!("{name}.conv_shortcut"), x, 1, 0)? } else { x.clone() };
        let out = (shortcut + h)?;
        if scale == 1.0 { Ok(out) } else { out / scale }
    }

    /// diffusers Attention (AttnProcessor2_0): bias-free q/k/v, to_out.0 with bias; x [B, N, C],
    /// context [B, M, D], scores scaled by 1/sqrt(head_dim).
    fn attention(&self, w: &Weights, name: &str, x: &Tensor, context: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let m = context.dim(1)?;
        let d = c / heads;
        let q = w.linear(&format!("{name}.to_q"), x)?.reshape((b, n, heads, d))?.transpose(1, 2)?;
        let k = w.linear(&format!("{name}.to_k"), context)?.reshape((b, m, heads, d))?.transpose(1, 2)?;
        let v = w.linear(&format!("{name}.to_v"), context)?.reshape((b, m, heads, d))?.transpose(1, 2)?;
        let o = layers::attention(&q, &k, &v, None, w.mode)?.transpose(1, 2)?.reshape((b, n, c))?;
        w.linear(&format!("{name}.to_out.0"), &o)
    }

    /// BasicTransformerBlock: pre-LayerNorm self-attention, cross-attention and GEGLU MLP, each residual.
    fn transformer_block(&self, w: &Weights, name: &str, x: &Tensor, context: &Tensor, heads: usize) -> Result<Tensor> {
        let h = w.layer_norm(&format!("{name}.norm1"), x)?;
        let x = (x + self.attention(w, &format!("{name}.attn1"), &h, &h, heads)?)?;
        let h = w.layer_norm(&format!("{name}.norm2"), &x)?;
        let x = (&x + self.attention(w, &format!("{name}.attn2"), &h, context, heads)?)?;
        let h = w.layer_norm(&format!("{name}.norm3"), &x)?;
        let proj = w.linear(&format!("{name}.ff.net.0.proj"), &h)?;
        let inner = proj.dim(D::Minus1)? / 2;
        let (value, gate) = (proj.narrow(D::Minus1, 0, inner)?, proj.narrow(D::Minus1, inner, inner)?);
        let ff = w.linear(&format!("{name}.ff.net.2"), &(value * gate.gelu_erf()?)?)?;
        x + ff
    }

    /// Transformer2DModel (continuous input, one block): GroupNorm -> proj_in -> block -> proj_out, + x.
    /// proj_in/out are 1x1 convs (SD 1.x) or Linear on the flattened pixels (use_linear_projection).
    fn transformer(&self, w: &Weights, name: &str, x: &Tensor, context: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, c, hgt, wdt) = x.dims4()?;
        let linear = self.cfg.use_linear_projection;
        let mut h = w.group_norm(&format!("{name}.norm"), x, self.cfg.norm_num_groups, TRANSFORMER_GROUP_NORM_EPS)?;
        if !linear {
            h = w.conv(&format!("{name}.proj_in"), &h, 1, 0)?;
        }
        // (B, HW, C) in diffusers' permute(0, 2, 3, 1) pixel order
        h = h.permute((0, 2, 3, 1))?.reshape((b, hgt * wdt, c))?;
        if linear {
            h = w.linear(&format!("{name}.proj_in"), &h)?;
        }
        h = self.transformer_block(w, &format!("{name}.transformer_blocks.0"), &h, context, heads)?;
        if linear {
            h = w.linear(&format!("{name}.proj_out"), &h)?;
        }
        h = h.reshape((b, hgt, wdt, c))?.permute((0, 3, 1, 2))?.contiguous()?;
        if !linear {
            h = w.conv(&format!("{name}.proj_out"), &h, 1, 0)?;
        }
        h + x
    }

    /// UNet2DConditionModel.forward: sample [B, Cin, H, W], timestep [B] int64, context [B, M, D] ->
    /// the predicted noise [B, Cout, H, W].
    fn forward(&self, sample: &Tensor, timestep: &Tensor, context: &Tensor, mode: Mode) -> Result<Tensor> {
        let cfg = &self.cfg;
        let w = Weights { params: &self.params, mode };
        let n = cfg.block_out_channels.len();
        let batch = sample.dim(0)?;
        let sample = if cfg.center_input_sample { ((sample * 2.0)? - 1.0)? } else { sample.clone() };

        let mut t: Vec<i64> = timestep.flatten_all()?.to_vec1::<i64>()?;
        if t.len() == 1 && batch > 1 {
            t = vec![t[0]; batch]; // diffusers expands a single timestep over the batch
        }
        let t_emb = timestep_sinusoid(&t, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift, sample.device())?;
        let temb = w.linear("time_embedding.linear_2", &w.linear("time_embedding.linear_1", &t_emb)?.silu()?)?;
        let temb_act = temb.silu()?; // every resnet applies SiLU before its time_emb_proj

        let mut x = w.conv("conv_in", &sample, 1, 1)?;
        let mut skips = vec![x.clone()];
        for (i, kind) in cfg.down_block_types.iter().enumerate() {
            for j in 0..cfg.layers_per_block {
                x = self.resnet(&w, &format!("down_blocks.{i}.resnets.{j}"), &x, &temb_act, 1.0)?;
                if kind == "CrossAttnDownBlock2D" {
                    x = self.transformer(&w, &format!("down_blocks.{i}.attentions.{j}"), &x, context, cfg.heads(i))?;
                }
                skips.push(x.clone());
            }
            if i < n - 1 {
                x = w.conv(&format!("down_blocks.{i}.downsamplers.0.conv"), &x, 2, 1)?;
                skips.push(x.clone());
            }
        }

        x = self.resnet(&w, "mid_block.resnets.0", &x, &temb_act, cfg.mid_block_scale_factor)?;
        x = self.transformer(&w, "mid_block.attentions.0", &x, context, cfg.heads(n - 1))?;
        x = self.resnet(&w, "mid_block.resnets.1", &x, &temb_act, cfg.mid_block_scale_factor)?;

        for (i, kind) in cfg.up_block_types.iter().enumerate() {
            for j in 0..cfg.layers_per_block + 1 {
                let skip = skips.pop().ok_or_else(|| candle_core::Error::Msg("ran out of skip connections".into()))?;
                x = Tensor::cat(&[&x, &skip], 1)?; // skips are consumed last-in, first-out
                x = self.resnet(&w, &format!("up_blocks.{i}.resnets.{j}"), &x, &temb_act, 1.0)?;
                if kind == "CrossAttnUpBlock2D" {
                    x = self.transformer(&w, &format!("up_blocks.{i}.attentions.{j}"), &x, context, cfg.heads(n - 1 - i))?;
                }
            }
            if i < n - 1 {
                let (_, _, h, wd) = x.dims4()?;
                x = w.conv(&format!("up_blocks.{i}.upsamplers.0.conv"), &x.upsample_nearest2d(2 * h, 2 * wd)?, 1, 1)?;
            }
        }

        let x = w.group_norm("conv_norm_out", &x, cfg.norm_num_groups, cfg.norm_eps)?.silu()?;
        w.conv("conv_out", &x, 1, 1)
    }
}

impl Family for Unet {
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        let dev = self.params.device.clone();
        let get = |name: &str| layers::input(inputs, name, &dev);
        self.state = match workload {
            Workload::Inference | Workload::Latency => {
                State::Forward { sample: get("sample")?, timestep: get("timestep")?, context: get("encoder_hidden_states")? }
            }
            Workload::Training => State::Training {
                sample: get("sample")?,
                timestep: get("timestep")?,
                context: get("encoder_hidden_states")?,
                noise: get("noise")?,
            },
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => candle_core::bail!("run before setup"),
            State::Forward { sample, timestep, context } => Last::output("sample", self.forward(sample, timestep, context, Mode::Infer)?),
            State::Training { sample, timestep, context, noise } => {
                let pred = self.forward(sample, timestep, context, Mode::Train)?;
                let loss = (pred - noise)?.sqr()?.mean_all()?;
                Last::from_loss(loss)?
            }
        })
    }

    fn params(&self) -> &Params {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arena_common::HostArray;

    fn tiny() -> Config {
        config::parse(
            "unet2d_condition",
            r#"{"in_channels": 4, "out_channels": 4, "center_input_sample": false, "flip_sin_to_cos": true,
                "freq_shift": 0, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "block_out_channels": [16, 32],
                "layers_per_block": 1, "mid_block_scale_factor": 1.0, "norm_num_groups": 8, "norm_eps": 1e-5,
                "cross_attention_dim": 8, "attention_head_dim": 4, "use_linear_projection": false}"#,
        )
        .unwrap()
    }

    fn model(cfg: Config) -> Unet {
        let dev = Device::Cpu;
        let mut weights = Arrays::new();
        for (name, shape) in parameter_shapes(&cfg) {
            let t = Tensor::randn(0f32, 0.2, shape.clone(), &dev).unwrap();
            weights.insert(name, layers::to_host(&t).unwrap());
        }
        let params = Params::load(weights, &parameter_shapes(&cfg), &dev).unwrap();
        Unet { cfg, params, state: State::Empty }
    }

    fn inputs(training: bool) -> Arrays {
        let dev = Device::Cpu;
        let mut inputs = Arrays::new();
        let mut put = |name: &str, t: Tensor| inputs.insert(name.into(), layers::to_host(&t).unwrap());
        put("sample", Tensor::randn(0f32, 1.0, (2, 4, 8, 8), &dev).unwrap());
        put("encoder_hidden_states", Tensor::randn(0f32, 1.0, (2, 3, 8), &dev).unwrap());
        if training {
            put("noise", Tensor::randn(0f32, 1.0, (2, 4, 8, 8), &dev).unwrap());
        }
        inputs.insert("timestep".into(), HostArray::i64(vec![2], vec![500, 500]).unwrap());
        inputs
    }

    #[test]
    fn both_modes_agree_and_training_reaches_every_parameter() {
        let mut unet = model(tiny());
        unet.setup(Workload::Inference, &inputs(false)).unwrap();
        let sample = unet.run().unwrap().fetch(&unet.params, &[]).unwrap().remove("sample").unwrap();
        assert_eq!(sample.shape, vec![2, 4, 8, 8]);
        let (s, t, c) = match &unet.state {
            State::Forward { sample, timestep, context } => (sample.clone(), timestep.clone(), context.clone()),
            _ => unreachable!(),
        };
        let fused = unet.forward(&s, &t, &c, Mode::Infer).unwrap();
        let slow = unet.forward(&s, &t, &c, Mode::Train).unwrap();
        let diff = (fused - slow).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-4, "fused vs differentiable forward differ by {diff}");

        unet.setup(Workload::Training, &inputs(true)).unwrap();
        let out = unet.run().unwrap().fetch(&unet.params, &[]).unwrap();
        assert!(out.contains_key("loss"));
        assert_eq!(out.len(), 1 + parameter_shapes(&unet.cfg).len());
    }
}
