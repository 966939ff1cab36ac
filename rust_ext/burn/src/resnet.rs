//! ResNet in Burn, after torchvision's `ResNet` (v1.5: the stride of a Bottleneck sits on its 3x3
//! conv): conv1 7x7/2 pad 3 (no bias) -> bn1 -> ReLU -> maxpool 3x3/2 pad 1 -> layer1..layer4 of
//! BasicBlock or Bottleneck (`groups` on the Bottleneck's 3x3; downsample = strided 1x1 conv + BN where
//! the shape changes) -> adaptive average pool -> fc. Input NCHW float32.
//!
//! inference / latency (latency = the same at `latency_batch` images): `loaded.valid`, eval-mode
//! BatchNorm (running statistics), logits [batch, classes]. training: `loaded.train` on the autodiff
//! device, train-mode BatchNorm (the batch's mean and biased variance, Burn's fused `batch_norm_train`
//! op with its own backward); mean cross-entropy against `labels`, forward + backward. The running
//! statistics are `RunningState` buffers: no gradient, hence no `grad/` for them.
//!
//! Training also returns the running statistics torch's train step leaves (`bn/<buffer name>`):
//! momentum 0.1 from the loaded ones towards the batch mean and the *unbiased* batch variance.
//! burn-nn's `BatchNorm::forward_train` moves `running_var` towards the biased one (burn-nn 0.22.1
//! `modules/norm/batch.rs`; a batch of n values per channel leaves it (n-1)/n of torch's step), so
//! the train path is `batch_norm` below, on Burn's fused op, and it computes the moved statistics
//! instead of storing them: no module is changed, so every call, timed or not, moves the loaded ones
//! by one step, and inference never sees them.

use std::collections::HashMap;

use arena_common::config::{self, Resnet as Config};
use arena_common::{Arrays, Error, HostData, NativeModel, Result, Workload};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::batch_norm_train;
use burn::tensor::{Device, Int, Tensor};

use crate::layers::{self, Last, Output};
use crate::weights::{self, Loaded, Renames};
use crate::{Family, Native};

const STEM_CHANNELS: usize = 64;
const STAGE_PLANES: [usize; 4] = [64, 128, 256, 512];

pub fn build(config_json: &str, mut weights: Arrays, device: &Device) -> Result<Box<dyn NativeModel>> {
    let cfg: Config = config::parse("resnet", config_json)?;
    if cfg.block != "basic" && cfg.block != "bottleneck" {
        return Err(Error(format!("resnet config: unknown block {:?} (basic, bottleneck)", cfg.block)));
    }
    let module = ResNet::new(&cfg, &device.clone().autodiff());
    let norms = batch_norms(&module);
    let counters: Vec<String> = norms.values().map(|name| format!("{name}.num_batches_tracked")).collect();
    take_batch_counters(&mut weights, &counters)?;
    let loaded = Loaded::new(module, weights, RENAMES)?;
    Ok(Box::new(Native::new(Resnet { loaded, norms, device: device.clone(), state: State::Empty })))
}

/// torchvision's shortcut is `nn.Sequential(conv, bn)`, named by index; a module tree needs fields.
const RENAMES: Renames = &[("downsample.0.", "downsample.conv."), ("downsample.1.", "downsample.bn.")];

/// torchvision's state-dict names: conv1, bn1, layer1..layer4 (Vecs give `layer1.0.`), fc.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    maxpool: MaxPool2d,
    layer1: Vec<Block>,
    layer2: Vec<Block>,
    layer3: Vec<Block>,
    layer4: Vec<Block>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
}

/// A BasicBlock (conv1, conv2: 3x3) or a Bottleneck (conv1 1x1, conv2 3x3 grouped, conv3 1x1).
#[derive(Module, Debug)]
struct Block {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Option<Conv2d>,
    bn3: Option<BatchNorm>,
    downsample: Option<Downsample>,
}

#[derive(Module, Debug)]
struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

/// A bias-free conv (all of ResNet's) with symmetric padding.
fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, groups: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_groups(groups)
        .with_bias(false)
        .init(device)
}

/// nn.BatchNorm2d's defaults (eps 1e-5, momentum 0.1) are Burn's.
fn new_batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}

