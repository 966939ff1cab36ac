//! ResNet in Burn, after torchvision's `ResNet` (v1.5: the stride of a Bottleneck sits on its 3x3
//! conv): conv1 7x7/2 pad 3 (no bias) -> bn1 -> ReLU -> maxpool 3x3/2 pad 1 -> layer1..layer4 of
//! BasicBlock or Bottleneck (`groups` on the Bottleneck's 3x3; downsample = strided 1x1 conv + BN where
//! the shape changes) -> adaptive average pool -> fc. Input NCHW float32.
//!
//! inference / latency (latency = the same at `latency_batch` images): `loaded.valid`, eval-mode
//! BatchNorm (running statistics), logits [batch, classes]. training: `loaded.train` on the autodiff
//! device, where Burn's BatchNorm takes its train path (the batch's mean and biased variance, Burn's
//! fused `batch_norm_train` op with its own backward); mean cross-entropy against `labels`, forward +
//! backward. The running statistics are `RunningState` buffers: no gradient, hence no `grad/` for them.
//!
//! Burn's train path, like torch's, also moves the running statistics (momentum 0.1). It moves those
//! of `loaded.train` only: `Loaded::new` took `loaded.valid` once, and `RunningState::valid` gives the
//! snapshot its own cells (burn-core `module/param/running.rs`), so a training call can never change
//! what inference or latency compute, in whatever order they run. (The runner runs inference, latency,
//! training in that order anyway, `arena/run/child.py`; torch's reference updates its one module's
//! statistics, which only a later eval call would see.)

use arena_common::config::{self, Resnet as Config};
use arena_common::{Arrays, Error, HostData, NativeModel, Result, Workload};
use burn::module::{Module, ModuleVisitor};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor};

use crate::layers::{self, Last};
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
    take_batch_counters(&mut weights, &batch_counters(&module))?;
    let loaded = Loaded::new(module, weights, RENAMES)?;
    Ok(Box::new(Native::new(Resnet { loaded, device: device.clone(), state: State::Empty })))
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
fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}

impl Block {
    /// `ResNet._make_layer`'s block of `planes` taking `inplanes` channels at `stride`.
    fn new(c: &Config, inplanes: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let out = planes * c.expansion();
        let downsample = (stride != 1 || inplanes != out)
            .then(|| Downsample { conv: conv(inplanes, out, 1, stride, 1, device), bn: batch_norm(out, device) });
        if c.block == "basic" {
            return Block {
                conv1: conv(inplanes, planes, 3, stride, 1, device),
                bn1: batch_norm(planes, device),
                conv2: conv(planes, planes, 3, 1, 1, device),
                bn2: batch_norm(planes, device),
                conv3: None,
                bn3: None,
                downsample,
            };
        }
        // torchvision: int(planes * (width_per_group / 64.)) * groups
        let width = ((planes as f64 * (c.width_per_group as f64 / 64.0)) as usize) * c.groups;
        Block {
            conv1: conv(inplanes, width, 1, 1, 1, device),
            bn1: batch_norm(width, device),
            conv2: conv(width, width, 3, stride, c.groups, device),
            bn2: batch_norm(width, device),
            conv3: Some(conv(width, out, 1, 1, 1, device)),
            bn3: Some(batch_norm(out, device)),
            downsample,
        }
    }

    /// relu(residual branch + shortcut).
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let mut out = self.bn2.forward(self.conv2.forward(out));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = bn3.forward(conv3.forward(relu(out)));
        }
        let shortcut = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x)),
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
            bn1: batch_norm(STEM_CHANNELS, device),
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
    /// autodiff device (`loaded.train`), in eval mode on `loaded.valid`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.maxpool.forward(relu(self.bn1.forward(self.conv1.forward(images))));
        let x = [&self.layer1, &self.layer2, &self.layer3, &self.layer4].into_iter().flatten().fold(x, |x, block| block.forward(x));
        self.fc.forward(self.avgpool.forward(x).flatten::<2>(1, 3))
    }
}

/// The official names of the `num_batches_tracked` counters of the module's BatchNorms (every
/// `BatchNorm` in the tree, renames undone).
fn batch_counters(module: &ResNet) -> Vec<String> {
    struct Finder {
        path: Vec<String>,
        found: Vec<String>,
    }
    impl ModuleVisitor for Finder {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            // `container_type` is the struct holding the field being entered.
            if name == "running_mean" && container_type == "Struct:BatchNorm" {
                self.found.push(format!("{}.num_batches_tracked", self.path.join(".")));
            }
            self.path.push(name.to_string());
        }

        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
    }
    let mut finder = Finder { path: Vec::new(), found: Vec::new() };
    module.visit(&mut finder);
    finder.found.iter().map(|path| weights::official_name(path, RENAMES)).collect()
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
    device: Device,
    state: State,
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
            State::Classify { images } => Last::output("logits", self.loaded.valid.forward(images.clone())),
            State::Training { images, labels } => {
                Last::from_loss(layers::cross_entropy(self.loaded.train.forward(images.clone()), labels.clone()))
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
    fn every_batch_norm_counter_is_found_by_its_official_name() {
        let counters = batch_counters(&ResNet::new(&tiny(), &Device::flex()));
        assert_eq!(counters.len(), 1 + 4 * 4, "{counters:?}"); // stem + 4 blocks x (3 + downsample)
        for name in ["bn1", "layer1.0.bn3", "layer4.0.downsample.1"] {
            assert!(counters.contains(&format!("{name}.num_batches_tracked")), "{name}: {counters:?}");
        }
    }

    #[test]
    fn a_training_call_moves_only_the_training_copys_running_statistics() {
        let dev = Device::flex();
        let train = ResNet::new(&tiny(), &dev.clone().autodiff());
        let valid = train.valid();
        let images = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
        let before = values(valid.forward(images.clone()));
        let stats_before = values(train.bn1.running_mean.value());
        let _ = train.forward(images.clone().to_device(&dev.clone().autodiff())).sum().backward();
        assert_ne!(values(train.bn1.running_mean.value_sync()), stats_before, "the train path updates its own statistics");
        assert_eq!(values(valid.forward(images)), before, "eval mode still sees the loaded statistics");
    }
}
