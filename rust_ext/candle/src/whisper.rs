//! Whisper in Candle, after transformers' WhisperForConditionalGeneration.
//!
//! Encoder: Conv1d(k3, pad 1) + exact GELU, Conv1d(k3, stride 2, pad 1) + exact GELU, plus the fixed
//! sinusoid table `model.encoder.embed_positions.weight` (read from the weights, frozen: requires_grad
//! is False in HF, so it gets no gradient), pre-LN layers, final LayerNorm. Decoder: token embedding +
//! learned positions, pre-LN layers with causal self-attention, cross-attention to the encoder output
//! and an MLP, final LayerNorm; logits = x @ embed_tokens^T (proj_out is tied, so the embedding's
//! gradient sums both uses). WhisperAttention: k_proj has no bias; the query is multiplied by
//! head_dim^-0.5 right after q_proj and the scores are not scaled again (HF's order). LayerNorm eps 1e-5.
//!
//! inference: encoder output and teacher-forced logits (no cache). latency: the encoder, every decoder
//! layer's cross-attention K/V and the prefix's self-attention K/V are computed once in `setup`; each
//! timed call decodes the next token at position = prefix length, its own K/V concatenated for that
//! call only (as the reference crops its cache back). training: mean cross-entropy of the logits
//! against `labels` (already shifted by the family, no shift here), forward + backward.

use candle_core::{Device, Result, Tensor};

use arena_common::config::{self, Whisper as Config};
use arena_common::{Arrays, NativeModel, Workload};

use crate::layers::{self, Last, Mode, Params};
use crate::{native_error, Family, Native};

/// The fixed sinusoid table (a buffer in HF: no gradient).
const ENCODER_POSITIONS: &str = "model.encoder.embed_positions.weight";
/// The token embedding; proj_out is tied to it.
const EMBED_TOKENS: &str = "model.decoder.embed_tokens.weight";
const DECODER_POSITIONS: &str = "model.decoder.embed_positions.weight";
const LAYER_NORM_EPS: f64 = 1e-5;

pub fn build(config_json: &str, weights: Arrays, device: &Device) -> arena_common::Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("whisper", config_json)?;
    let params = Params::load(weights, &parameter_shapes(&cfg), device).map_err(native_error)?;
    Ok(Box::new(Native::new(Whisper { cfg, params, state: State::Empty })))
}

/// Every tensor of the HF state dict except the tied proj_out, in arena/families/whisper.py's order.
pub fn parameter_shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let (d, m) = (cfg.d_model, cfg.num_mel_bins);
    let attention = |p: &str| -> Vec<(String, Vec<usize>)> {
        vec![
            (format!("{p}.k_proj.weight"), vec![d, d]),
            (format!("{p}.v_proj.weight"), vec![d, d]),
            (format!("{p}.v_proj.bias"), vec![d]),
            (format!("{p}.q_proj.weight"), vec![d, d]),
            (format!("{p}.q_proj.bias"), vec![d]),
            (format!("{p}.out_proj.weight"), vec![d, d]),
            (format!("{p}.out_proj.bias"), vec![d]),
        ]
    };
    let norm = |p: &str| -> Vec<(String, Vec<usize>)> { vec![(format!("{p}.weight"), vec![d]), (format!("{p}.bias"), vec![d])] };
    let mlp = |p: &str, ffn: usize| -> Vec<(String, Vec<usize>)> {
        vec![
            (format!("{p}.fc1.weight"), vec![ffn, d]),
            (format!("{p}.fc1.bias"), vec![ffn]),
            (format!("{p}.fc2.weight"), vec![d, ffn]),
            (format!("{p}.fc2.bias"), vec![d]),
        ]
    };
    let mut shapes = vec![
        ("model.encoder.conv1.weight".to_string(), vec![d, m, 3]),
        ("model.encoder.conv1.bias".to_string(), vec![d]),
        ("model.encoder.conv2.weight".to_string(), vec![d, d, 3]),
        ("model.encoder.conv2.bias".to_string(), vec![d]),
        (ENCODER_POSITIONS.to_string(), vec![cfg.max_source_positions, d]),
    ];
    for i in 0..cfg.encoder_layers {
        let p = format!("model.encoder.layers.{i}");
        shapes.extend(attention(&format!("{p}.self_attn")));
        shapes.extend(norm(&format!("{p}.self_attn_layer_norm")));
        shapes.extend(mlp(&p, cfg.encoder_ffn_dim));
        shapes.extend(norm(&format!("{p}.final_layer_norm")));
    }
    shapes.extend(norm("model.encoder.layer_norm"));
    shapes.push((EMBED_TOKENS.to_string(), vec![cfg.vocab_size, d]));
    shapes.push((DECODER_POSITIONS.to_string(), vec![cfg.max_target_positions, d]));
    for i in 0..cfg.decoder_layers {
        let p = format!("model.decoder.layers.{i}");
        shapes.extend(attention(&format!("{p}.self_attn")));
        shapes.extend(norm(&format!("{p}.self_attn_layer_norm")));
        shapes.extend(attention(&format!("{p}.encoder_attn")));
        shapes.extend(norm(&format!("{p}.encoder_attn_layer_norm")));
        shapes.extend(mlp(&p, cfg.decoder_ffn_dim));
        shapes.extend(norm(&format!("{p}.final_layer_norm")));
    }
    shapes.extend(norm("model.decoder.layer_norm"));
    shapes
}

