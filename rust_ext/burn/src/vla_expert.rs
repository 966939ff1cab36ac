//! SmolVLA's action expert in Burn, after lerobot's VLAFlowMatching (denoising branch) as restated in
//! arena/frameworks/torch/vla_expert.py: a Llama-style stack without embed_tokens whose layer i is
//! self-attention over [cached VLM prefix K/V; the actions' own K/V] when `is_self_attn(i)` (RoPE on q
//! and k at positions prefix_len + j, the actions causal among themselves), otherwise cross-attention
//! to the prefix K/V projected by k_proj/v_proj from vlm_kv_dim (RoPE on q only, at positions j).
//! Suffix: action_in_proj of the noisy actions, concatenated with the sinusoidal time embedding
//! (float64 on the host, as lerobot), then action_time_mlp_in -> SiLU -> action_time_mlp_out; head:
//! action_out_proj of the final RMSNorm.
//!
//! inference: the Euler loop from t = 1 to 0 with dt = -1/num_steps, the time accumulated in float32
//! (`actions`). latency: one denoising step at t = 1 (`velocity`). training: the flow-matching MSE at
//! the given times, forward + backward. Every tensor is trainable (nothing frozen); the prefix K/V
//! are inputs from the frozen VLM and take no gradient. As in lerobot, nothing is cached across
//! denoising steps: the cross-attention layers re-project the prefix K/V every step.

use arena_common::config::{self, VlaExpert as Config};
use arena_common::{array, Arrays, Error, NativeModel, Result, Workload};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor, TensorData};

use crate::layers::{self, DecoderLayer, DecoderSizes, Last};
use crate::weights::{Loaded, Renames};
use crate::{Family, Native};

pub fn build(config_json: &str, weights: Arrays, device: &Device) -> Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("vla_expert", config_json)?;
    let module = Policy::new(&cfg, &device.clone().autodiff());
    let loaded = Loaded::new(module, weights, RENAMES)?;
    Ok(Box::new(Native::new(VlaExpert { cfg, loaded, device: device.clone(), state: State::Empty })))
}

/// The module tree spells SmolVLAPolicy's names as they are.
const RENAMES: Renames = &[];

/// The root of SmolVLAPolicy's state-dict names: `model.` + VLAFlowMatching's.
#[derive(Module, Debug)]
pub struct Policy {
    model: FlowMatching,
}

#[derive(Module, Debug)]
struct FlowMatching {
    vlm_with_expert: WithExpert,
    action_in_proj: Linear,
    action_out_proj: Linear,
    action_time_mlp_in: Linear,
    action_time_mlp_out: Linear,
}

/// SmolVLMWithExpertModel's expert half (`lm_expert`); the VLM enters only as its K/V cache.
#[derive(Module, Debug)]
struct WithExpert {
    lm_expert: Expert,
}

/// transformers' LlamaModel without embed_tokens.
#[derive(Module, Debug)]
struct Expert {
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
}

impl Policy {
    fn new(c: &Config, device: &Device) -> Self {
        let (h, d, a) = (c.hidden_size, c.head_dim, c.max_action_dim);
        let (q, kv) = (c.num_attention_heads * d, c.num_key_value_heads * d);
        let biased = |d_in, d_out| LinearConfig::new(d_in, d_out).init(device);
        let norm = || RmsNormConfig::new(h).with_epsilon(c.rms_norm_eps).init(device);
        let block = |l: usize| {
            let kv_in = if c.is_self_attn(l) { h } else { c.vlm_kv_dim() };
            DecoderLayer::new(&DecoderSizes { hidden: h, q, kv, kv_in, intermediate: c.intermediate_size, rms_norm_eps: c.rms_norm_eps }, device)
        };
        Policy {
            model: FlowMatching {
                vlm_with_expert: WithExpert { lm_expert: Expert { layers: (0..c.num_hidden_layers).map(block).collect(), norm: norm() } },
                action_in_proj: biased(a, h),
                action_out_proj: biased(h, a),
                action_time_mlp_in: biased(2 * h, h),
                action_time_mlp_out: biased(h, h),
            },
        }
    }
}

/// One layer's cached VLM K/V, in the layout that layer consumes (arranged once, in `setup`).
enum Cached {
    /// Self-attention layers: [B, KVH, P, D], the actions' own K/V are appended to it.
    Heads { keys: Tensor<4>, values: Tensor<4> },
    /// Cross-attention layers: [B, P, KVH * D], the input of k_proj/v_proj.
    Flat { keys: Tensor<3>, values: Tensor<3> },
}

