//! Whisper in Burn, after transformers' WhisperForConditionalGeneration.
//!
//! Encoder: Conv1d(k3, pad 1) + exact GELU, Conv1d(k3, stride 2, pad 1) + exact GELU, plus the fixed
//! sinusoid table `model.encoder.embed_positions.weight` (loaded from the weights and frozen: HF's
//! requires_grad is False, so it gets no gradient), pre-LN layers, final LayerNorm. Decoder: token
//! embedding + learned positions, pre-LN layers with causal self-attention, cross-attention to the
//! encoder output and an MLP, final LayerNorm; logits = x @ embed_tokens^T (proj_out is tied, so the
//! embedding's gradient sums both uses). WhisperAttention: k_proj has no bias; HF scales the query by
//! head_dim^-0.5, which is the fused attention op's default scale. LayerNorm eps 1e-5.
//!
//! inference: encoder output and teacher-forced logits (no cache). latency: the encoder, every decoder
//! layer's cross-attention K/V and the prefix's self-attention K/V are computed once in `setup`; each
//! timed call decodes the next token at position = prefix length, its own K/V concatenated for that
//! call only (as the reference crops its cache back). training: mean cross-entropy of the logits
//! against `labels` (already shifted by the family, no shift here), forward + backward.

use arena_common::config::{self, Whisper as Config};
use arena_common::{Arrays, Error, NativeModel, Result, Workload};
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig1d};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor};

use crate::layers::{self, Last};
use crate::weights::{Loaded, Renames};
use crate::{Family, Native};

pub fn build(config_json: &str, weights: Arrays, device: &Device) -> Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("whisper", config_json)?;
    let module = Conditional::new(&cfg, &device.clone().autodiff());
    let loaded = Loaded::new(module, weights, RENAMES)?;
    Ok(Box::new(Native::new(Whisper { cfg, loaded, device: device.clone(), state: State::Empty })))
}

/// The module tree spells the HF names as they are.
const RENAMES: Renames = &[];

/// WhisperForConditionalGeneration without proj_out (tied to `model.decoder.embed_tokens`).
#[derive(Module, Debug)]
pub struct Conditional {
    model: Body,
}

#[derive(Module, Debug)]
struct Body {
    encoder: Encoder,
    decoder: Decoder,
}

#[derive(Module, Debug)]
struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    /// The sinusoid table, frozen (`frozen`).
    embed_positions: Embedding,
    layers: Vec<EncoderLayer>,
    layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
struct EncoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
struct Decoder {
    embed_tokens: Embedding,
    embed_positions: Embedding,
    layers: Vec<DecoderLayer>,
    layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    encoder_attn: Attention,
    encoder_attn_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_layer_norm: LayerNorm,
}

/// WhisperAttention: k_proj is the only projection without a bias.
#[derive(Module, Debug)]
struct Attention {
    k_proj: Linear,
    v_proj: Linear,
    q_proj: Linear,
    out_proj: Linear,
}

impl Conditional {
    fn new(c: &Config, device: &Device) -> Self {
        let d = c.d_model;
        let norm = || LayerNormConfig::new(d).with_epsilon(1e-5).init(device);
        let linear = |d_in: usize, d_out: usize| LinearConfig::new(d_in, d_out).init(device);
        let attention = || Attention {
            k_proj: LinearConfig::new(d, d).with_bias(false).init(device),
            v_proj: linear(d, d),
            q_proj: linear(d, d),
            out_proj: linear(d, d),
        };
        let conv = |c_in: usize, stride: usize| {
            Conv1dConfig::new(c_in, d, 3).with_stride(stride).with_padding(PaddingConfig1d::Explicit(1, 1)).init(device)
        };
        let encoder_layer = || EncoderLayer {
            self_attn: attention(),
            self_attn_layer_norm: norm(),
            fc1: linear(d, c.encoder_ffn_dim),
            fc2: linear(c.encoder_ffn_dim, d),
            final_layer_norm: norm(),
        };
        let decoder_layer = || DecoderLayer {
            self_attn: attention(),
            self_attn_layer_norm: norm(),
            encoder_attn: attention(),
            encoder_attn_layer_norm: norm(),
            fc1: linear(d, c.decoder_ffn_dim),
            fc2: linear(c.decoder_ffn_dim, d),
            final_layer_norm: norm(),
        };
        let table = |rows: usize| EmbeddingConfig::new(rows, d).init(device);
        Conditional {
            model: Body {
                encoder: Encoder {
                    conv1: conv(c.num_mel_bins, 1),
                    conv2: conv(d, 2),
                    embed_positions: frozen(table(c.max_source_positions)),
                    layers: (0..c.encoder_layers).map(|_| encoder_layer()).collect(),
                    layer_norm: norm(),
                },
                decoder: Decoder {
                    embed_tokens: table(c.vocab_size),
                    embed_positions: table(c.max_target_positions),
                    layers: (0..c.decoder_layers).map(|_| decoder_layer()).collect(),
                    layer_norm: norm(),
                },
            },
        }
    }
}

