//! What the Candle families share: parameters (loaded by official name, tracked only for training),
//! host <-> tensor conversion, and the layers in two forms.
//!
//! `Mode::Infer` takes candle's fused kernels (`softmax_last_dim`, `rms_norm`, `layer_norm`, `rope`):
//! they are faster, and they have no backward (`apply_op*_no_bwd`), so a training graph through them
//! would silently give every parameter upstream no gradient. `Mode::Train` takes the differentiable
//! compositions (`softmax`, `rms_norm_slow`, `layer_norm_slow`, `rope_slow`). Both must agree with
//! the reference: inference outputs are checked in the fused form, gradients in the other.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, Var, D};
use rayon::prelude::*;
use candle_nn::{ops, rotary_emb, Module};

use arena_common::{Arrays, HostArray, HostData};

use crate::common_error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Infer,
    Train,
}

/// The model's tensors under their official names. Each is a `Var` so that training can take
/// gradients; inference reads them detached (same storage, no graph recorded).
pub struct Params {
    vars: HashMap<String, Var>,
    order: Vec<String>,
    pub device: Device,
}

impl Params {
    /// Load every weight, checking it against the shapes the family expects (`expected`: name -> shape);
    /// a missing, unexpected or wrongly shaped tensor is an error that names it.
    pub fn load(weights: Arrays, expected: &[(String, Vec<usize>)], device: &Device) -> Result<Self> {
        let mut weights = weights;
        let mut vars = HashMap::new();
        let mut order = Vec::new();
        for (name, shape) in expected {
            let array = weights.remove(name).ok_or_else(|| candle_core::Error::Msg(format!("weight {name:?} is missing from the weights file")))?;
            if &array.shape != shape {
                candle_core::bail!("weight {name:?} has shape {:?}, the model needs {:?}", array.shape, shape);
            }
            vars.insert(name.clone(), Var::from_tensor(&to_tensor(array, device)?)?);
            order.push(name.clone());
        }
        if let Some(extra) = weights.keys().next() {
            candle_core::bail!("weight {extra:?} is not a tensor of this model ({} unexpected)", weights.len());
        }
        Ok(Params { vars, order, device: device.clone() })
    }

