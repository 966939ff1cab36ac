//! SmolVLA's action expert in Candle, after lerobot's VLAFlowMatching (denoising branch) as restated in
//! arena/frameworks/torch/vla_expert.py: a Llama-style stack without embed_tokens whose layer i is
//! self-attention over [cached VLM prefix K/V; the actions' own K/V] when `is_self_attn(i)` (RoPE on q
//! and k at positions prefix_len + j), otherwise cross-attention to the prefix K/V projected by
//! k_proj/v_proj from vlm_kv_dim (RoPE on q only, at positions j). Suffix embedding: action_in_proj of
//! the noisy actions, concatenated with the sinusoidal time embedding (float64, as lerobot), then
//! action_time_mlp_in -> SiLU -> action_time_mlp_out; head: action_out_proj of the final RMSNorm.
//!
//! inference: the Euler loop from t = 1 to 0 with dt = -1/num_steps, the time accumulated in float32
//! (`actions`). latency: one denoising step at t = 1 (`velocity`). training: the flow-matching MSE at
//! the given times, forward + backward (every tensor is trainable).

use candle_core::{Device, Result, Tensor};

use arena_common::config::{self, VlaExpert as Config};
use arena_common::{array, Arrays, NativeModel, Workload};

use crate::layers::{self, Last, Mode, Params};
use crate::{common_error, native_error, Family, Native};

const EXPERT: &str = "model.vlm_with_expert.lm_expert";
const ACTION_PROJECTIONS: [&str; 4] = ["action_in_proj", "action_out_proj", "action_time_mlp_in", "action_time_mlp_out"];

pub fn build(config_json: &str, weights: Arrays, device: &Device) -> arena_common::Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("vla_expert", config_json)?;
    let params = Params::load(weights, &parameter_shapes(&cfg), device).map_err(native_error)?;
    Ok(Box::new(Native::new(VlaExpert { cfg, params, state: State::Empty })))
}

/// The expert's and the action projections' entries of SmolVLAPolicy.state_dict(), as
/// arena/families/vla_expert.py lists them.
pub fn parameter_shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let (h, d, inter) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
    let (q, kv) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
    let mut shapes = Vec::new();
    for l in 0..cfg.num_hidden_layers {
        let p = format!("{EXPERT}.layers.{l}");
        let kv_in = if cfg.is_self_attn(l) { h } else { cfg.vlm_kv_dim() };
        shapes.extend([
            (format!("{p}.self_attn.q_proj.weight"), vec![q, h]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv, kv_in]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv, kv_in]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, q]),
            (format!("{p}.mlp.gate_proj.weight"), vec![inter, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![inter, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, inter]),
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
        ]);
    }
    shapes.push((format!("{EXPERT}.norm.weight"), vec![h]));
    let a = cfg.max_action_dim;
    for (name, (out_features, in_features)) in ACTION_PROJECTIONS.iter().zip([(h, a), (a, h), (h, 2 * h), (h, h)]) {
        shapes.push((format!("model.{name}.weight"), vec![out_features, in_features]));
        shapes.push((format!("model.{name}.bias"), vec![out_features]));
    }
    shapes
}

/// lerobot's time embedding as a [B, hidden_size] tensor (arena_common::tables).
fn time_embedding(times: &[f32], cfg: &Config, device: &Device) -> Result<Tensor> {
    Tensor::from_vec(cfg.time_embedding(times), (times.len(), cfg.hidden_size), device)
}

/// The per-call constants: the prefix K/V of each layer [B, P, KVH, D] and the RoPE tables over
/// positions 0..P+S.
struct Prefix {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    cos: Tensor,
    sin: Tensor,
}

enum State {
    Empty,
    Inference { prefix: Prefix, noise: Tensor, num_steps: usize },
    Latency { prefix: Prefix, noise: Tensor },
    Training { prefix: Prefix, noise: Tensor, actions: Tensor, time: Vec<f32> },
}


struct VlaExpert {
    cfg: Config,
    params: Params,
    state: State,
}

