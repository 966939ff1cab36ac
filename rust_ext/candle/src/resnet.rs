//! ResNet in Candle, after torchvision's `ResNet` (v1.5: the stride of a Bottleneck sits on its 3x3
//! conv): conv1 7x7/2 pad 3 (no bias) -> bn1 -> ReLU -> max-pool 3x3/2 pad 1 -> layer1..layer4 of
//! BasicBlock or Bottleneck (`groups` on the Bottleneck's 3x3; downsample = strided 1x1 conv + BN where
//! the shape changes) -> global average pool -> fc. Tensors by torchvision's state-dict names, the
//! BatchNorm buffers included (`num_batches_tracked` is int64 and never used).
//!
//! inference / latency: eval-mode BatchNorm (running statistics, eps 1e-5), logits [batch, classes].
//! training: train-mode BatchNorm (the batch's own mean and biased variance), mean cross-entropy against
//! `labels`, forward + backward; the BatchNorm buffers are not trainable and get no gradient (the JAX
//! version's `frozen`). It also returns the running statistics torch's train step leaves
//! (`bn/<buffer name>`: momentum 0.1 from the loaded ones towards the batch mean and the unbiased batch
//! variance), computed, not stored: the parameters never change, so every call, timed or not, moves
//! the loaded statistics by one step, and inference never sees them.
//!
//! Candle specifics:
//! - Infer runs NCHW on candle's own kernels (conv2d = im2col + gemm, max_pool2d).
//! - Train runs channel-major, activations [C, B, H, W], so that every BatchNorm reduction (the
//!   batch statistics, and in the backward the sums over the broadcast per-channel tensors) is over
//!   trailing contiguous dims: candle's CPU sum over leading or middle dims is a scalar loop with a
//!   divmod per element, which dominated the step. Convs there are written as im2col of differentiable
//!   slices and one gemm [O, C*k*k] x [C*k*k, B*Ho*Wo]: candle's conv2d backward would compute the
//!   input gradient with conv_transpose2d, a direct loop nest on the CPU. Same sums, in another order.
//! - candle's max_pool2d has no backward when kernel != stride, so the training pool is an elementwise
//!   maximum of stride-2 slices of the zero-padded input (the pool follows a ReLU, so a zero pad can
//!   tie with a real value but never exceed it: the same maxima as torch's -inf padding).

use candle_core::{Device, Result, Tensor};

use arena_common::config::{self, Resnet as Config};
use arena_common::{Arrays, NativeModel, Workload};

use crate::layers::{self, Last, Mode, Params};
use crate::{native_error, Family, Native};

const STEM_CHANNELS: usize = 64;
const STAGE_PLANES: [usize; 4] = [64, 128, 256, 512];
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;
/// The BatchNorm buffers: torch neither trains them nor reports a gradient for them.
const BUFFERS: [&str; 3] = ["running_mean", "running_var", "num_batches_tracked"];

pub fn build(config_json: &str, weights: Arrays, device: &Device) -> arena_common::Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("resnet", config_json)?;
    if cfg.block != "basic" && cfg.block != "bottleneck" {
        return Err(arena_common::Error(format!("resnet config: unknown block {:?} (basic, bottleneck)", cfg.block)));
    }
    let shapes = parameter_shapes(&cfg);
    let frozen = shapes
        .iter()
        .map(|(name, _)| name)
        .filter(|name| BUFFERS.iter().any(|b| name.ends_with(&format!(".{b}"))))
        .cloned()
        .collect();
    let params = Params::load(weights, &shapes, device).map_err(native_error)?;
    Ok(Box::new(Native::new(Resnet { cfg, params, frozen, state: State::Empty })))
}

/// One residual block as `ResNet._make_layer` builds it.
struct Block {
    prefix: String,
    inplanes: usize,
    planes: usize,
    stride: usize,
    downsample: bool,
}

/// Every block in order (arena/families/resnet.py `blocks`).
fn blocks(cfg: &Config) -> Vec<Block> {
    let mut out = Vec::new();
    let mut inplanes = STEM_CHANNELS;
    for (stage, (&planes, &count)) in STAGE_PLANES.iter().zip(cfg.layers.iter()).enumerate() {
        let stride = if stage == 0 { 1 } else { 2 };
        for j in 0..count {
            let s = if j == 0 { stride } else { 1 };
            let downsample = s != 1 || inplanes != planes * cfg.expansion();
            out.push(Block { prefix: format!("layer{}.{j}", stage + 1), inplanes, planes, stride: s, downsample });
            inplanes = planes * cfg.expansion();
        }
    }
    out
}

