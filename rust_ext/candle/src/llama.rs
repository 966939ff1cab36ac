//! LLaMA (SmolLM2) in Candle, after transformers' LlamaForCausalLM: pre-norm RMSNorm blocks, grouped-
//! query attention with rotate-half RoPE (theta from the config), SwiGLU MLP, the head tied to the
//! embedding when the config says so.
//!
//! inference: all-position logits of the prompt. latency: the prompt's K/V are computed once in
//! `setup`; each timed call runs the next token against them (its own K/V are concatenated for that
//! call and dropped, as the reference crops its cache back). training: causal-LM cross-entropy with the
//! labels shifted once, forward + backward.

use candle_core::{Device, IndexOp, Result, Tensor};

use arena_common::config::{self, Llama as Config};
use arena_common::tables;
use arena_common::{Arrays, NativeModel, Workload};

use crate::layers::{self, Last, Mode, Params};
use crate::{native_error, Family, Native};

pub fn build(config_json: &str, weights: Arrays, device: &Device) -> arena_common::Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("llama", config_json)?;
    let params = Params::load(weights, &parameter_shapes(&cfg), device).map_err(native_error)?;
    let (cos, sin) = layers::rope_tables(&tables::llama_rope_angles(cfg.max_position_embeddings, cfg.head_dim(), cfg.rope_theta), cfg.head_dim() / 2, device).map_err(native_error)?;
    Ok(Box::new(Native::new(Llama { cfg, params, cos, sin, state: State::Empty })))
}

/// Every tensor of the HF state dict (lm_head only when untied), as arena/families/llama.py lists them.
pub fn parameter_shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let (h, d, i) = (cfg.hidden_size, cfg.head_dim(), cfg.intermediate_size);
    let (q, kv) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
    let mut shapes = vec![("model.embed_tokens.weight".to_string(), vec![cfg.vocab_size, h])];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        shapes.extend([
            (format!("{p}.self_attn.q_proj.weight"), vec![q, h]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, q]),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, i]),
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
        ]);
    }
    shapes.push(("model.norm.weight".into(), vec![h]));
    if !cfg.tie_word_embeddings {
        shapes.push(("lm_head.weight".into(), vec![cfg.vocab_size, h]));
    }
    shapes
}

type KvCache = Vec<(Tensor, Tensor)>;

enum State {
    Empty,
    Inference { ids: Tensor },
    Latency { next: Tensor, cache: KvCache, start: usize },
    Training { ids: Tensor },
}


struct Llama {
    cfg: Config,
    params: Params,
    cos: Tensor,
    sin: Tensor,
    state: State,
}

impl Llama {
    /// Logits [b, t, vocab] of `ids` [b, t] at positions start.., attending to `past` (K/V per layer,
    /// [b, kv_heads, start, d]) and themselves; also the K/V of `ids` per layer.
    fn forward(&self, ids: &Tensor, start: usize, past: Option<&KvCache>, mode: Mode) -> Result<(Tensor, KvCache)> {
        let c = &self.cfg;
        let p = |name: &str| self.params.get(name, mode);
        let (b, t) = ids.dims2()?;
        let (heads, kv_heads, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim());
        let embed = p("model.embed_tokens.weight")?;
        let mut x = embed.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, c.hidden_size))?;
        let mut present = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let w = |name: &str| p(&format!("model.layers.{l}.{name}.weight"));
            let h = layers::rms_norm(&x, &w("input_layernorm")?, c.rms_norm_eps, mode)?;
            let split = |y: Tensor, n: usize| y.reshape((b, t, n, d))?.transpose(1, 2);
            let q = split(layers::linear(&h, &w("self_attn.q_proj")?, None)?, heads)?;
            let k = split(layers::linear(&h, &w("self_attn.k_proj")?, None)?, kv_heads)?;
            let v = split(layers::linear(&h, &w("self_attn.v_proj")?, None)?, kv_heads)?.contiguous()?;
            let q = layers::rope(&q, &self.cos, &self.sin, start, mode)?;
            let k = layers::rope(&k, &self.cos, &self.sin, start, mode)?;
            let (k_all, v_all) = match past {
                Some(cache) => (Tensor::cat(&[&cache[l].0, &k], 2)?, Tensor::cat(&[&cache[l].1, &v], 2)?),
                None => (k.clone(), v.clone()),
            };
            let attn = layers::attention(&q, &k_all, &v_all, Some(start), mode)?;
            let attn = attn.transpose(1, 2)?.reshape((b, t, heads * d))?;
            x = (x + layers::linear(&attn, &w("self_attn.o_proj")?, None)?)?;
            let h = layers::rms_norm(&x, &w("post_attention_layernorm")?, c.rms_norm_eps, mode)?;
            let gate = layers::linear(&h, &w("mlp.gate_proj")?, None)?.silu()?;
            let up = layers::linear(&h, &w("mlp.up_proj")?, None)?;
            x = (x + layers::linear(&(gate * up)?, &w("mlp.down_proj")?, None)?)?;
            present.push((k, v));
        }
        let x = layers::rms_norm(&x, &p("model.norm.weight")?, c.rms_norm_eps, mode)?;
        let head = if c.tie_word_embeddings { embed } else { p("lm_head.weight")? };
        Ok((layers::linear(&x, &head, None)?, present))
    }

    /// Causal-LM cross-entropy: logits[:, i] predicts ids[:, i + 1] (one shift).
    fn loss(&self, ids: &Tensor) -> Result<Tensor> {
        let (logits, _) = self.forward(ids, 0, None, Mode::Train)?;
        let (b, t, v) = logits.dims3()?;
        let predicted = logits.i((.., ..t - 1, ..))?.reshape((b * (t - 1), v))?;
        let labels = ids.i((.., 1..))?.contiguous()?.reshape(b * (t - 1))?;
        layers::cross_entropy(&predicted, &labels)
    }

}

impl Family for Llama {
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        let dev = self.params.device.clone();
        self.state = match workload {
            Workload::Inference => State::Inference { ids: layers::input(inputs, "input_ids", &dev)? },
            Workload::Training => State::Training { ids: layers::input(inputs, "input_ids", &dev)? },
            Workload::Latency => {
                let prompt = layers::input(inputs, "input_ids", &dev)?;
                let (_, cache) = self.forward(&prompt, 0, None, Mode::Infer)?;
                State::Latency { next: layers::input(inputs, "next_input_ids", &dev)?, cache, start: prompt.dim(1)? }
            }
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => candle_core::bail!("run before setup"),
            State::Inference { ids } => Last::output("logits", self.forward(ids, 0, None, Mode::Infer)?.0),
            State::Latency { next, cache, start } => Last::output("logits", self.forward(next, *start, Some(cache), Mode::Infer)?.0),
            State::Training { ids } => {
                let loss = self.loss(ids)?;
                Last::from_loss(loss)?
            }
        })
    }

    fn params(&self) -> &Params {
        &self.params
    }
}