/// The per-call constants on the workload's device: each layer's prefix K/V and the RoPE tables
/// over positions 0..P+S.
struct Prefix {
    layers: Vec<Cached>,
    len: usize,
    cos: Tensor<2>,
    sin: Tensor<2>,
}

enum State {
    Empty,
    Inference { prefix: Prefix, noise: Tensor<3>, num_steps: usize },
    Latency { prefix: Prefix, noise: Tensor<3> },
    /// `time` on the host feeds the time embedding, `t` [B, 1, 1] the interpolation.
    Training { prefix: Prefix, noise: Tensor<3>, actions: Tensor<3>, time: Vec<f32>, t: Tensor<3> },
}

struct VlaExpert {
    cfg: Config,
    loaded: Loaded<Policy>,
    device: Device,
    state: State,
}

impl VlaExpert {
    /// prefix_keys/prefix_values [layers, B, P, KVH, D] split per layer, on `device`.
    fn prefix(&self, inputs: &Arrays, chunk: usize, device: &Device) -> Result<Prefix> {
        let c = &self.cfg;
        let keys = layers::input::<5>(inputs, "prefix_keys", device)?;
        let values = layers::input::<5>(inputs, "prefix_values", device)?;
        let [l, b, p, kvh, d] = keys.dims();
        if l != c.num_hidden_layers || kvh != c.num_key_value_heads || d != c.head_dim || values.dims() != keys.dims() {
            return Err(Error(format!(
                "prefix_keys {:?} / prefix_values {:?} must both be [{}, batch, prefix_len, {}, {}]",
                keys.dims(),
                values.dims(),
                c.num_hidden_layers,
                c.num_key_value_heads,
                c.head_dim
            )));
        }
        let layer = |t: &Tensor<5>, i: usize| t.clone().narrow(0, i, 1).squeeze_dim::<4>(0); // [B, P, KVH, D]
        let layers = (0..l)
            .map(|i| {
                let (k, v) = (layer(&keys, i), layer(&values, i));
                if c.is_self_attn(i) {
                    Cached::Heads { keys: k.swap_dims(1, 2), values: v.swap_dims(1, 2) }
                } else {
                    Cached::Flat { keys: k.reshape([b, p, kvh * d]), values: v.reshape([b, p, kvh * d]) }
                }
            })
            .collect();
        let (cos, sin) = layers::rope_tables(&c.rope_angles(p + chunk), c.head_dim / 2, device);
        Ok(Prefix { layers, len: p, cos, sin })
    }

    /// The expert's layers and final norm on the suffix x [B, S, hidden].
    fn expert(&self, m: &Policy, mut x: Tensor<3>, prefix: &Prefix) -> Tensor<3> {
        let c = &self.cfg;
        let (heads, kv_heads) = (c.num_attention_heads, c.num_key_value_heads);
        let (cos, sin) = (&prefix.cos, &prefix.sin);
        let expert = &m.model.vlm_with_expert.lm_expert;
        for (block, cached) in expert.layers.iter().zip(&prefix.layers) {
            let a = &block.self_attn;
            let h = block.input_layernorm.forward(x.clone());
            let q = layers::split_heads(a.q_proj.forward(h.clone()), heads);
            let out = match cached {
                // forward_attn_layer: RoPE at positions P + j, the actions' K/V appended to the prefix's;
                // bottom-right causal = the whole prefix visible, the actions causally.
                Cached::Heads { keys, values } => {
                    let q = layers::rope(q, cos, sin, prefix.len);
                    let k = layers::rope(layers::split_heads(a.k_proj.forward(h.clone()), kv_heads), cos, sin, prefix.len);
                    let v = layers::split_heads(a.v_proj.forward(h), kv_heads);
                    let k = Tensor::cat(vec![keys.clone(), k], 2);
                    let v = Tensor::cat(vec![values.clone(), v], 2);
                    layers::attention(q, k, v, true)
                }
                // forward_cross_attn_layer: the cached K/V projected, RoPE on q only from position 0.
                Cached::Flat { keys, values } => {
                    let q = layers::rope(q, cos, sin, 0);
                    let k = layers::split_heads(a.k_proj.forward(keys.clone()), kv_heads);
                    let v = layers::split_heads(a.v_proj.forward(values.clone()), kv_heads);
                    layers::attention(q, k, v, false)
                }
            };
            x = x + a.o_proj.forward(layers::merge_heads(out));
            x = x.clone() + block.mlp.forward(block.post_attention_layernorm.forward(x));
        }
        expert.norm.forward(x)
    }

