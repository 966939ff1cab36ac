//! What the Burn families share: inputs in, outputs and gradients out, rotate-half RoPE, attention
//! with grouped K/V heads, causal-LM cross-entropy.

use arena_common::array::get;
use arena_common::{Arrays, HostArray, HostData, Result};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::{log_softmax, silu};
use burn::tensor::module::{attention as fused_attention, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};

use crate::weights::Loaded;

/// A LLaMA decoder layer's modules (SmolLM2, the SmolVLA expert): pre-norm RMSNorms around attention
/// projections without biases and a SwiGLU MLP. K/V read `kv_in` features: the hidden state, or the
/// VLM's cached K/V in the expert's cross-attention layers. The families write the forward.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Projections,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

/// Sizes of a `DecoderLayer`.
pub struct DecoderSizes {
    pub hidden: usize,
    pub q: usize,
    pub kv: usize,
    pub kv_in: usize,
    pub intermediate: usize,
    pub rms_norm_eps: f64,
}

impl DecoderLayer {
    pub fn new(s: &DecoderSizes, device: &Device) -> Self {
        let linear = |d_in, d_out| LinearConfig::new(d_in, d_out).with_bias(false).init(device);
        let norm = || RmsNormConfig::new(s.hidden).with_epsilon(s.rms_norm_eps).init(device);
        DecoderLayer {
            input_layernorm: norm(),
            self_attn: Projections { q_proj: linear(s.hidden, s.q), k_proj: linear(s.kv_in, s.kv), v_proj: linear(s.kv_in, s.kv), o_proj: linear(s.q, s.hidden) },
            post_attention_layernorm: norm(),
            mlp: Mlp { gate_proj: linear(s.hidden, s.intermediate), up_proj: linear(s.hidden, s.intermediate), down_proj: linear(s.intermediate, s.hidden) },
        }
    }
}

#[derive(Module, Debug)]
pub struct Projections {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
}

/// LLaMA's MLP: down(silu(gate(x)) * up(x)), no biases.
#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.down_proj.forward(silu(self.gate_proj.forward(x.clone())) * self.up_proj.forward(x))
    }
}

/// A float input [..] as a tensor on `device` (one copy into Burn's storage).
pub fn input<const D: usize>(inputs: &Arrays, name: &str, device: &Device) -> Result<Tensor<D>> {
    let array = get(inputs, name)?;
    match &array.data {
        HostData::F32(values) => Ok(Tensor::from_data(TensorData::new(values.clone(), array.shape.clone()), device)),
        HostData::I64(_) => Err(arena_common::Error(format!("input {name:?} is int64; expected float32"))),
    }
}

/// An integer input (token ids, labels) as an Int tensor on `device`.
pub fn input_ids<const D: usize>(inputs: &Arrays, name: &str, device: &Device) -> Result<Tensor<D, Int>> {
    let array = get(inputs, name)?;
    match &array.data {
        HostData::I64(values) => Ok(Tensor::from_data(TensorData::new(values.clone(), array.shape.clone()), device)),
        HostData::F32(_) => Err(arena_common::Error(format!("input {name:?} is float32; expected int64"))),
    }
}

/// Tensor data as a float32 host array (one copy out of Burn's storage).
pub fn host(data: TensorData) -> Result<HostArray> {
    let shape = data.shape().to_vec();
    let values = data.convert::<f32>().try_into_vec::<f32>().map_err(|e| arena_common::Error(format!("{e:?}")))?;
    HostArray::f32(shape, values)
}

/// A computed output, kept flat with its shape until `fetch` (outputs of different ranks in one list).
pub struct Output {
    name: String,
    shape: Vec<usize>,
    flat: Tensor<1>,
}

/// The last call's results, kept until `fetch`.
pub enum Last {
    Empty,
    /// The workload's outputs under the family's OUTPUTS names.
    Outputs(Vec<Output>),
    /// The loss value and the gradients (the loss tensor is not kept: it would hold its graph), and
    /// what the call computed besides (ResNet: its BatchNorm running statistics).
    Training { loss: f32, grads: Gradients, outputs: Vec<Output> },
}

impl Last {
    pub fn output<const D: usize>(name: &str, tensor: Tensor<D>) -> Last {
        Last::outputs(vec![output(name, tensor)])
    }

    /// Several outputs; the clock stops only once they are computed (`settle`).
    pub fn outputs(outputs: Vec<Output>) -> Last {
        for out in &outputs {
            settle(&out.flat);
        }
        Last::Outputs(outputs)
    }