    /// A tensor for the forward: tracked (a graph is recorded) when training, detached otherwise.
    pub fn get(&self, name: &str, mode: Mode) -> Result<Tensor> {
        let var = self.vars.get(name).ok_or_else(|| candle_core::Error::Msg(format!("no parameter {name:?}")))?;
        Ok(match mode {
            Mode::Train => var.as_tensor().clone(),
            Mode::Infer => var.as_detached_tensor(),
        })
    }

    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// `grad/<name>` for every trainable parameter (all but `frozen`), in PyTorch layout (Candle keeps
    /// PyTorch's). A trainable parameter that received no gradient is an error naming it: that is how a
    /// graph cut by a fused op (or a missing use of a weight) shows up.
    pub fn gradients(&self, grads: &GradStore, frozen: &[&str]) -> Result<Arrays> {
        let mut out = Arrays::new();
        let mut missing = Vec::new();
        for name in &self.order {
            if frozen.contains(&name.as_str()) {
                continue;
            }
            match grads.get(self.vars[name].as_tensor()) {
                Some(g) => {
                    out.insert(format!("grad/{name}"), to_host(g)?);
                }
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            candle_core::bail!("no gradient reached {} parameter(s), e.g. {:?}", missing.len(), &missing[..missing.len().min(3)]);
        }
        Ok(out)
    }
}

/// What a family keeps of its last timed call until `fetch` turns it into host arrays.
pub enum Last {
    Empty,
    /// The workload's outputs under the family's OUTPUTS names.
    Outputs(Vec<(&'static str, Tensor)>),
    /// The loss, detached (a kept loss would hold its whole graph, every activation, into the next
    /// call), the gradients, and what the call computed besides (ResNet: its BatchNorm running
    /// statistics, computed from detached tensors).
    Training { loss: Tensor, grads: GradStore, outputs: Vec<(String, Tensor)> },
}

impl Last {
    pub fn output(name: &'static str, tensor: Tensor) -> Last {
        Last::Outputs(vec![(name, tensor)])
    }

    /// Backward from a scalar loss.
    pub fn from_loss(loss: Tensor) -> Result<Last> {
        Last::from_loss_with_outputs(loss, Vec::new())
    }

    /// Backward from a scalar loss, with other `outputs` of the same call.
    pub fn from_loss_with_outputs(loss: Tensor, outputs: Vec<(String, Tensor)>) -> Result<Last> {
        let grads = loss.backward()?;
        Ok(Last::Training { loss: loss.detach(), grads, outputs })
    }

    /// The outputs as f32 host arrays; for training "loss" and `grad/<name>` of every parameter but `frozen`.
    pub fn fetch(&self, params: &Params, frozen: &[&str]) -> Result<Arrays> {
        match self {
            Last::Empty => candle_core::bail!("fetch before run"),
            Last::Outputs(named) => named_to_host(named),
            Last::Training { loss, grads, outputs } => {
                let mut out = params.gradients(grads, frozen)?;
                out.insert("loss".into(), to_host(&loss.reshape(())?)?);
                out.extend(named_to_host(outputs)?);
                Ok(out)
            }
        }
    }
}

fn named_to_host<N: AsRef<str>>(named: &[(N, Tensor)]) -> Result<Arrays> {
    named.iter().map(|(name, t)| Ok((name.as_ref().to_string(), to_host(t)?))).collect()
}

/// A host array as a tensor (float32 stays F32, int64 stays I64), moving the data (no copy on the CPU).
pub fn to_tensor(array: HostArray, device: &Device) -> Result<Tensor> {
    match array.data {
        HostData::F32(v) => Tensor::from_vec(v, array.shape, device),
        HostData::I64(v) => Tensor::from_vec(v, array.shape, device),
    }
}

/// An input by name as a tensor, or an error naming it.
pub fn input(inputs: &Arrays, name: &str, device: &Device) -> Result<Tensor> {
    let array = arena_common::array::get(inputs, name).map_err(common_error)?;
    to_tensor(array.clone(), device)
}

/// A tensor as a float32 host array (one copy out of candle's storage).
pub fn to_host(t: &Tensor) -> Result<HostArray> {
    let shape = t.dims().to_vec();
    let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    HostArray::f32(shape, data).map_err(common_error)
}

/// y = x W^T (+ b) with PyTorch's [out, in] weight, for inputs of any rank.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    candle_nn::Linear::new(weight.clone(), bias.cloned()).forward(x)
}

pub fn softmax_last(x: &Tensor, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Infer => ops::softmax_last_dim(x),
        Mode::Train if x.device().is_cpu() => x.contiguous()?.apply_op1(SoftmaxLastDim),
        // The memory-saving op below is written for the CPU; elsewhere candle's differentiable softmax.
        Mode::Train => ops::softmax(x, D::Minus1),
    }
}

/// Softmax over the last dimension with a backward of its own, for training.
///
/// candle's fused `softmax_last_dim` has no backward, and the differentiable `ops::softmax` is five
/// graph nodes (max, subtract, exp, sum, divide), each keeping a tensor of the scores' size alive until
/// the backward pass. For the SD UNet's 4096-token self-attention that is 2.5 GB per layer at batch 1,
/// and the training step was killed for memory at 24 GiB. One node keeps only its input and output;
/// the backward is dx = y * (dy - sum(dy * y)).
struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "arena-softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("arena-softmax-last-dim takes a contiguous f32 tensor");
        };
        let width = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; end - start];
        out.par_chunks_mut(width).zip(data[start..end].par_chunks(width)).for_each(|(y, x)| {
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (yi, xi) in y.iter_mut().zip(x) {
                *yi = (xi - max).exp();
                sum += *yi;
            }
            y.iter_mut().for_each(|yi| *yi /= sum);
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dot = (dy * y)?.sum_keepdim(D::Minus1)?;
        Ok(Some((y * dy.broadcast_sub(&dot)?)?))
    }
}

pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Infer => ops::rms_norm(&x.contiguous()?, weight, eps as f32),
        Mode::Train => ops::rms_norm_slow(x, weight, eps as f32),
    }
}

pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Infer => ops::layer_norm(&x.contiguous()?, weight, bias, eps as f32),
        Mode::Train => ops::layer_norm_slow(x, weight, bias, eps as f32),
    }
}

