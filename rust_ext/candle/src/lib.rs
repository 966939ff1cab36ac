//! The five families in Candle (candle-core + candle-nn; candle-transformers is not used: its models
//! return last-position logits, lack decoder KV caches, use tanh GELU and cannot train).
//!
//! One file per family, each a `NativeModel`; `layers.rs` holds what they share.

use arena_common::{Arrays, Error, NativeModel, Result, Workload};
use candle_core::Device;

pub mod layers;
pub mod llama;
pub mod resnet;
pub mod unet2d_condition;
pub mod vla_expert;
pub mod whisper;

/// The pinned candle release (rust_ext/Cargo.toml); a test checks it against Cargo.lock.
pub const CANDLE_VERSION: &str = "0.11.1";

/// What a family implements, in candle's own Result; `Native` turns it into the extension's model.
pub trait Family: Send {
    /// Untimed: inputs onto the device, caches filled (see arena_common::NativeModel).
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> candle_core::Result<()>;
    /// Timed: one call of the workload set up last.
    fn run(&mut self) -> candle_core::Result<()>;
    /// Untimed: the last run's outputs (gradients as `grad/<official name>`).
    fn fetch(&mut self) -> candle_core::Result<Arrays>;
    fn parameter_names(&self) -> Vec<String>;
}

pub struct Native<F>(pub F);

impl<F: Family> NativeModel for Native<F> {
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()> {
        self.0.setup(workload, inputs).map_err(native_error)
    }

    fn run(&mut self) -> Result<()> {
        self.0.run().map_err(native_error)
    }

    fn fetch(&mut self) -> Result<Arrays> {
        self.0.fetch().map_err(native_error)
    }

    fn parameter_names(&self) -> Vec<String> {
        self.0.parameter_names()
    }
}

/// A candle error as the error that crosses into Python.
pub fn native_error(err: candle_core::Error) -> Error {
    Error(err.to_string())
}

/// Build a family's model from its config JSON and the official-named weights.
pub fn build(family: &str, config_json: &str, weights: Arrays, device: &str) -> Result<Box<dyn NativeModel>> {
    let device = match device {
        "cpu" => Device::Cpu,
        other => return Err(Error(format!("this build of the extension has no Candle device {other:?} (cpu only; cuda/metal are Cargo features)"))),
    };
    match family {
        "llama" => llama::build(config_json, weights, &device),
        "whisper" => whisper::build(config_json, weights, &device),
        "resnet" => resnet::build(config_json, weights, &device),
        "unet2d_condition" => unet2d_condition::build(config_json, weights, &device),
        "vla_expert" => vla_expert::build(config_json, weights, &device),
        other => Err(Error(format!("Candle has no family {other:?}"))),
    }
}

/// The thread pools candle really uses (set from the cell's thread count through RAYON_NUM_THREADS
/// before first use): candle's own pool size and rayon's global pool (gemm).
pub fn thread_info() -> Vec<(String, usize)> {
    vec![
        ("candle_threads".into(), candle_core::utils::get_num_threads()),
        ("rayon_threads".into(), rayon::current_num_threads()),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_recorded_version_is_the_locked_one() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let entry = lock.split("[[package]]").find(|p| p.contains("name = \"candle-core\"")).unwrap();
        assert!(entry.contains(&format!("version = \"{}\"", super::CANDLE_VERSION)), "{entry}");
    }
}