impl VlaExpert {
    fn prefix(&self, inputs: &Arrays, chunk: usize) -> Result<Prefix> {
        let dev = &self.params.device;
        let keys = layers::input(inputs, "prefix_keys", dev)?;
        let values = layers::input(inputs, "prefix_values", dev)?;
        let (l, _, p, _, _) = keys.dims5()?;
        if l != self.cfg.num_hidden_layers || values.dims() != keys.dims() {
            candle_core::bail!("prefix_keys {:?} / prefix_values {:?} do not match {} layers", keys.dims(), values.dims(), self.cfg.num_hidden_layers);
        }
        let split = |t: &Tensor| (0..l).map(|i| t.get(i)).collect::<Result<Vec<_>>>();
        let (cos, sin) = layers::rope_tables(&self.cfg.rope_angles(p + chunk), self.cfg.head_dim / 2, dev)?;
        Ok(Prefix { keys: split(&keys)?, values: split(&values)?, cos, sin })
    }

    /// The expert's layers and final norm on the suffix x [B, S, hidden].
    fn expert(&self, x: &Tensor, prefix: &Prefix, mode: Mode) -> Result<Tensor> {
        let c = &self.cfg;
        let (b, s, _) = x.dims3()?;
        let (heads, d) = (c.num_attention_heads, c.head_dim);
        let mut x = x.clone();
        for l in 0..c.num_hidden_layers {
            let w = |name: &str| self.params.get(&format!("{EXPERT}.layers.{l}.{name}.weight"), mode);
            let h = layers::rms_norm(&x, &w("input_layernorm")?, c.rms_norm_eps, mode)?;
            // [B, L, features] -> [B, heads, L, D]
            let split = |y: Tensor, len: usize| y.reshape((b, len, (), d))?.transpose(1, 2);
            let q = split(layers::linear(&h, &w("self_attn.q_proj")?, None)?, s)?;
            let (pk, pv) = (&prefix.keys[l], &prefix.values[l]); // [B, P, KVH, D]
            let p = pk.dim(1)?;
            let out = if c.is_self_attn(l) {
                // forward_attn_layer: RoPE at positions P + j, the actions' K/V appended to the prefix's.
                let q = layers::rope(&q, &prefix.cos, &prefix.sin, p, mode)?;
                let k = split(layers::linear(&h, &w("self_attn.k_proj")?, None)?, s)?;
                let k = layers::rope(&k, &prefix.cos, &prefix.sin, p, mode)?;
                let v = split(layers::linear(&h, &w("self_attn.v_proj")?, None)?, s)?;
                let k = Tensor::cat(&[&pk.transpose(1, 2)?, &k], 2)?;
                let v = Tensor::cat(&[&pv.transpose(1, 2)?, &v], 2)?;
                // prefix all visible, actions causal: key j visible to query i when j <= P + i
                layers::attention(&q, &k, &v, Some(p), mode)?
            } else {
                // forward_cross_attn_layer: project the cached K/V, RoPE on q only from position 0.
                let q = layers::rope(&q, &prefix.cos, &prefix.sin, 0, mode)?;
                let k = split(layers::linear(&pk.reshape((b, p, ()))?, &w("self_attn.k_proj")?, None)?, p)?;
                let v = split(layers::linear(&pv.reshape((b, p, ()))?, &w("self_attn.v_proj")?, None)?, p)?;
                layers::attention(&q, &k, &v, None, mode)?
            };
            let out = out.transpose(1, 2)?.reshape((b, s, heads * d))?;
            x = (layers::linear(&out, &w("self_attn.o_proj")?, None)? + x)?;
            let h = layers::rms_norm(&x, &w("post_attention_layernorm")?, c.rms_norm_eps, mode)?;
            let gate = layers::linear(&h, &w("mlp.gate_proj")?, None)?.silu()?;
            let up = layers::linear(&h, &w("mlp.up_proj")?, None)?;
            x = (layers::linear(&(gate * up)?, &w("mlp.down_proj")?, None)? + x)?;
        }
        layers::rms_norm(&x, &self.params.get(&format!("{EXPERT}.norm.weight"), mode)?, c.rms_norm_eps, mode)
    }

    fn projection(&self, name: &str, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let weight = self.params.get(&format!("model.{name}.weight"), mode)?;
        let bias = self.params.get(&format!("model.{name}.bias"), mode)?;
        layers::linear(x, &weight, Some(&bias))
    }