/// cos and sin tables [positions, half] for rotate-half RoPE from a family's angles [positions, half]
/// (arena_common::tables: LLaMA's, lerobot's).
pub fn rope_tables(angles: &[f32], half: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let table = |f: fn(f32) -> f32| Tensor::from_vec(angles.iter().map(|a| f(*a)).collect::<Vec<f32>>(), (angles.len() / half, half), device);
    Ok((table(f32::cos)?, table(f32::sin)?))
}

/// Rotate-half RoPE of x [batch, heads, seq, head_dim] at positions start..start+seq.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, start: usize, mode: Mode) -> Result<Tensor> {
    let seq = x.dim(2)?;
    let (cos, sin) = (cos.narrow(0, start, seq)?.contiguous()?, sin.narrow(0, start, seq)?.contiguous()?);
    match mode {
        Mode::Infer => rotary_emb::rope(&x.contiguous()?, &cos, &sin),
        Mode::Train => rotary_emb::rope_slow(x, &cos, &sin),
    }
}

/// [batch, kv_heads, seq, d] -> [batch, kv_heads * groups, seq, d], each K/V head repeated for its
/// query group (transformers' repeat_kv).
pub fn repeat_kv(x: &Tensor, groups: usize) -> Result<Tensor> {
    if groups == 1 {
        return Ok(x.clone());
    }
    let (b, kv, s, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, kv, groups, s, d))?.reshape((b, kv * groups, s, d))
}

/// Scaled dot-product attention, q [b, h, sq, d], k/v [b, kv_h, sk, d] (grouped-query: h is a multiple
/// of kv_h). `causal_offset`: Some(o) masks key j for query i when j > i + o (o = keys before the first
/// query); None attends everywhere.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, causal_offset: Option<usize>, mode: Mode) -> Result<Tensor> {
    let groups = q.dim(1)? / k.dim(1)?;
    let (k, v) = (repeat_kv(k, groups)?, repeat_kv(v, groups)?);
    if mode == Mode::Train && q.device().is_cpu() {
        let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
        return q.apply_op3(&k, &v, Attention { causal_offset });
    }
    // Scaling q rather than the scores keeps one score-sized tensor fewer alive for the backward.
    let scale = 1.0 / (q.dim(3)? as f64).sqrt();
    let mut scores = (q * scale)?.contiguous()?.matmul(&k.t()?.contiguous()?)?;
    if let Some(offset) = causal_offset {
        let (sq, sk) = (q.dim(2)?, k.dim(2)?);
        if sq > 1 || offset + sq < sk {
            scores = scores.broadcast_add(&causal_mask(sq, sk, offset, q.device())?)?;
        }
    }
    softmax_last(&scores, mode)?.matmul(&v.contiguous()?)
}

/// Training attention as one graph node that keeps only q, k, v and its output for the backward,
/// which recomputes the probabilities. As separate ops (scores, softmax, matmul), candle keeps two
/// [heads, queries, keys] tensors per attention alive until the backward ends (it frees nothing
/// early): 1 GB for each of the SD UNet's 4096-token self-attentions at batch 1, part of what got its
/// training step killed for memory at 24 GiB.
struct Attention {
    causal_offset: Option<usize>,
}

impl Attention {
    /// softmax(q k^T / sqrt(d) + mask) for q [b, h, sq, d], k [b, h, sk, d] (untracked tensors).
    fn probabilities(&self, q: &Tensor, k: &Tensor) -> Result<Tensor> {
        let scale = 1.0 / (q.dim(3)? as f64).sqrt();
        let mut scores = (q * scale)?.matmul(&k.t()?)?;
        if let Some(offset) = self.causal_offset {
            scores = scores.broadcast_add(&causal_mask(q.dim(2)?, k.dim(2)?, offset, q.device())?)?;
        }
        ops::softmax_last_dim(&scores)
    }
}

fn cpu_tensor(storage: &CpuStorage, layout: &Layout) -> Result<Tensor> {
    let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
        candle_core::bail!("arena attention takes contiguous f32 tensors");
    };
    Tensor::from_slice(&data[start..end], layout.dims(), &Device::Cpu)
}