    /// embed_suffix: [action_in_proj(x_t); time embedding] -> action_time_mlp_in -> SiLU -> _out.
    fn embed_suffix(&self, m: &Policy, x_t: Tensor<3>, time: &[f32]) -> Tensor<3> {
        let f = &m.model;
        let action_emb = f.action_in_proj.forward(x_t); // [B, S, h]
        let dims = action_emb.dims();
        let time_emb = TensorData::new(self.cfg.time_embedding(time), [dims[0], 1, dims[2]]);
        let time_emb = Tensor::<3>::from_data(time_emb, &action_emb.device()).expand(dims);
        let x = f.action_time_mlp_in.forward(Tensor::cat(vec![action_emb, time_emb], 2));
        f.action_time_mlp_out.forward(silu(x))
    }

    /// The velocity v_t [B, S, max_action_dim] at x_t, times [B].
    fn denoise_step(&self, m: &Policy, prefix: &Prefix, x_t: Tensor<3>, time: &[f32]) -> Tensor<3> {
        let suffix = self.expert(m, self.embed_suffix(m, x_t, time), prefix);
        m.model.action_out_proj.forward(suffix)
    }

    /// Euler integration from t = 1 (noise) to t = 0; time and dt in float32 as lerobot.
    fn sample_actions(&self, prefix: &Prefix, noise: &Tensor<3>, num_steps: usize) -> Tensor<3> {
        let dt = (-1.0f64 / num_steps as f64) as f32;
        let batch = noise.dims()[0];
        let mut time = 1.0f32;
        let mut x_t = noise.clone();
        for _ in 0..num_steps {
            let v_t = self.denoise_step(&self.loaded.valid, prefix, x_t.clone(), &vec![time; batch]);
            x_t = x_t + v_t.mul_scalar(dt);
            time += dt;
        }
        x_t
    }

    /// VLAFlowMatching.forward: mean((noise - actions - v_t(x_t, t))^2), x_t = t noise + (1 - t) actions.
    fn loss(&self, prefix: &Prefix, noise: &Tensor<3>, actions: &Tensor<3>, time: &[f32], t: &Tensor<3>) -> Tensor<1> {
        let x_t = t.clone() * noise.clone() + (t.clone().neg() + 1.0) * actions.clone();
        let u_t = noise.clone() - actions.clone();
        let v_t = self.denoise_step(&self.loaded.train, prefix, x_t, time);
        (u_t - v_t).square().mean()
    }
}

impl Family for VlaExpert {
    type Module = Policy;

    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        // Training runs on the autodiff device (inputs there take no gradient), the rest on the plain one.
        let dev = match workload {
            Workload::Training => self.device.clone().autodiff(),
            _ => self.device.clone(),
        };
        let noise = layers::input::<3>(inputs, "noise", &dev)?;
        let [batch, chunk, _] = noise.dims();
        let prefix = self.prefix(inputs, chunk, &dev)?;
        self.state = match workload {
            Workload::Inference => State::Inference { prefix, noise, num_steps: array::count(inputs, "num_steps")? },
            Workload::Latency => State::Latency { prefix, noise },
            Workload::Training => {
                let actions = layers::input(inputs, "actions", &dev)?;
                let time = array::f32_values(inputs, "time")?.to_vec();
                if time.len() != batch {
                    return Err(Error(format!("time has {} entries for a batch of {batch}", time.len())));
                }
                let t = Tensor::from_data(TensorData::new(time.clone(), [batch, 1, 1]), &dev);
                State::Training { prefix, noise, actions, time, t }
            }
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => return Err(Error("run before setup".into())),
            State::Inference { prefix, noise, num_steps } => Last::output("actions", self.sample_actions(prefix, noise, *num_steps)),
            State::Latency { prefix, noise } => {
                let time = vec![1.0f32; noise.dims()[0]];
                Last::output("velocity", self.denoise_step(&self.loaded.valid, prefix, noise.clone(), &time))
            }
            State::Training { prefix, noise, actions, time, t } => Last::from_loss(self.loss(prefix, noise, actions, time, t)),
        })
    }

    fn loaded(&self) -> &Loaded<Policy> {
        &self.loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Config {
        Config::tiny_example()
    }

    #[test]
    fn the_rope_tables_repeat_lerobots_half_width_angles() {
        let (cos, sin) = layers::rope_tables(&tiny().rope_angles(3), 2, &Device::flex());
        let (cos, sin) = (cos.into_data().try_into_vec::<f32>().unwrap(), sin.into_data().try_into_vec::<f32>().unwrap());
        // position 2: radians [2, 2 / 100] (timescale 10000^(i/2)), repeated over the halves
        let radians = [2.0f32, 0.02, 2.0, 0.02];
        assert_eq!(cos[8..], radians.map(f32::cos));
        assert_eq!(sin[8..], radians.map(f32::sin));
    }
}