/// Bottleneck's inner width, as torchvision computes it: int(planes * (width_per_group / 64)) * groups.
fn width(cfg: &Config, planes: usize) -> usize {
    ((planes as f64 * (cfg.width_per_group as f64 / 64.0)) as usize) * cfg.groups
}

/// (name, in_channels, out_channels, kernel, groups) of a block's residual-branch convs, in order.
fn convs(cfg: &Config, b: &Block) -> Vec<(String, usize, usize, usize, usize)> {
    let p = &b.prefix;
    let out = b.planes * cfg.expansion();
    if cfg.block == "basic" {
        return vec![(format!("{p}.conv1"), b.inplanes, b.planes, 3, 1), (format!("{p}.conv2"), b.planes, b.planes, 3, 1)];
    }
    let w = width(cfg, b.planes);
    vec![
        (format!("{p}.conv1"), b.inplanes, w, 1, 1),
        (format!("{p}.conv2"), w, w, 3, cfg.groups),
        (format!("{p}.conv3"), w, out, 1, 1),
    ]
}

fn bn_shapes(prefix: &str, channels: usize) -> Vec<(String, Vec<usize>)> {
    vec![
        (format!("{prefix}.weight"), vec![channels]),
        (format!("{prefix}.bias"), vec![channels]),
        (format!("{prefix}.running_mean"), vec![channels]),
        (format!("{prefix}.running_var"), vec![channels]),
        (format!("{prefix}.num_batches_tracked"), vec![]),
    ]
}

/// Every tensor of torchvision's state dict, as arena/families/resnet.py lists them.
pub fn parameter_shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let mut shapes = vec![("conv1.weight".to_string(), vec![STEM_CHANNELS, 3, 7, 7])];
    shapes.extend(bn_shapes("bn1", STEM_CHANNELS));
    for b in blocks(cfg) {
        for (i, (name, cin, cout, k, g)) in convs(cfg, &b).into_iter().enumerate() {
            shapes.push((format!("{name}.weight"), vec![cout, cin / g, k, k]));
            shapes.extend(bn_shapes(&format!("{}.bn{}", b.prefix, i + 1), cout));
        }
        if b.downsample {
            let out = b.planes * cfg.expansion();
            shapes.push((format!("{}.downsample.0.weight", b.prefix), vec![out, b.inplanes, 1, 1]));
            shapes.extend(bn_shapes(&format!("{}.downsample.1", b.prefix), out));
        }
    }
    let features = STAGE_PLANES[3] * cfg.expansion();
    shapes.push(("fc.weight".into(), vec![cfg.num_classes, features]));
    shapes.push(("fc.bias".into(), vec![cfg.num_classes]));
    shapes
}

/// Every `stride`-th of `n` entries of `x` along `dim`, starting at `start` (x needs start + stride * n
/// entries there): a narrow and a reshape, both differentiable.
fn strided(x: &Tensor, dim: usize, start: usize, n: usize, stride: usize) -> Result<Tensor> {
    if stride == 1 {
        return x.narrow(dim, start, n);
    }
    let mut dims = x.dims().to_vec();
    let x = x.narrow(dim, start, stride * n)?;
    dims[dim] = n;
    dims.insert(dim + 1, stride);
    x.reshape(dims)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
}

/// nn.MaxPool2d(3, stride=2, padding=1) of a non-negative (post-ReLU) x [.., .., h, w]. Zero padding
/// then equals torch's -inf padding. Infer: candle's pool. Train: a max over the window's three rows,
/// then over its three columns, each of stride-2 slices (the same max as over the nine slices; candle's
/// pool has no backward for kernel != stride).
fn max_pool_3x3_s2(x: &Tensor, mode: Mode) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (ho, wo) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    match mode {
        Mode::Infer => x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.max_pool2d_with_stride(3, 2),
        Mode::Train => {
            // One extra zero row/column on the right keeps every slice in range for odd sizes; the
            // slices only ever reach it at positions the reshape drops.
            let x = x.pad_with_zeros(2, 1, 2)?.pad_with_zeros(3, 1, 2)?;
            let rows = strided(&x, 2, 0, ho, 2)?.maximum(&strided(&x, 2, 1, ho, 2)?)?.maximum(&strided(&x, 2, 2, ho, 2)?)?;
            strided(&rows, 3, 0, wo, 2)?.maximum(&strided(&rows, 3, 1, wo, 2)?)?.maximum(&strided(&rows, 3, 2, wo, 2)?)
        }
    }
}