/// The running statistics one train-mode BatchNorm leaves, computed from its loaded ones.
struct Moved {
    /// The BatchNorm's weight: which BatchNorm it is (`batch_norms` names it).
    gamma: ParamId,
    mean: Tensor<1>,
    var: Tensor<1>,
}

/// nn.BatchNorm2d. Eval mode (burn-nn's) off the autodiff device, i.e. on `loaded.valid`. On it, train
/// mode as torch computes it: normalised by Burn's fused op with the batch's mean and biased variance,
/// and the running statistics moved by `momentum` from the loaded ones towards the batch mean and the
/// unbiased variance (x n/(n-1)), pushed onto `moved`; the module's own are left as loaded.
fn batch_norm(bn: &BatchNorm, x: Tensor<4>, moved: &mut Vec<Moved>) -> Tensor<4> {
    if !x.device().is_autodiff() {
        return bn.forward(x);
    }
    let [b, _, h, w] = x.dims();
    let count = (b * h * w) as f64; // values per channel
    let batch = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let step = |loaded: Tensor<1>, stat: Tensor<1>| loaded.mul_scalar(1.0 - bn.momentum).add(stat.mul_scalar(bn.momentum));
    moved.push(Moved {
        gamma: bn.gamma.id,
        mean: step(bn.running_mean.value(), batch.mean),
        var: step(bn.running_var.value(), batch.variance.mul_scalar(count / (count - 1.0))),
    });
    batch.output
}

impl Block {
    /// `ResNet._make_layer`'s block of `planes` taking `inplanes` channels at `stride`.
    fn new(c: &Config, inplanes: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let out = planes * c.expansion();
        let downsample = (stride != 1 || inplanes != out)
            .then(|| Downsample { conv: conv(inplanes, out, 1, stride, 1, device), bn: new_batch_norm(out, device) });
        if c.block == "basic" {
            return Block {
                conv1: conv(inplanes, planes, 3, stride, 1, device),
                bn1: new_batch_norm(planes, device),
                conv2: conv(planes, planes, 3, 1, 1, device),
                bn2: new_batch_norm(planes, device),
                conv3: None,
                bn3: None,
                downsample,
            };
        }
        // torchvision: int(planes * (width_per_group / 64.)) * groups
        let width = ((planes as f64 * (c.width_per_group as f64 / 64.0)) as usize) * c.groups;
        Block {
            conv1: conv(inplanes, width, 1, 1, 1, device),
            bn1: new_batch_norm(width, device),
            conv2: conv(width, width, 3, stride, c.groups, device),
            bn2: new_batch_norm(width, device),
            conv3: Some(conv(width, out, 1, 1, 1, device)),
            bn3: Some(new_batch_norm(out, device)),
            downsample,
        }
    }

    /// relu(residual branch + shortcut).
    fn forward(&self, x: Tensor<4>, moved: &mut Vec<Moved>) -> Tensor<4> {
        let out = relu(batch_norm(&self.bn1, self.conv1.forward(x.clone()), moved));
        let mut out = batch_norm(&self.bn2, self.conv2.forward(out), moved);
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = batch_norm(bn3, conv3.forward(relu(out)), moved);
        }
        let shortcut = match &self.downsample {
            Some(d) => batch_norm(&d.bn, d.conv.forward(x), moved),
            None => x,
        };
        relu(out + shortcut)
    }
}

impl ResNet {
    fn new(c: &Config, device: &Device) -> Self {
        let mut inplanes = STEM_CHANNELS;
        let mut stage = |index: usize| -> Vec<Block> {
            let planes = STAGE_PLANES[index];
            let stride = if index == 0 { 1 } else { 2 };
            (0..c.layers[index])
                .map(|j| {
                    let block = Block::new(c, inplanes, planes, if j == 0 { stride } else { 1 }, device);
                    inplanes = planes * c.expansion();
                    block
                })
                .collect()
        };
        let (layer1, layer2, layer3, layer4) = (stage(0), stage(1), stage(2), stage(3));
        ResNet {
            conv1: conv(3, STEM_CHANNELS, 7, 2, 1, device),
            bn1: new_batch_norm(STEM_CHANNELS, device),
            // Burn pads max-pool windows with -inf, as torch does.
            maxpool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(),
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(STAGE_PLANES[3] * c.expansion(), c.num_classes).init(device),
        }
    }