/// A table the reference does not train: set before loading, the flag carries over to the loaded
/// tensor (`Param::transform_for_load`), so it records no graph and `Loaded::gradients` skips it.
fn frozen(mut table: Embedding) -> Embedding {
    table.weight = table.weight.set_require_grad(false);
    table
}

/// Keys and values [batch, heads, positions, head_dim] of one attention.
type Kv = (Tensor<4>, Tensor<4>);

impl Attention {
    fn keys_values(&self, x: Tensor<3>, heads: usize) -> Kv {
        (layers::split_heads(self.k_proj.forward(x.clone()), heads), layers::split_heads(self.v_proj.forward(x), heads))
    }

    /// Attention of x's queries over the given K/V, through out_proj. `causal`: the last query sits at
    /// the last key (prefix caches), each query sees the keys up to its own position.
    fn attend(&self, x: Tensor<3>, (k, v): Kv, heads: usize, causal: bool) -> Tensor<3> {
        let q = layers::split_heads(self.q_proj.forward(x), heads);
        self.out_proj.forward(layers::merge_heads(layers::attention(q, k, v, causal)))
    }
}

/// fc1 -> exact GELU -> fc2.
fn mlp(fc1: &Linear, fc2: &Linear, x: Tensor<3>) -> Tensor<3> {
    fc2.forward(gelu(fc1.forward(x)))
}

impl Encoder {
    /// mel [b, mel_bins, 2 * S] -> [b, S, d_model] after the final LayerNorm.
    fn forward(&self, mel: Tensor<3>, heads: usize) -> Tensor<3> {
        let x = gelu(self.conv1.forward(mel));
        let x = gelu(self.conv2.forward(x)); // [b, d, S]
        let mut x = x.swap_dims(1, 2) + self.embed_positions.weight.val().unsqueeze::<3>();
        for layer in &self.layers {
            let h = layer.self_attn_layer_norm.forward(x.clone());
            let kv = layer.self_attn.keys_values(h.clone(), heads);
            x = x + layer.self_attn.attend(h, kv, heads, false);
            x = x.clone() + mlp(&layer.fc1, &layer.fc2, layer.final_layer_norm.forward(x));
        }
        self.layer_norm.forward(x)
    }
}

impl Decoder {
    /// Every layer's encoder_attn K/V of the encoder output.
    fn cross_keys_values(&self, encoded: Tensor<3>, heads: usize) -> Vec<Kv> {
        self.layers.iter().map(|layer| layer.encoder_attn.keys_values(encoded.clone(), heads)).collect()
    }

    /// Logits [b, t, vocab] of `ids` [b, t] at positions start.., attending to `past` (self-attention
    /// K/V per layer) and themselves; also every layer's self-attention K/V including the new tokens.
    fn forward(&self, ids: Tensor<2, Int>, cross: &[Kv], start: usize, past: Option<&[Kv]>, heads: usize) -> (Tensor<3>, Vec<Kv>) {
        let t = ids.dims()[1];
        let positions = self.embed_positions.weight.val().narrow(0, start, t).unsqueeze::<3>();
        let mut x = self.embed_tokens.forward(ids) + positions;
        let mut present = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.self_attn_layer_norm.forward(x.clone());
            let (k, v) = layer.self_attn.keys_values(h.clone(), heads);
            let kv = match past {
                Some(past) => (Tensor::cat(vec![past[i].0.clone(), k], 2), Tensor::cat(vec![past[i].1.clone(), v], 2)),
                None => (k, v),
            };
            x = x + layer.self_attn.attend(h, kv.clone(), heads, true);
            let h = layer.encoder_attn_layer_norm.forward(x.clone());
            x = x + layer.encoder_attn.attend(h, cross[i].clone(), heads, false);
            x = x.clone() + mlp(&layer.fc1, &layer.fc2, layer.final_layer_norm.forward(x));
            present.push(kv);
        }
        let x = self.layer_norm.forward(x);
        // proj_out is tied to the token embedding.
        (layers::tied_head(x, self.embed_tokens.weight.val()), present)
    }
}