/// nn.Conv2d without bias (dilation 1) with weight [o, c / groups, kh, kw]. Infer: x NCHW, candle's
/// conv2d. Train: x channel-major [c, b, h, w] -> [o, b, ho, wo], as im2col (strided slices of the
/// zero-padded input, all differentiable) and a matmul per group.
fn conv2d(x: &Tensor, weight: &Tensor, stride: usize, padding: usize, groups: usize, mode: Mode) -> Result<Tensor> {
    if mode == Mode::Infer {
        return x.conv2d(weight, padding, stride, 1, groups);
    }
    let (c, b, h, w) = x.dims4()?;
    let (o, _, kh, kw) = weight.dims4()?;
    let (ho, wo) = ((h + 2 * padding - kh) / stride + 1, (w + 2 * padding - kw) / stride + 1);
    let columns = if kh == 1 && kw == 1 && padding == 0 && stride == 1 {
        x.reshape((c, b * h * w))?
    } else {
        // stride - 1 extra zeros on the right keep every strided slice in range; no element a slice
        // keeps ever comes from them.
        let extra = padding + stride - 1;
        let x = x.pad_with_zeros(2, padding, extra)?.pad_with_zeros(3, padding, extra)?;
        let mut taps = Vec::with_capacity(kh * kw);
        for i in 0..kh {
            let rows = strided(&x, 2, i, ho, stride)?;
            for j in 0..kw {
                taps.push(strided(&rows, 3, j, wo, stride)?);
            }
        }
        // [c, kh * kw, b, ho, wo]: rows in the (c, i, j) order of the flattened weight
        Tensor::stack(&taps, 1)?.reshape((c * kh * kw, b * ho * wo))?
    };
    let k = c / groups * kh * kw;
    let y = if groups == 1 {
        weight.reshape((o, k))?.matmul(&columns)?
    } else {
        weight.reshape((groups, o / groups, k))?.matmul(&columns.reshape((groups, k, b * ho * wo))?)?
    };
    y.reshape((o, b, ho, wo))
}

/// The running statistics a train-mode forward's BatchNorms leave, as (output name, tensor).
type Moved = Vec<(String, Tensor)>;

enum State {
    Empty,
    Classify { images: Tensor },
    Training { images: Tensor, labels: Tensor },
}


struct Resnet {
    cfg: Config,
    params: Params,
    frozen: Vec<String>,
    state: State,
}

impl Resnet {
    fn p(&self, name: &str, mode: Mode) -> Result<Tensor> {
        self.params.get(name, mode)
    }

    /// nn.BatchNorm2d. Infer: x NCHW, eval mode (running statistics). Train: x channel-major
    /// [c, b, h, w], train mode (the batch's mean and biased variance over b, h, w), and the running
    /// statistics moved from the loaded ones onto `moved` (torch's update: the unbiased variance).
    fn batch_norm(&self, name: &str, x: &Tensor, mode: Mode, moved: &mut Moved) -> Result<Tensor> {
        let p = |tensor: &str| self.p(&format!("{name}.{tensor}"), mode);
        match mode {
            Mode::Infer => {
                let c = x.dim(1)?;
                let (mean, var) = (p("running_mean")?, p("running_var")?);
                let scale = p("weight")?.mul(&(var + BN_EPS)?.sqrt()?.recip()?)?;
                let shift = p("bias")?.sub(&mean.mul(&scale)?)?;
                x.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?.broadcast_add(&shift.reshape((1, c, 1, 1))?)
            }
            Mode::Train => {
                let (c, b, h, w) = x.dims4()?;
                let n = (b * h * w) as f64;
                let x = x.reshape((c, b * h * w))?;
                let mean = (x.sum_keepdim(1)? / n)?;
                let centered = x.broadcast_sub(&mean)?;
                let var = (centered.sqr()?.sum_keepdim(1)? / n)?;
                for (stat, batch) in [("running_mean", mean.detach()), ("running_var", (var.detach() * (n / (n - 1.0)))?)] {
                    let loaded = self.p(&format!("{name}.{stat}"), Mode::Infer)?;
                    let step = ((loaded * (1.0 - BN_MOMENTUM))? + (batch.reshape(c)? * BN_MOMENTUM)?)?;
                    moved.push((format!("bn/{name}.{stat}"), step));
                }
                let scale = p("weight")?.reshape((c, 1))?.mul(&(var + BN_EPS)?.sqrt()?.recip()?)?;
                centered.broadcast_mul(&scale)?.broadcast_add(&p("bias")?.reshape((c, 1))?)?.reshape((c, b, h, w))
            }
        }
    }