    /// embed_suffix: [action_in_proj(x_t); time embedding] -> action_time_mlp_in -> SiLU -> _out.
    fn embed_suffix(&self, x_t: &Tensor, time: &[f32], mode: Mode) -> Result<Tensor> {
        let action_emb = self.projection("action_in_proj", x_t, mode)?; // [B, S, h]
        let time_emb = time_embedding(time, &self.cfg, &self.params.device)?;
        let time_emb = time_emb.unsqueeze(1)?.expand(action_emb.dims())?.contiguous()?;
        let x = self.projection("action_time_mlp_in", &Tensor::cat(&[&action_emb, &time_emb], 2)?, mode)?;
        self.projection("action_time_mlp_out", &x.silu()?, mode)
    }

    /// The velocity v_t [B, S, max_action_dim] at x_t, times [B].
    fn denoise_step(&self, prefix: &Prefix, x_t: &Tensor, time: &[f32], mode: Mode) -> Result<Tensor> {
        let suffix = self.expert(&self.embed_suffix(x_t, time, mode)?, prefix, mode)?;
        self.projection("action_out_proj", &suffix, mode)
    }

    /// Euler integration from t = 1 (noise) to t = 0; time and dt in float32 as lerobot.
    fn sample_actions(&self, prefix: &Prefix, noise: &Tensor, num_steps: usize) -> Result<Tensor> {
        let dt = (-1.0f64 / num_steps as f64) as f32;
        let batch = noise.dim(0)?;
        let mut time = 1.0f32;
        let mut x_t = noise.clone();
        for _ in 0..num_steps {
            let v_t = self.denoise_step(prefix, &x_t, &vec![time; batch], Mode::Infer)?;
            x_t = (x_t + (v_t * dt as f64)?)?;
            time += dt;
        }
        Ok(x_t)
    }

    /// VLAFlowMatching.forward: mean((noise - actions - v_t(x_t, t))^2), x_t = t noise + (1 - t) actions.
    fn loss(&self, prefix: &Prefix, noise: &Tensor, actions: &Tensor, time: &[f32]) -> Result<Tensor> {
        let t = Tensor::from_slice(time, (time.len(), 1, 1), noise.device())?;
        let x_t = (t.broadcast_mul(noise)? + t.affine(-1.0, 1.0)?.broadcast_mul(actions)?)?;
        let u_t = (noise - actions)?;
        let v_t = self.denoise_step(prefix, &x_t, time, Mode::Train)?;
        (u_t - v_t)?.sqr()?.mean_all()
    }
}

impl Family for VlaExpert {
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        let dev = self.params.device.clone();
        let noise = layers::input(inputs, "noise", &dev)?;
        let prefix = self.prefix(inputs, noise.dim(1)?)?;
        self.state = match workload {
            Workload::Inference => State::Inference { prefix, noise, num_steps: array::count(inputs, "num_steps").map_err(common_error)? },
            Workload::Latency => State::Latency { prefix, noise },
            Workload::Training => {
                let actions = layers::input(inputs, "actions", &dev)?;
                let time = array::f32_values(inputs, "time").map_err(common_error)?.to_vec();
                if time.len() != noise.dim(0)? {
                    candle_core::bail!("time has {} entries for a batch of {}", time.len(), noise.dim(0)?);
                }
                State::Training { prefix, noise, actions, time }
            }
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => candle_core::bail!("run before setup"),
            State::Inference { prefix, noise, num_steps } => Last::output("actions", self.sample_actions(prefix, noise, *num_steps)?),
            State::Latency { prefix, noise } => {
                let time = vec![1.0f32; noise.dim(0)?];
                Last::output("velocity", self.denoise_step(prefix, noise, &time, Mode::Infer)?)
            }
            State::Training { prefix, noise, actions, time } => {
                let loss = self.loss(prefix, noise, actions, time)?;
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

    fn tiny() -> Config {
        Config::tiny_example()
    }

    #[test]
    fn cross_attention_layers_project_from_the_vlm_kv_width() {
        let shapes = parameter_shapes(&tiny());
        let find = |n: &str| shapes.iter().find(|(name, _)| name == n).unwrap().1.clone();
        assert_eq!(find(&format!("{EXPERT}.layers.0.self_attn.k_proj.weight")), vec![4, 8]);
        assert_eq!(find(&format!("{EXPERT}.layers.1.self_attn.k_proj.weight")), vec![4, 4]);
        assert_eq!(find("model.action_time_mlp_in.weight"), vec![8, 16]);
        assert_eq!(shapes.len(), 2 * 9 + 1 + 8);
    }
}