impl candle_core::CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "arena-attention"
    }

    fn cpu_fwd(&self, q: &CpuStorage, lq: &Layout, k: &CpuStorage, lk: &Layout, v: &CpuStorage, lv: &Layout) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (cpu_tensor(q, lq)?, cpu_tensor(k, lk)?, cpu_tensor(v, lv)?);
        let out = self.probabilities(&q, &k)?.matmul(&v)?;
        Ok((CpuStorage::F32(out.flatten_all()?.to_vec1::<f32>()?), out.shape().clone()))
    }

    /// With P the probabilities and S the scaled scores: dV = P^T dO, dP = dO V^T,
    /// dS = P * (dP - rowsum(dO * O)), dQ = dS K / sqrt(d), dK = dS^T Q / sqrt(d).
    fn bwd(&self, q: &Tensor, k: &Tensor, v: &Tensor, out: &Tensor, d_out: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (q, k, v, out, d_out) = (q.detach(), k.detach(), v.detach(), out.detach(), d_out.detach());
        let scale = 1.0 / (q.dim(3)? as f64).sqrt();
        let p = self.probabilities(&q, &k)?;
        let d_v = p.t()?.matmul(&d_out)?;
        let d_p = d_out.matmul(&v.t()?)?;
        let row = (&d_out * &out)?.sum_keepdim(D::Minus1)?;
        let d_s = (p * d_p.broadcast_sub(&row)?)?;
        let d_q = (d_s.matmul(&k)? * scale)?;
        let d_k = (d_s.t()?.matmul(&q)? * scale)?;
        Ok((Some(d_q), Some(d_k), Some(d_v)))
    }
}

/// [sq, sk] additive mask: 0 where key j <= query i + offset, -inf after.
pub fn causal_mask(sq: usize, sk: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..sq)
        .flat_map(|i| (0..sk).map(move |j| if j <= i + offset { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(mask, (sq, sk), device)
}

/// Mean cross-entropy of logits [n, classes] against integer labels [n].
///
/// `candle_nn::loss::cross_entropy` takes `candle_nn::ops::log_softmax`, whose shift by the row's max
/// is differentiated too: the shift's gradient is -sum(softmax - onehot) per row, zero in exact
/// arithmetic but in f32 the rounding error of summing the row's probabilities (~1e-7 over 50 k
/// classes), and the max's backward puts it all on the row's argmax logit. Through Whisper's tied head
/// that moved the embedding gradient of the argmax tokens by ~1e-3 relative, where torch, JAX and Burn
/// agree with float64 to ~1e-6. The shift is a constant of the function, so it is detached here, as
/// `jax.nn.log_softmax` does (`lax.stop_gradient` of the max) and as torch's fused backward implies;
/// the loss and every other value are unchanged.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let shift = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&shift)?;
    let log_probs = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)?;
    candle_nn::loss::nll(&log_probs, labels)
}