enum State {
    Empty,
    Inference { mel: Tensor<3>, ids: Tensor<2, Int> },
    Latency { next: Tensor<2, Int>, cross: Vec<Kv>, past: Vec<Kv>, start: usize },
    Training { mel: Tensor<3>, ids: Tensor<2, Int>, labels: Tensor<2, Int> },
}

struct Whisper {
    cfg: Config,
    loaded: Loaded<Conditional>,
    device: Device,
    state: State,
}

impl Whisper {
    /// Encoder output and teacher-forced logits.
    fn forward(&self, m: &Conditional, mel: Tensor<3>, ids: Tensor<2, Int>) -> (Tensor<3>, Tensor<3>) {
        let c = &self.cfg;
        let encoded = m.model.encoder.forward(mel, c.encoder_attention_heads);
        let cross = m.model.decoder.cross_keys_values(encoded.clone(), c.decoder_attention_heads);
        let (logits, _) = m.model.decoder.forward(ids, &cross, 0, None, c.decoder_attention_heads);
        (encoded, logits)
    }

    /// Mean cross-entropy of logits[:, i] against labels[:, i] (labels already shifted once).
    fn loss(&self, mel: Tensor<3>, ids: Tensor<2, Int>, labels: Tensor<2, Int>) -> Tensor<1> {
        let (_, logits) = self.forward(&self.loaded.train, mel, ids);
        let [b, t, vocab] = logits.dims();
        layers::cross_entropy(logits.reshape([b * t, vocab]), labels.reshape([b * t]))
    }

    /// The mel input, checked against the encoder's fixed length (HF rejects any other too).
    fn mel(&self, inputs: &Arrays, device: &Device) -> Result<Tensor<3>> {
        let mel = layers::input::<3>(inputs, "input_features", device)?;
        let [_, bins, frames] = mel.dims();
        let c = &self.cfg;
        if bins != c.num_mel_bins || frames != c.num_frames() {
            return Err(Error(format!("input_features has {bins} mel bins x {frames} frames, the model needs {} x {}", c.num_mel_bins, c.num_frames())));
        }
        Ok(mel)
    }

    /// Decoder token ids, checked against the learned position table (positions start..start + t).
    fn ids(&self, inputs: &Arrays, name: &str, start: usize, device: &Device) -> Result<Tensor<2, Int>> {
        let ids = layers::input_ids::<2>(inputs, name, device)?;
        let end = start + ids.dims()[1];
        if end > self.cfg.max_target_positions {
            return Err(Error(format!("decoder positions {start}..{end} exceed max_target_positions ({})", self.cfg.max_target_positions)));
        }
        Ok(ids)
    }
}

impl Family for Whisper {
    type Module = Conditional;

    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        let dev = &self.device;
        let train_dev = dev.clone().autodiff();
        self.state = match workload {
            Workload::Inference => State::Inference { mel: self.mel(inputs, dev)?, ids: self.ids(inputs, "decoder_input_ids", 0, dev)? },
            Workload::Training => State::Training {
                mel: self.mel(inputs, &train_dev)?,
                ids: self.ids(inputs, "decoder_input_ids", 0, &train_dev)?,
                labels: layers::input_ids(inputs, "labels", &train_dev)?,
            },
            Workload::Latency => {
                let (m, heads) = (&self.loaded.valid, self.cfg.decoder_attention_heads);
                let prefix = self.ids(inputs, "decoder_input_ids", 0, dev)?;
                let start = prefix.dims()[1];
                let next = self.ids(inputs, "next_decoder_input_ids", start, dev)?;
                let encoded = m.model.encoder.forward(self.mel(inputs, dev)?, self.cfg.encoder_attention_heads);
                let cross = m.model.decoder.cross_keys_values(encoded, heads);
                let (_, past) = m.model.decoder.forward(prefix, &cross, 0, None, heads);
                State::Latency { next, cross, past, start }
            }
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => return Err(Error("run before setup".into())),
            State::Inference { mel, ids } => {
                let (encoded, logits) = self.forward(&self.loaded.valid, mel.clone(), ids.clone());
                Last::outputs(vec![layers::output("encoder_hidden_states", encoded), layers::output("logits", logits)])
            }
            State::Latency { next, cross, past, start } => {
                let heads = self.cfg.decoder_attention_heads;
                Last::output("logits", self.loaded.valid.model.decoder.forward(next.clone(), cross, *start, Some(past), heads).0)
            }
            State::Training { mel, ids, labels } => Last::from_loss(self.loss(mel.clone(), ids.clone(), labels.clone())),
        })
    }

    fn loaded(&self) -> &Loaded<Conditional> {
        &self.loaded
    }
}