    /// Logits [batch, num_classes] of images [batch, 3, H, W]; BatchNorm in train mode on the
    /// autodiff device (`loaded.train`, each BatchNorm's moved statistics onto `moved`), in eval mode
    /// on `loaded.valid` (`moved` stays empty).
    fn forward(&self, images: Tensor<4>, moved: &mut Vec<Moved>) -> Tensor<2> {
        let x = self.maxpool.forward(relu(batch_norm(&self.bn1, self.conv1.forward(images), moved)));
        let x = [&self.layer1, &self.layer2, &self.layer3, &self.layer4].into_iter().flatten().fold(x, |x, block| block.forward(x, moved));
        self.fc.forward(self.avgpool.forward(x).flatten::<2>(1, 3))
    }
}

/// The official module name of every BatchNorm in the module tree (renames undone), by the id of its
/// weight (gamma): how `Moved` statistics and `num_batches_tracked` counters get their names.
fn batch_norms(module: &ResNet) -> HashMap<ParamId, String> {
    struct Finder {
        path: Vec<String>,
        gamma: bool,
        found: HashMap<ParamId, String>,
    }
    impl ModuleVisitor for Finder {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            // `container_type` is the struct holding the field being entered.
            self.gamma = name == "gamma" && container_type == "Struct:BatchNorm";
            self.path.push(name.to_string());
        }

        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.gamma = false;
            self.path.pop();
        }

        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.gamma {
                // gamma is the adapter's name for `weight`: "<module>.weight" back to "<module>"
                let weight = weights::official_name(&self.path.join("."), RENAMES);
                self.found.insert(param.id, weight.trim_end_matches(".weight").to_string());
            }
        }
    }
    let mut finder = Finder { path: Vec::new(), gamma: false, found: HashMap::new() };
    module.visit(&mut finder);
    finder.found
}

/// torch's BatchNorm2d counts its training steps in the buffer `num_batches_tracked` (int64, shape
/// []) and reads it only when `momentum` is None (a cumulative average); torchvision's momentum is
/// 0.1, so the count never enters the computation. Burn's BatchNorm has no such buffer, so each
/// BatchNorm's counter is taken out of the weights here: checked to be there with its dtype and shape,
/// then unused (not loaded, never a gradient). A counter that no BatchNorm owns stays in the weights
/// and `Loaded::new` reports it as unexpected.
fn take_batch_counters(weights: &mut Arrays, counters: &[String]) -> Result<()> {
    for name in counters {
        match weights.remove(name) {
            Some(array) if matches!(array.data, HostData::I64(_)) && array.shape.is_empty() => {}
            Some(array) => {
                let dtype = if matches!(array.data, HostData::I64(_)) { "int64" } else { "float32" };
                return Err(Error(format!("{name}: expected an int64 scalar (shape []), got {dtype} of shape {:?}", array.shape)));
            }
            None => return Err(Error(format!("Burn could not load the weights: missing from the weights: {name}"))),
        }
    }
    Ok(())
}

enum State {
    Empty,
    Classify { images: Tensor<4> },
    Training { images: Tensor<4>, labels: Tensor<1, Int> },
}

struct Resnet {
    loaded: Loaded<ResNet>,
    /// Every BatchNorm's official name, by the id of its weight (`batch_norms`).
    norms: HashMap<ParamId, String>,
    device: Device,
    state: State,
}

impl Resnet {
    /// The moved statistics as the outputs `bn/<name>.running_mean` and `bn/<name>.running_var`.
    fn running_stats(&self, moved: Vec<Moved>) -> Result<Vec<Output>> {
        let mut outputs = Vec::with_capacity(2 * moved.len());
        for m in moved {
            let name = self.norms.get(&m.gamma).ok_or_else(|| Error("a BatchNorm outside the module tree moved its statistics".into()))?;
            outputs.push(layers::output(&format!("bn/{name}.running_mean"), m.mean));
            outputs.push(layers::output(&format!("bn/{name}.running_var"), m.var));
        }
        Ok(outputs)
    }
}