    /// Backward from a scalar loss; returns once the gradients are computed.
    pub fn from_loss(loss: Tensor<1>) -> Last {
        Last::from_loss_with_outputs(loss, Vec::new())
    }

    /// Backward from a scalar loss, with other `outputs` of the same call; returns once all are computed.
    pub fn from_loss_with_outputs(loss: Tensor<1>, outputs: Vec<Output>) -> Last {
        let grads = loss.backward();
        let device = loss.device();
        let loss = loss.into_scalar::<f32>();
        device.sync().expect("the device finishes the backward pass");
        for out in &outputs {
            settle(&out.flat);
        }
        Last::Training { loss, grads, outputs }
    }

    /// The outputs as f32 host arrays; for training "loss" and `grad/<official name>` of every
    /// trainable tensor, in PyTorch layout.
    pub fn fetch<M: Module>(&self, loaded: &Loaded<M>) -> Result<Arrays> {
        match self {
            Last::Empty => Err(arena_common::Error("fetch before run".into())),
            Last::Outputs(outputs) => to_host(outputs),
            Last::Training { loss, grads, outputs } => {
                let mut arrays = Arrays::new();
                for (name, gradient) in loaded.gradients(grads)? {
                    arrays.insert(format!("grad/{name}"), host(gradient)?);
                }
                arrays.insert("loss".into(), HostArray::f32(vec![], vec![*loss])?);
                arrays.extend(to_host(outputs)?);
                Ok(arrays)
            }
        }
    }
}

pub fn output<const D: usize>(name: &str, tensor: Tensor<D>) -> Output {
    let shape = tensor.dims().to_vec();
    Output { name: name.to_string(), shape, flat: tensor.flatten::<1>(0, D - 1) }
}

/// Outputs as f32 host arrays by name, in their own shapes.
fn to_host(outputs: &[Output]) -> Result<Arrays> {
    outputs
        .iter()
        .map(|out| {
            let flat = host(out.flat.clone().into_data())?;
            Ok((out.name.clone(), HostArray { shape: out.shape.clone(), data: flat.data }))
        })
        .collect()
}

/// Wait until `tensor` is computed: wait for the device, then read one element back (burn-flex runs
/// ops eagerly, but the clock must not trust that).
fn settle(tensor: &Tensor<1>) {
    tensor.device().sync().expect("the device finishes the call");
    let _ = tensor.clone().slice([0..1]).into_data();
}

/// cos/sin tables [positions, 2 * half] for rotate-half RoPE from a family's angles [positions, half]
/// (arena_common::tables: LLaMA's, lerobot's), repeated over the two halves as `rope` takes them.
pub fn rope_tables(angles: &[f32], half: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let positions = angles.len() / half;
    let table = |f: fn(f32) -> f32| {
        let values: Vec<f32> = angles.chunks(half).flat_map(|row| row.iter().chain(row).map(|a| f(*a))).collect();
        Tensor::from_data(TensorData::new(values, [positions, 2 * half]), device)
    };
    (table(f32::cos), table(f32::sin))
}

/// Rotate-half RoPE on x [b, heads, t, d] at positions start..start + t. Burn's RotaryEncoding rotates
/// interleaved pairs; permuting the q/k weights to use it would permute their gradients too.
pub fn rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>, start: usize) -> Tensor<4> {
    let [_, _, t, d] = x.dims();
    let cos = cos.clone().narrow(0, start, t).unsqueeze::<4>();
    let sin = sin.clone().narrow(0, start, t).unsqueeze::<4>();
    let first = x.clone().narrow(3, 0, d / 2);
    let second = x.clone().narrow(3, d / 2, d / 2);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    x * cos + rotated * sin
}

/// Scaled dot-product attention of q [b, heads, t, d] over k/v [b, kv_heads, s, d] (each K/V head
/// serves heads / kv_heads query heads); causal aligns the last query with the last key, as a decode
/// step against a cache needs. Burn's fused attention op: burn-flex's naive or tiled flash kernel by
/// size, which shares K/V heads itself; under autodiff its differentiable composition, whose matmul
/// needs the K/V heads repeated.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, causal: bool) -> Tensor<4> {
    let (k, v) = if q.is_autodiff() {
        let heads = q.dims()[1];
        (repeat_kv(k, heads), repeat_kv(v, heads))
    } else {
        (k, v)
    };
    fused_attention(q, k, v, None, None, AttentionModuleOptions { scale: None, softcap: None, is_causal: causal })
}