/// Keys and values [batch, heads, positions, head_dim] of one attention.
type Kv = (Tensor, Tensor);

enum State {
    Empty,
    Inference { mel: Tensor, ids: Tensor },
    Latency { next: Tensor, cross: Vec<Kv>, past: Vec<Kv>, start: usize },
    Training { mel: Tensor, ids: Tensor, labels: Tensor },
}


struct Whisper {
    cfg: Config,
    params: Params,
    state: State,
}

impl Whisper {
    fn p(&self, name: &str, mode: Mode) -> Result<Tensor> {
        self.params.get(name, mode)
    }

    fn linear(&self, prefix: &str, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let weight = self.p(&format!("{prefix}.weight"), mode)?;
        let bias_name = format!("{prefix}.bias");
        // Whisper's k_proj is the only linear without a bias.
        let bias = if prefix.ends_with("k_proj") { None } else { Some(self.p(&bias_name, mode)?) };
        layers::linear(x, &weight, bias.as_ref())
    }

    fn layer_norm(&self, prefix: &str, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (w, b) = (self.p(&format!("{prefix}.weight"), mode)?, self.p(&format!("{prefix}.bias"), mode)?);
        layers::layer_norm(x, &w, &b, LAYER_NORM_EPS, mode)
    }

    /// [b, t, heads * d] -> [b, heads, t, d], contiguous.
    fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, t, width) = x.dims3()?;
        x.reshape((b, t, heads, width / heads))?.transpose(1, 2)?.contiguous()
    }

    /// k_proj (no bias) and v_proj of x, split into heads.
    fn keys_values(&self, prefix: &str, x: &Tensor, heads: usize, mode: Mode) -> Result<Kv> {
        let k = Self::split_heads(&self.linear(&format!("{prefix}.k_proj"), x, mode)?, heads)?;
        let v = Self::split_heads(&self.linear(&format!("{prefix}.v_proj"), x, mode)?, heads)?;
        Ok((k, v))
    }

    /// WhisperAttention with its K/V given: q_proj(x) * head_dim^-0.5, softmax(q k^T) v (no further
    /// scale), out_proj. `causal`: query i (the last of the keys' positions) sees keys up to its own.
    fn attend(&self, prefix: &str, x: &Tensor, kv: &Kv, heads: usize, causal: bool, mode: Mode) -> Result<Tensor> {
        let (b, t, width) = x.dims3()?;
        let head_dim = width / heads;
        let q = (self.linear(&format!("{prefix}.q_proj"), x, mode)? * (head_dim as f64).powf(-0.5))?;
        let q = Self::split_heads(&q, heads)?;
        let (k, v) = kv;
        let mut scores = q.matmul(&k.t()?.contiguous()?)?;
        let keys = k.dim(2)?;
        if causal && t > 1 {
            scores = scores.broadcast_add(&layers::causal_mask(t, keys, keys - t, x.device())?)?;
        }
        let out = layers::softmax_last(&scores, mode)?.matmul(v)?;
        let out = out.transpose(1, 2)?.reshape((b, t, width))?;
        self.linear(&format!("{prefix}.out_proj"), &out, mode)
    }

    fn mlp(&self, prefix: &str, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let h = self.linear(&format!("{prefix}.fc1"), x, mode)?.gelu_erf()?;
        self.linear(&format!("{prefix}.fc2"), &h, mode)
    }

    /// WhisperEncoder: mel [b, mel_bins, 2 * S] -> [b, S, d_model] after the final LayerNorm.
    fn encode(&self, mel: &Tensor, mode: Mode) -> Result<Tensor> {
        let c = &self.cfg;
        let (_, bins, frames) = mel.dims3()?;
        if bins != c.num_mel_bins || frames != c.num_frames() {
            candle_core::bail!("input_features has {bins} mel bins x {frames} frames, the model needs {} x {}", c.num_mel_bins, c.num_frames());
        }
        let conv = |x: &Tensor, name: &str, stride: usize| -> Result<Tensor> {
            let w = self.p(&format!("model.encoder.{name}.weight"), mode)?;
            let bias = self.p(&format!("model.encoder.{name}.bias"), mode)?;
            conv1d(x, &w, 1, stride, mode)?.broadcast_add(&bias.reshape((1, (), 1))?)?.gelu_erf()
        };
        let x = conv(mel, "conv1", 1)?;
        let x = conv(&x, "conv2", 2)?; // [b, d, S]
        // The sinusoid table is frozen: always read detached, so no graph is recorded for it.
        let positions = self.p(ENCODER_POSITIONS, Mode::Infer)?;
        let mut x = x.transpose(1, 2)?.broadcast_add(&positions)?;
        let heads = c.encoder_attention_heads;
        for i in 0..c.encoder_layers {
            let p = format!("model.encoder.layers.{i}");
            let h = self.layer_norm(&format!("{p}.self_attn_layer_norm"), &x, mode)?;
            let kv = self.keys_values(&format!("{p}.self_attn"), &h, heads, mode)?;
            x = (x + self.attend(&format!("{p}.self_attn"), &h, &kv, heads, false, mode)?)?;
            let h = self.layer_norm(&format!("{p}.final_layer_norm"), &x, mode)?;
            x = (&x + self.mlp(&p, &h, mode)?)?;
        }
        self.layer_norm("model.encoder.layer_norm", &x, mode)
    }

    /// Every decoder layer's encoder_attn K/V of the encoder output.
    fn cross_keys_values(&self, encoded: &Tensor, mode: Mode) -> Result<Vec<Kv>> {
        (0..self.cfg.decoder_layers)
            .map(|i| self.keys_values(&format!("model.decoder.layers.{i}.encoder_attn"), encoded, self.cfg.decoder_attention_heads, mode))
            .collect()
    }

    /// WhisperDecoder + tied proj_out: logits [b, t, vocab] of `ids` [b, t] at positions start..,
    /// attending to `past` (self-attention K/V per layer) and themselves; also the self-attention K/V
    /// of every layer, including the new tokens.
    fn decode(&self, ids: &Tensor, cross: &[Kv], start: usize, past: Option<&[Kv]>, mode: Mode) -> Result<(Tensor, Vec<Kv>)> {
        let c = &self.cfg;
        let (b, t) = ids.dims2()?;
        if start + t > c.max_target_positions {
            candle_core::bail!("decoder positions {start}..{} exceed max_target_positions ({})", start + t, c.max_target_positions);
        }
        let table = self.p(EMBED_TOKENS, mode)?;
        let positions = self.p(DECODER_POSITIONS, mode)?.narrow(0, start, t)?;
        let mut x = table.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, c.d_model))?.broadcast_add(&positions)?;
        let heads = c.decoder_attention_heads;
        let mut present = Vec::with_capacity(c.decoder_layers);
        for i in 0..c.decoder_layers {
            let p = format!("model.decoder.layers.{i}");
            let h = self.layer_norm(&format!("{p}.self_attn_layer_norm"), &x, mode)?;
            let (k, v) = self.keys_values(&format!("{p}.self_attn"), &h, heads, mode)?;
            let kv = match past {
                Some(past) => (Tensor::cat(&[&past[i].0, &k], 2)?, Tensor::cat(&[&past[i].1, &v], 2)?),
                None => (k, v),
            };
            x = (x + self.attend(&format!("{p}.self_attn"), &h, &kv, heads, true, mode)?)?;
            let h = self.layer_norm(&format!("{p}.encoder_attn_layer_norm"), &x, mode)?;
            x = (&x + self.attend(&format!("{p}.encoder_attn"), &h, &cross[i], heads, false, mode)?)?;
            let h = self.layer_norm(&format!("{p}.final_layer_norm"), &x, mode)?;
            x = (&x + self.mlp(&p, &h, mode)?)?;
            present.push(kv);
        }
        let x = self.layer_norm("model.decoder.layer_norm", &x, mode)?;
        Ok((layers::linear(&x, &table, None)?, present))
    }

    /// Encoder output and teacher-forced logits.
    fn forward(&self, mel: &Tensor, ids: &Tensor, mode: Mode) -> Result<(Tensor, Tensor)> {
        let encoded = self.encode(mel, mode)?;
        let cross = self.cross_keys_values(&encoded, mode)?;
        let (logits, _) = self.decode(ids, &cross, 0, None, mode)?;
        Ok((encoded, logits))
    }

    /// Mean cross-entropy of logits[:, i] against labels[:, i] (labels already shifted once).
    fn loss(&self, mel: &Tensor, ids: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let (_, logits) = self.forward(mel, ids, Mode::Train)?;
        let (b, t, v) = logits.dims3()?;
        layers::cross_entropy(&logits.reshape((b * t, v))?, &labels.reshape(b * t)?)
    }
}

