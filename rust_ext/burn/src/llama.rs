//! LLaMA (SmolLM2) in Burn, after transformers' LlamaForCausalLM: pre-norm RMSNorm blocks, grouped-
//! query attention with rotate-half RoPE (theta from the config), SwiGLU MLP, the head tied to the
//! embedding when the config says so.
//!
//! inference: all-position logits of the prompt. latency: the prompt's K/V are computed once in
//! `setup`; each timed call runs the next token against them (its own K/V are concatenated for that
//! call and dropped, as the reference crops its cache back). training: causal-LM cross-entropy with the
//! labels shifted once, forward + backward.

use arena_common::config::{self, Llama as Config};
use arena_common::tables;
use arena_common::{Arrays, NativeModel, Result, Workload};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Int, Tensor};

use crate::layers::{self, DecoderLayer, DecoderSizes, Last};
use crate::weights::{Loaded, Renames};
use crate::{Family, Native};

pub fn build(config_json: &str, weights: Arrays, device: &Device) -> Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("llama", config_json)?;
    let module = CausalLm::new(&cfg, &device.clone().autodiff());
    let loaded = Loaded::new(module, weights, RENAMES)?;
    let (cos, sin) = layers::rope_tables(&tables::llama_rope_angles(cfg.max_position_embeddings, cfg.head_dim(), cfg.rope_theta), cfg.head_dim() / 2, device);
    Ok(Box::new(Native::new(Llama { cfg, loaded, cos, sin, device: device.clone(), state: State::Empty })))
}

/// The module tree spells the HF names as they are.
const RENAMES: Renames = &[];

/// The official names: `model.*`, and `lm_head` when the head is not tied.
#[derive(Module, Debug)]
pub struct CausalLm {
    model: Body,
    lm_head: Option<Linear>,
}

#[derive(Module, Debug)]
struct Body {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
}

impl CausalLm {
    fn new(c: &Config, device: &Device) -> Self {
        let (h, d, i) = (c.hidden_size, c.head_dim(), c.intermediate_size);
        let sizes = DecoderSizes { hidden: h, q: c.num_attention_heads * d, kv: c.num_key_value_heads * d, kv_in: h, intermediate: i, rms_norm_eps: c.rms_norm_eps };
        CausalLm {
            model: Body {
                embed_tokens: EmbeddingConfig::new(c.vocab_size, h).init(device),
                layers: (0..c.num_hidden_layers).map(|_| DecoderLayer::new(&sizes, device)).collect(),
                norm: RmsNormConfig::new(h).with_epsilon(c.rms_norm_eps).init(device),
            },
            lm_head: (!c.tie_word_embeddings).then(|| LinearConfig::new(h, c.vocab_size).with_bias(false).init(device)),
        }
    }
}

type KvCache = Vec<(Tensor<4>, Tensor<4>)>;

enum State {
    Empty,
    Inference { ids: Tensor<2, Int> },
    Latency { next: Tensor<2, Int>, cache: KvCache, start: usize },
    Training { ids: Tensor<2, Int> },
}

struct Llama {
    cfg: Config,
    loaded: Loaded<CausalLm>,
    cos: Tensor<2>,
    sin: Tensor<2>,
    device: Device,
    state: State,
}

impl Llama {
    /// Logits [b, t, vocab] of `ids` [b, t] at positions start.., attending to `past` (K/V per layer,
    /// [b, kv_heads, start, d]) and themselves; also the K/V of `ids` per layer.
    fn forward(&self, m: &CausalLm, ids: Tensor<2, Int>, start: usize, past: Option<&KvCache>) -> (Tensor<3>, KvCache) {
        let c = &self.cfg;
        let (cos, sin) = (self.cos.clone().to_device(&ids.device()), self.sin.clone().to_device(&ids.device()));
        let mut x = m.model.embed_tokens.forward(ids);
        let mut present = Vec::with_capacity(c.num_hidden_layers);
        for (l, block) in m.model.layers.iter().enumerate() {
            let a = &block.self_attn;
            let h = block.input_layernorm.forward(x.clone());
            let q = layers::rope(layers::split_heads(a.q_proj.forward(h.clone()), c.num_attention_heads), &cos, &sin, start);
            let k = layers::rope(layers::split_heads(a.k_proj.forward(h.clone()), c.num_key_value_heads), &cos, &sin, start);
            let v = layers::split_heads(a.v_proj.forward(h), c.num_key_value_heads);
            let (k_all, v_all) = match past {
                Some(cache) => (Tensor::cat(vec![cache[l].0.clone(), k.clone()], 2), Tensor::cat(vec![cache[l].1.clone(), v.clone()], 2)),
                None => (k.clone(), v.clone()),
            };
            let attn = layers::merge_heads(layers::attention(q, k_all, v_all, true));
            x = x + a.o_proj.forward(attn);
            let h = block.post_attention_layernorm.forward(x.clone());
            x = x + block.mlp.forward(h);
            present.push((k, v));
        }
        let x = m.model.norm.forward(x);
        let logits = match &m.lm_head {
            Some(head) => head.forward(x),
            None => layers::tied_head(x, m.model.embed_tokens.weight.val()),
        };
        (logits, present)
    }

    /// Causal-LM cross-entropy: logits[:, i] predicts ids[:, i + 1] (one shift).
    fn loss(&self, ids: Tensor<2, Int>) -> Tensor<1> {
        let [b, t] = ids.dims();
        let (logits, _) = self.forward(&self.loaded.train, ids.clone(), 0, None);
        let vocab = logits.dims()[2];
        let predicted = logits.narrow(1, 0, t - 1).reshape([b * (t - 1), vocab]);
        let labels = ids.narrow(1, 1, t - 1).reshape([b * (t - 1)]);
        layers::cross_entropy(predicted, labels)
    }
}

impl Family for Llama {
    type Module = CausalLm;

    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        let dev = &self.device;
        let train_dev = dev.clone().autodiff();
        self.state = match workload {
            Workload::Inference => State::Inference { ids: layers::input_ids(inputs, "input_ids", dev)? },
            Workload::Training => State::Training { ids: layers::input_ids(inputs, "input_ids", &train_dev)? },
            Workload::Latency => {
                let prompt = layers::input_ids::<2>(inputs, "input_ids", dev)?;
                let start = prompt.dims()[1];
                let (_, cache) = self.forward(&self.loaded.valid, prompt, 0, None);
                State::Latency { next: layers::input_ids(inputs, "next_input_ids", dev)?, cache, start }
            }
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => return Err(arena_common::Error("run before setup".into())),
            State::Inference { ids } => Last::output("logits", self.forward(&self.loaded.valid, ids.clone(), 0, None).0),
            State::Latency { next, cache, start } => Last::output("logits", self.forward(&self.loaded.valid, next.clone(), *start, Some(cache)).0),
            State::Training { ids } => Last::from_loss(self.loss(ids.clone())),
        })
    }

    fn loaded(&self) -> &Loaded<CausalLm> {
        &self.loaded
    }
}