fn repeat_kv(x: Tensor<4>, heads: usize) -> Tensor<4> {
    let [b, kv_heads, s, d] = x.dims();
    if kv_heads == heads {
        return x;
    }
    x.unsqueeze_dim::<5>(2).expand([b, kv_heads, heads / kv_heads, s, d]).reshape([b, heads, s, d])
}

/// Logits of a head tied to the [vocab, hidden] embedding: x [b, t, hidden] @ embedding^T. For one
/// row (a decode step) the embedding goes on the left, where gemm reads each vocabulary row
/// contiguously (E x^T, already laid out as the [1, 1, vocab] logits); on the right, as a transposed
/// view, gemm strides across the whole matrix for every logit: SmolLM2's decode step took 133 ms that
/// way and takes 49 ms this way. Many rows (prefill, training) amortise it, and there the left form
/// would add a transposing copy of the logits.
pub fn tied_head(x: Tensor<3>, embedding: Tensor<2>) -> Tensor<3> {
    let [b, t, h] = x.dims();
    if b * t == 1 {
        let vocab = embedding.dims()[0];
        return embedding.matmul(x.reshape([1, h]).transpose()).reshape([1, 1, vocab]);
    }
    linear(x, embedding.transpose(), None)
}

/// Mean cross-entropy of logits [n, classes] against labels [n].
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let n = labels.dims()[0];
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([n, 1]));
    picked.mean().neg()
}

/// [b, t, heads * d] -> [b, heads, t, d]
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, t, hd] = x.dims();
    x.reshape([b, t, heads, hd / heads]).swap_dims(1, 2)
}

/// [b, heads, t, d] -> [b, t, heads * d]
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, heads, t, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, t, heads * d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;
    use burn::tensor::Distribution;

    /// softmax(q k^T / sqrt(d) + causal mask aligned bottom-right) v, spelled out.
    fn composed(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let [_, _, t, d] = q.dims();
        let s = k.dims()[2];
        let scores = q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt();
        // true where the key is after the query's position (tril_mask marks what lies above the band)
        let future = Tensor::<2, burn::tensor::Bool>::tril_mask([t, s], (s - t) as i64, &scores.device());
        let scores = scores.mask_fill(future.unsqueeze::<4>().expand([1, 1, t, s]), f32::NEG_INFINITY);
        softmax(scores, 3).matmul(v)
    }

    /// The sizes the full presets reach (Whisper's 1500 encoder positions, SD's 4096 latents) take
    /// burn-flex's tiled flash kernel; the tiny presets only its naive one. Both must agree with the
    /// composition, including a causal block of queries at the end of a longer key sequence.
    #[test]
    fn the_fused_attention_agrees_with_the_composition_on_both_kernels() {
        let device = Device::flex();
        for (t, s, causal) in [(8, 8, true), (600, 600, false), (300, 1000, true)] {
            // Two query heads share one K/V head (grouped-query attention).
            let rand = |heads, len| Tensor::<4>::random([1, heads, len, 32], Distribution::Normal(0.0, 1.0), &device);
            let (q, k, v) = (rand(2, t), rand(1, s), rand(1, s));
            let fused = attention(q.clone(), k.clone(), v.clone(), causal);
            let (k, v) = (repeat_kv(k, 2), repeat_kv(v, 2));
            let expected = if causal {
                composed(q, k, v)
            } else {
                softmax(q.matmul(k.swap_dims(2, 3)) / (32f64).sqrt(), 3).matmul(v)
            };
            let diff = (fused - expected).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-4, "t={t} s={s} causal={causal}: max diff {diff}");
        }
    }

    #[test]
    fn rope_rotates_halves_and_keeps_position_zero() {
        let device = Device::flex();
        let (cos, sin) = rope_tables(&arena_common::tables::llama_rope_angles(4, 4, 10000.0), 2, &device);
        let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 1, 4]), &device);
        let at0: Vec<f32> = rope(x.clone(), &cos, &sin, 0).into_data().try_to_vec().unwrap();
        assert_eq!(at0, vec![1.0, 2.0, 3.0, 4.0]);
        // Position 1, first frequency pair (x0, x2) rotated by 1 radian: x0 cos 1 - x2 sin 1.
        let at1: Vec<f32> = rope(x, &cos, &sin, 1).into_data().try_to_vec().unwrap();
        assert!((at1[0] - (1.0 * 1f32.cos() - 3.0 * 1f32.sin())).abs() < 1e-6, "{at1:?}");
    }
}