/// Conv1d of x [b, c_in, l] with a PyTorch kernel [c_out, c_in, k], zero padding on both sides.
///
/// Inference takes candle's conv1d. Training takes an explicit im2col + matmul instead: candle 0.11.1's
/// CPU conv1d ignores a non-contiguous kernel's strides (`cpu_backend::conv1d` copies it to `kernel_c`
/// and then multiplies by the original buffer), and its own backward computes the kernel gradient as a
/// conv1d whose kernel is `grad.transpose(0, 1)`, non-contiguous whenever batch > 1, so the kernel
/// gradient comes out wrong (conv2d has the fix, conv1d does not). narrow/reshape/cat/matmul all have
/// backward, so this form gives every gradient.
pub fn conv1d(x: &Tensor, kernel: &Tensor, padding: usize, stride: usize, mode: Mode) -> Result<Tensor> {
    if mode == Mode::Infer {
        return x.conv1d(kernel, padding, stride, 1, 1);
    }
    let (b, c_in, l) = x.dims3()?;
    let (c_out, c_in_k, k) = kernel.dims3()?;
    if c_in != c_in_k || l + 2 * padding < k {
        candle_core::bail!("conv1d: input {:?} does not fit kernel {:?} with padding {padding}", x.dims(), kernel.dims());
    }
    let l_out = (l + 2 * padding - k) / stride + 1;
    // Right-pad far enough that every tap can take stride * l_out elements, then keep every stride-th.
    let right = (k - 1 + stride * l_out).saturating_sub(l + padding);
    let padded = x.pad_with_zeros(2, padding, right)?;
    let taps = (0..k)
        .map(|tap| {
            let window = padded.narrow(2, tap, stride * l_out)?;
            if stride == 1 {
                Ok(window)
            } else {
                window.reshape((b, c_in, l_out, stride))?.narrow(3, 0, 1)?.squeeze(3)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    // Columns [b, c_in * k, l_out] ordered (c_in, tap), as the kernel flattens.
    let columns = Tensor::stack(&taps, 2)?.reshape((b, c_in * k, l_out))?;
    kernel.reshape((c_out, c_in * k))?.broadcast_matmul(&columns)
}

impl Family for Whisper {
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        let dev = self.params.device.clone();
        let mel = layers::input(inputs, "input_features", &dev)?;
        let ids = layers::input(inputs, "decoder_input_ids", &dev)?;
        self.state = match workload {
            Workload::Inference => State::Inference { mel, ids },
            Workload::Training => State::Training { mel, ids, labels: layers::input(inputs, "labels", &dev)? },
            Workload::Latency => {
                let encoded = self.encode(&mel, Mode::Infer)?;
                let cross = self.cross_keys_values(&encoded, Mode::Infer)?;
                let (_, past) = self.decode(&ids, &cross, 0, None, Mode::Infer)?;
                State::Latency { next: layers::input(inputs, "next_decoder_input_ids", &dev)?, cross, past, start: ids.dim(1)? }
            }
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => candle_core::bail!("run before setup"),
            State::Inference { mel, ids } => {
                let (encoded, logits) = self.forward(mel, ids, Mode::Infer)?;
                Last::Outputs(vec![("encoder_hidden_states", encoded), ("logits", logits)])
            }
            State::Latency { next, cross, past, start } => Last::output("logits", self.decode(next, cross, *start, Some(past), Mode::Infer)?.0),
            State::Training { mel, ids, labels } => {
                let loss = self.loss(mel, ids, labels)?;
                Last::from_loss(loss)?
            }
        })
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn frozen(&self) -> Vec<&str> {
        vec![ENCODER_POSITIONS]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// The training form agrees with candle's conv1d in the forward, and its kernel gradient over a
    /// batch equals the sum of candle's per-utterance ones (batch 1, where candle's backward is right).
    #[test]
    fn the_training_conv1d_matches_candles_forward_and_per_sample_gradients() {
        let dev = Device::Cpu;
        for (l, stride) in [(10, 1), (10, 2), (9, 2)] {
            let x = Tensor::randn(0f32, 1.0, (3, 5, l), &dev).unwrap();
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 5, 3), &dev).unwrap()).unwrap();
            let fused = conv1d(&x, w.as_tensor(), 1, stride, Mode::Infer).unwrap();
            let trained = conv1d(&x, w.as_tensor(), 1, stride, Mode::Train).unwrap();
            assert_eq!(fused.dims(), trained.dims());
            assert!(max_diff(&fused, &trained) < 1e-5);
            let r = Tensor::randn(0f32, 1.0, trained.dims(), &dev).unwrap();
            let grad = (trained * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let grad = grad.get(w.as_tensor()).unwrap().clone();
            let mut expected = Tensor::zeros((4, 5, 3), candle_core::DType::F32, &dev).unwrap();
            for i in 0..3 {
                let y = x.narrow(0, i, 1).unwrap().conv1d(w.as_tensor(), 1, stride, 1, 1).unwrap();
                let g = (y * r.narrow(0, i, 1).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
                expected = (expected + g.get(w.as_tensor()).unwrap()).unwrap();
            }
            assert!(max_diff(&grad, &expected) < 1e-4, "l {l} stride {stride}: {}", max_diff(&grad, &expected));
        }
    }
}