/// Test helper: the largest |a - b| is at most `tol`.
#[cfg(test)]
pub(crate) fn close(a: &Tensor, b: &Tensor, tol: f32) {
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d <= tol, "max |a - b| = {d}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fused_and_differentiable_forms_agree() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 5, 8), &dev).unwrap();
        let w = Tensor::randn(1f32, 0.1, 8, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, 8, &dev).unwrap();
        close(&softmax_last(&x, Mode::Infer).unwrap(), &softmax_last(&x, Mode::Train).unwrap(), 1e-6);
        close(&rms_norm(&x, &w, 1e-5, Mode::Infer).unwrap(), &rms_norm(&x, &w, 1e-5, Mode::Train).unwrap(), 1e-5);
        close(&layer_norm(&x, &w, &b, 1e-5, Mode::Infer).unwrap(), &layer_norm(&x, &w, &b, 1e-5, Mode::Train).unwrap(), 1e-5);
        let (cos, sin) = rope_tables(&arena_common::tables::llama_rope_angles(16, 8, 10000.0), 4, &dev).unwrap();
        close(&rope(&x, &cos, &sin, 4, Mode::Infer).unwrap(), &rope(&x, &cos, &sin, 4, Mode::Train).unwrap(), 1e-6);
    }

    #[test]
    fn training_mode_ops_carry_gradients_and_fused_ones_do_not() {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::ones(8, DType::F32, &dev).unwrap()).unwrap();
        let x = Tensor::randn(0f32, 1.0, (4, 8), &dev).unwrap();
        let trained = rms_norm(&x, w.as_tensor(), 1e-5, Mode::Train).unwrap().sqr().unwrap().sum_all().unwrap();
        assert!(trained.backward().unwrap().get(w.as_tensor()).is_some());
        let fused = rms_norm(&x, w.as_tensor(), 1e-5, Mode::Infer).unwrap().sqr().unwrap().sum_all().unwrap();
        assert!(fused.backward().unwrap().get(w.as_tensor()).is_none(), "candle's fused rms_norm has no backward (the trap this module avoids)");
    }

    #[test]
    fn the_cross_entropy_gradient_is_softmax_minus_onehot_to_f32_precision() {
        // Whisper's vocabulary: the rounding error of a 51865-term sum must not land on the argmax.
        let (n, classes) = (4usize, 51865usize);
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 3.0, (n, classes), &dev).unwrap()).unwrap();
        let labels = Tensor::new(&[7u32, 51000, 3, 20000], &dev).unwrap();
        let grad = cross_entropy(x.as_tensor(), &labels).unwrap().backward().unwrap().get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        let logits = x.as_tensor().to_vec2::<f32>().unwrap();
        let label_ids = labels.to_vec1::<u32>().unwrap();
        for (row, (g, l)) in grad.iter().zip(&logits).enumerate() {
            let max = l.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
            let total: f64 = l.iter().map(|&v| (v as f64 - max).exp()).sum();
            let argmax = (0..classes).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
            let exact = ((l[argmax] as f64 - max).exp() / total - if argmax == label_ids[row] as usize { 1.0 } else { 0.0 }) / n as f64;
            let rel = (g[argmax] as f64 - exact).abs() / exact.abs();
            assert!(rel < 1e-5, "row {row}: the argmax logit's gradient is off by {rel:.2e} relative");
        }
    }

    #[test]
    fn the_training_softmax_has_the_composed_softmax_gradient() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f32, 3.0, (3, 4, 7), &dev).unwrap())).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 4, 7), &dev).unwrap();
        let ours = softmax_last(x.as_tensor(), Mode::Train).unwrap();
        let composed = ops::softmax(x.as_tensor(), D::Minus1).unwrap();
        close(&ours, &composed, 1e-6);
        let grad = |y: &Tensor| (y * &w).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
        close(&grad(&ours), &grad(&composed), 1e-6);
    }

    #[test]
    fn training_attention_matches_the_composed_ops_in_value_and_gradients() {
        let dev = Device::Cpu;
        let var = |shape: (usize, usize, usize, usize)| Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev).unwrap()).unwrap();
        let (q, k, v) = (var((2, 4, 5, 8)), var((2, 2, 7, 8)), var((2, 2, 7, 8)));
        let w = Tensor::randn(0f32, 1.0, (2, 4, 5, 8), &dev).unwrap();
        for offset in [None, Some(2)] {
            let composed = {
                let groups = 2;
                let (k, v) = (repeat_kv(k.as_tensor(), groups).unwrap(), repeat_kv(v.as_tensor(), groups).unwrap());
                let mut s = (q.as_tensor().matmul(&k.t().unwrap()).unwrap() / (8f64).sqrt()).unwrap();
                if let Some(o) = offset {
                    s = s.broadcast_add(&causal_mask(5, 7, o, &dev).unwrap()).unwrap();
                }
                ops::softmax(&s, D::Minus1).unwrap().matmul(&v).unwrap()
            };
            let ours = attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), offset, Mode::Train).unwrap();
            close(&ours, &composed, 1e-5);
            let grads = |y: &Tensor| (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, b) = (grads(&ours), grads(&composed));
            for x in [&q, &k, &v] {
                close(a.get(x.as_tensor()).unwrap(), b.get(x.as_tensor()).unwrap(), 1e-5);
            }
        }
    }

    #[test]
    fn the_causal_mask_lets_each_query_see_its_past() {
        let mask = causal_mask(2, 4, 2, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(mask[0][..3], [0.0, 0.0, 0.0]);
        assert!(mask[0][3].is_infinite() && mask[1][3] == 0.0);
    }
}