    /// A bias-free conv followed by its BatchNorm.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn(&self, conv: &str, bn: &str, x: &Tensor, stride: usize, padding: usize, groups: usize, mode: Mode, moved: &mut Moved) -> Result<Tensor> {
        let y = conv2d(x, &self.p(&format!("{conv}.weight"), mode)?, stride, padding, groups, mode)?;
        self.batch_norm(bn, &y, mode, moved)
    }

    /// relu(residual branch + shortcut).
    fn block(&self, b: &Block, x: &Tensor, mode: Mode, moved: &mut Moved) -> Result<Tensor> {
        let p = &b.prefix;
        let out = if self.cfg.block == "basic" {
            let out = self.conv_bn(&format!("{p}.conv1"), &format!("{p}.bn1"), x, b.stride, 1, 1, mode, moved)?.relu()?;
            self.conv_bn(&format!("{p}.conv2"), &format!("{p}.bn2"), &out, 1, 1, 1, mode, moved)?
        } else {
            let out = self.conv_bn(&format!("{p}.conv1"), &format!("{p}.bn1"), x, 1, 0, 1, mode, moved)?.relu()?;
            let out = self.conv_bn(&format!("{p}.conv2"), &format!("{p}.bn2"), &out, b.stride, 1, self.cfg.groups, mode, moved)?.relu()?;
            self.conv_bn(&format!("{p}.conv3"), &format!("{p}.bn3"), &out, 1, 0, 1, mode, moved)?
        };
        let shortcut = if b.downsample {
            self.conv_bn(&format!("{p}.downsample.0"), &format!("{p}.downsample.1"), x, b.stride, 0, 1, mode, moved)?
        } else {
            x.clone()
        };
        (out + shortcut)?.relu()
    }

    /// Logits [batch, num_classes] of images [batch, 3, H, W] (Train: channel-major inside, and every
    /// BatchNorm's moved statistics onto `moved`; Infer leaves it empty).
    fn forward(&self, images: &Tensor, mode: Mode, moved: &mut Moved) -> Result<Tensor> {
        let images = match mode {
            Mode::Infer => images.clone(),
            Mode::Train => images.transpose(0, 1)?.contiguous()?,
        };
        let x = self.conv_bn("conv1", "bn1", &images, 2, 3, 1, mode, moved)?.relu()?;
        let mut x = max_pool_3x3_s2(&x, mode)?;
        for b in blocks(&self.cfg) {
            x = self.block(&b, &x, mode, moved)?;
        }
        let x = x.mean((2, 3))?; // AdaptiveAvgPool2d((1, 1)) + flatten
        let x = match mode {
            Mode::Infer => x,
            Mode::Train => x.t()?.contiguous()?,
        };
        layers::linear(&x, &self.p("fc.weight", mode)?, Some(&self.p("fc.bias", mode)?))
    }
}