impl Family for Resnet {
    type Module = ResNet;

    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        self.state = match workload {
            // latency is the inference computation at `latency_batch` images (no cache to fill)
            Workload::Inference | Workload::Latency => State::Classify { images: layers::input(inputs, "images", &self.device)? },
            Workload::Training => {
                // The images need no gradient: only the weights are tracked (no stem data gradient).
                let train_dev = self.device.clone().autodiff();
                State::Training { images: layers::input(inputs, "images", &train_dev)?, labels: layers::input_ids(inputs, "labels", &train_dev)? }
            }
        };
        Ok(())
    }

    fn run(&mut self) -> Result<Last> {
        Ok(match &self.state {
            State::Empty => return Err(Error("run before setup".into())),
            State::Classify { images } => Last::output("logits", self.loaded.valid.forward(images.clone(), &mut Vec::new())),
            State::Training { images, labels } => {
                let mut moved = Vec::new();
                let loss = layers::cross_entropy(self.loaded.train.forward(images.clone(), &mut moved), labels.clone());
                Last::from_loss_with_outputs(loss, self.running_stats(moved)?)
            }
        })
    }

    fn loaded(&self) -> &Loaded<ResNet> {
        &self.loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn tiny() -> Config {
        config::parse("resnet", r#"{"block": "bottleneck", "layers": [1, 1, 1, 1], "num_classes": 10, "groups": 1, "width_per_group": 16}"#).unwrap()
    }

    fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn every_batch_norm_is_found_by_its_official_name() {
        let norms = batch_norms(&ResNet::new(&tiny(), &Device::flex()));
        let names: Vec<&String> = norms.values().collect();
        assert_eq!(names.len(), 1 + 4 * 4, "{names:?}"); // stem + 4 blocks x (3 + downsample)
        for name in ["bn1", "layer1.0.bn3", "layer4.0.downsample.1"] {
            assert!(names.contains(&&name.to_string()), "{name}: {names:?}");
        }
    }

    #[test]
    fn a_train_mode_batch_norm_moves_torchs_statistics_and_keeps_its_own() {
        // torch: bn = nn.BatchNorm2d(1); bn(torch.tensor([2., 6.]).view(2, 1, 1, 1))
        //   -> running_mean 0.4 (0.9 * 0 + 0.1 * 4), running_var 1.7 (0.9 * 1 + 0.1 * 8: the unbiased
        //   variance; burn-nn's BatchNorm leaves 1.3, from the biased 4)
        let dev = Device::flex().autodiff();
        let bn = new_batch_norm(1, &dev);
        let x = Tensor::<1>::from_floats([2.0, 6.0], &dev).reshape([2, 1, 1, 1]);
        for _ in 0..2 {
            let mut moved = Vec::new();
            let y = values(batch_norm(&bn, x.clone(), &mut moved));
            assert!((y[0] + 1.0).abs() < 1e-5 && (y[1] - 1.0).abs() < 1e-5, "{y:?}");
            let [m] = <[Moved; 1]>::try_from(moved).ok().unwrap();
            assert_eq!(m.gamma, bn.gamma.id);
            assert!((values(m.mean)[0] - 0.4).abs() < 1e-6 && (values(m.var)[0] - 1.7).abs() < 1e-6);
            assert_eq!((values(bn.running_mean.value_sync()), values(bn.running_var.value_sync())), (vec![0.0], vec![1.0]));
        }
    }

    #[test]
    fn a_training_call_changes_no_module_and_moves_every_batch_norm() {
        let dev = Device::flex();
        let train = ResNet::new(&tiny(), &dev.clone().autodiff());
        let valid = train.valid();
        let images = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
        let before = values(valid.forward(images.clone(), &mut Vec::new()));
        let stats_before = values(train.bn1.running_mean.value());
        let mut moved = Vec::new();
        let _ = train.forward(images.clone().to_device(&dev.clone().autodiff()), &mut moved).sum().backward();
        let norms = batch_norms(&train);
        assert_eq!(moved.iter().map(|m| &norms[&m.gamma]).collect::<std::collections::BTreeSet<_>>().len(), norms.len());
        assert_ne!(values(moved[0].mean.clone()), stats_before, "the step moves the statistics");
        assert_eq!(values(train.bn1.running_mean.value_sync()), stats_before, "the training copy keeps the loaded ones");
        assert_eq!(values(valid.forward(images, &mut Vec::new())), before, "eval mode still sees the loaded statistics");
    }
}
