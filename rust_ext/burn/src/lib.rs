//! The five families in Burn 0.22 (burn-nn modules and tensor ops on burn-flex, Burn's pure-Rust CPU
//! back-end, with autodiff). burn-models' implementations are not used: none of them gives
//! all-position logits, decoder KV caches and gradients for every parameter under HF names.
//!
//! One file per family, each a `Family` around a module tree whose paths are the official tensor names
//! (burn-store loads the safetensors names into it, `weights.rs`); `layers.rs` holds what they share.
//! Burn's ops panic on misuse instead of returning errors: the extension turns a panic into the
//! cell's RuntimeError (`arena-native`), so the families use plain values.

use arena_common::{check_product, Arrays, Error, NativeModel, Result, Workload, CHECK_SIZE};
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::layers::Last;
use crate::weights::Loaded;

pub mod layers;
pub mod llama;
pub mod resnet;
pub mod unet2d_condition;
pub mod vla_expert;
pub mod weights;
pub mod whisper;

/// The pinned Burn release (rust_ext/Cargo.toml); a test checks it against Cargo.lock.
pub const BURN_VERSION: &str = "0.22.1";

/// What a family implements; `Native` turns it into the extension's model.
pub trait Family: Send {
    type Module: Module;
    /// Untimed: inputs onto the device, caches filled (see arena_common::NativeModel).
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()>;
    /// Timed: one call of the workload set up last; its outputs, computed (`Last::output`,
    /// `Last::from_loss`).
    fn run(&mut self) -> Result<Last>;
    /// The loaded module (names, frozen tensors, the tracked copy gradients are read from).
    fn loaded(&self) -> &Loaded<Self::Module>;
}

/// A family as the extension's model: it keeps the last call's outputs until `fetch`.
pub struct Native<F> {
    family: F,
    last: Last,
}

impl<F: Family> Native<F> {
    pub fn new(family: F) -> Self {
        Native { family, last: Last::Empty }
    }
}

impl<F: Family> NativeModel for Native<F> {
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        self.family.setup(workload, inputs)
    }

    fn run(&mut self) -> Result<()> {
        // The previous call's outputs go first: kept gradients would double the step's memory.
        self.last = Last::Empty;
        self.last = self.family.run()?;
        Ok(())
    }

    fn fetch(&mut self) -> Result<Arrays> {
        self.last.fetch(self.family.loaded())
    }

    fn parameter_names(&self) -> Vec<String> {
        self.family.loaded().names().to_vec()
    }
}

/// The devices this build can run on: burn-flex always; GPU back-ends when their Cargo feature is on.
pub fn devices() -> Vec<&'static str> {
    let mut names = vec!["cpu"];
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "metal") {
        names.push("metal");
    }
    names
}

/// The device a cell asks for, by the matrix's device name.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0usize)),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "metal")]
        "metal" => Ok(Device::metal(burn::tensor::DeviceKind::DefaultDevice)),
        other => Err(Error(format!("this build of the extension has no Burn device {other:?} (built: {:?}; GPU back-ends are Cargo features of rust_ext/native: burn-cuda, burn-wgpu, burn-metal)", devices()))),
    }
}

/// Whether `name` really runs work: a small matmul there, read back and checked.
pub fn first_kernel(name: &str) -> Result<()> {
    let device = device(name)?;
    let ones = Tensor::<2>::ones([CHECK_SIZE, CHECK_SIZE], &device);
    let product = ones.clone().matmul(ones).into_data().try_to_vec::<f32>().map_err(|err| Error(format!("{err:?}")))?;
    check_product(&product, name)
}

/// Build a family's model from its config JSON and the official-named weights.
pub fn build(family: &str, config_json: &str, weights: Arrays, device_name: &str) -> Result<Box<dyn NativeModel>> {
    let device = device(device_name)?;
    match family {
        "llama" => llama::build(config_json, weights, &device),
        "whisper" => whisper::build(config_json, weights, &device),
        "vla_expert" => vla_expert::build(config_json, weights, &device),
        "resnet" => resnet::build(config_json, weights, &device),
        "unet2d_condition" => unet2d_condition::build(config_json, weights, &device),
        other => Err(Error(format!("Burn has no family {other:?}"))),
    }
}

/// The thread pool burn-flex really uses (rayon's global pool, sized from the cell's thread count
/// through RAYON_NUM_THREADS before first use).
pub fn thread_info() -> Vec<(String, usize)> {
    vec![("rayon_threads".into(), rayon::current_num_threads())]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_recorded_version_is_the_locked_one() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let entry = lock.split("[[package]]").find(|p| p.contains("name = \"burn\"\n")).unwrap();
        assert!(entry.contains(&format!("version = \"{}\"", super::BURN_VERSION)), "{entry}");
    }
}