impl Family for Resnet {
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        let dev = self.params.device.clone();
        let images = layers::input(inputs, "images", &dev)?;
        self.state = match workload {
            // latency is the inference computation at `latency_batch` images (no cache to fill)
            Workload::Inference | Workload::Latency => State::Classify { images },
            Workload::Training => State::Training { images, labels: layers::input(inputs, "labels", &dev)? },
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => candle_core::bail!("run before setup"),
            State::Classify { images } => Last::output("logits", self.forward(images, Mode::Infer, &mut Moved::new())?),
            State::Training { images, labels } => {
                let mut moved = Moved::new();
                let loss = layers::cross_entropy(&self.forward(images, Mode::Train, &mut moved)?, labels)?;
                Last::from_loss_with_outputs(loss, moved)?
            }
        })
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn frozen(&self) -> Vec<&str> {
        self.frozen.iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    use crate::layers::close;

    #[test]
    fn both_max_pools_agree_and_the_training_one_has_a_gradient() {
        let dev = Device::Cpu;
        for size in [8, 9] {
            // strictly positive (no ties, no zero padding winning): every output's gradient reaches one input
            let x = Tensor::randn(0f32, 1.0, (2, 3, size, size), &dev).unwrap().abs().unwrap();
            let x = Var::from_tensor(&(x + 0.1).unwrap()).unwrap();
            let infer = max_pool_3x3_s2(x.as_tensor(), Mode::Infer).unwrap();
            let train = max_pool_3x3_s2(x.as_tensor(), Mode::Train).unwrap();
            let out = size / 2 + size % 2;
            assert_eq!(train.dims(), &[2, 3, out, out]);
            close(&infer, &train, 0.0);
            let grads = train.sum_all().unwrap().backward().unwrap();
            let total = grads.get(x.as_tensor()).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(total, train.elem_count() as f32);
        }
    }

    #[test]
    fn the_training_conv_matches_candles_in_value_and_gradients() {
        let dev = Device::Cpu;
        for (size, k, stride, padding, groups) in [(9, 7, 2, 3, 1), (8, 3, 1, 1, 1), (8, 3, 2, 1, 2), (7, 1, 2, 0, 1), (6, 1, 1, 0, 1)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 4, size, size), &dev).unwrap()).unwrap();
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (6, 4 / groups, k, k), &dev).unwrap()).unwrap();
            let channel_major = x.as_tensor().transpose(0, 1).unwrap();
            let ours = conv2d(&channel_major, w.as_tensor(), stride, padding, groups, Mode::Train).unwrap().transpose(0, 1).unwrap();
            let candle = conv2d(x.as_tensor(), w.as_tensor(), stride, padding, groups, Mode::Infer).unwrap();
            assert_eq!(ours.dims(), candle.dims());
            close(&ours, &candle, 1e-4);
            let seed = Tensor::randn(0f32, 1.0, ours.dims(), &dev).unwrap();
            let g_ours = (&ours * &seed).unwrap().sum_all().unwrap().backward().unwrap();
            let g_candle = (&candle * &seed).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w] {
                close(g_ours.get(v.as_tensor()).unwrap(), g_candle.get(v.as_tensor()).unwrap(), 1e-3);
            }
        }
    }

    #[test]
    fn a_train_mode_batch_norm_moves_torchs_running_statistics() {
        // torch: bn = nn.BatchNorm2d(1); bn(torch.tensor([2., 6.]).view(2, 1, 1, 1))
        //   -> running_mean 0.4 (0.9 * 0 + 0.1 * 4), running_var 1.7 (0.9 * 1 + 0.1 * 8, the unbiased variance)
        let dev = Device::Cpu;
        let cfg: Config = config::parse("resnet", r#"{"block": "basic", "layers": [1, 1, 1, 1], "num_classes": 10, "groups": 1, "width_per_group": 64}"#).unwrap();
        let one = |v: f32| arena_common::HostArray::f32(vec![1], vec![v]).unwrap();
        let weights = [("bn.weight", one(1.0)), ("bn.bias", one(0.0)), ("bn.running_mean", one(0.0)), ("bn.running_var", one(1.0))];
        let expected: Vec<(String, Vec<usize>)> = weights.iter().map(|(n, _)| (n.to_string(), vec![1])).collect();
        let params = Params::load(weights.into_iter().map(|(n, a)| (n.to_string(), a)).collect(), &expected, &dev).unwrap();
        let resnet = Resnet { cfg, params, frozen: Vec::new(), state: State::Empty };
        let x = Tensor::new(&[2f32, 6.0], &dev).unwrap().reshape((1, 2, 1, 1)).unwrap(); // channel-major [c, b, h, w]
        let mut moved = Moved::new();
        let y = resnet.batch_norm("bn", &x, Mode::Train, &mut moved).unwrap();
        close(&y, &Tensor::new(&[-1f32, 1.0], &dev).unwrap().reshape((1, 2, 1, 1)).unwrap(), 1e-5);
        let names: Vec<&str> = moved.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bn/bn.running_mean", "bn/bn.running_var"]);
        close(&moved[0].1, &Tensor::new(&[0.4f32], &dev).unwrap(), 1e-6);
        close(&moved[1].1, &Tensor::new(&[1.7f32], &dev).unwrap(), 1e-6);
        close(&resnet.p("bn.running_var", Mode::Infer).unwrap(), &Tensor::new(&[1f32], &dev).unwrap(), 0.0);
    }

    #[test]
    fn the_tiny_shapes_are_torchvisions() {
        let cfg: Config = config::parse(
            "resnet",
            r#"{"block": "bottleneck", "layers": [1, 1, 1, 1], "num_classes": 10, "groups": 1, "width_per_group": 16}"#,
        )
        .unwrap();
        let shapes = parameter_shapes(&cfg);
        let get = |n: &str| shapes.iter().find(|(name, _)| name == n).unwrap().1.clone();
        assert_eq!(get("layer1.0.conv1.weight"), vec![16, 64, 1, 1]);
        assert_eq!(get("layer4.0.conv2.weight"), vec![128, 128, 3, 3]);
        assert_eq!(get("layer4.0.downsample.0.weight"), vec![2048, 1024, 1, 1]);
        assert_eq!(get("bn1.num_batches_tracked"), Vec::<usize>::new());
        assert_eq!(get("fc.weight"), vec![10, 2048]);
        // 1 stem conv + 4 x (3 convs + downsample) + fc weight/bias; 1 + 16 BatchNorms of 5 tensors
        assert_eq!(shapes.len(), 1 + 16 + 2 + 17 * 5);
    }
}
