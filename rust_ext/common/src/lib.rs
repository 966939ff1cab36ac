//! What the framework crates share: host arrays (the numpy boundary), the per-family configs (the JSON
//! the Python side validated), and the model trait the PyO3 module drives.
//!
//! A model is built once from (family, config, weights, threads) and kept resident. For each workload
//! the Python side calls `setup` (untimed: inputs onto the device, a KV cache filled), then `run`
//! repeatedly (timed: one call, returns when the result is computed), then `fetch` (untimed: the last
//! run's outputs as host arrays, gradients as `grad/<official name>` in PyTorch layout).

pub mod array;
pub mod config;
pub mod tables;

pub use array::{Arrays, HostArray, HostData};

/// An error crossing the Python boundary: its message becomes the Python exception's.
#[derive(Debug, Clone)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl Error {
    pub fn msg(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The three workloads of every family (arena/families/base.py WORKLOADS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Inference,
    Latency,
    Training,
}

impl std::str::FromStr for Workload {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "inference" => Ok(Workload::Inference),
            "latency" => Ok(Workload::Latency),
            "training" => Ok(Workload::Training),
            other => Err(Error(format!("unknown workload {other:?} (inference, latency, training)"))),
        }
    }
}

/// A built model of one family in one framework.
pub trait NativeModel: Send {
    /// Untimed: take the workload's inputs (the family's `make_inputs` arrays) and prepare to run it.
    fn setup(&mut self, workload: Workload, inputs: &Arrays) -> Result<()>;
    /// Timed: one call of the workload set up last; returns when the result is computed.
    fn run(&mut self) -> Result<()>;
    /// Untimed: the last run's outputs, named as the family's OUTPUTS (training: "loss" and
    /// "grad/<official name>" for every trainable tensor, in PyTorch layout).
    fn fetch(&mut self) -> Result<Arrays>;
    /// The official names of the tensors the model was built from, in load order.
    fn parameter_names(&self) -> Vec<String>;
}

/// The size of the device check: an N x N matmul of ones, every element of which must be N.
pub const CHECK_SIZE: usize = 64;

/// Whether the device check's product came back right (`device` names it in the error).
pub fn check_product(values: &[f32], device: &str) -> Result<()> {
    if values.len() != CHECK_SIZE * CHECK_SIZE {
        return Err(Error(format!("the {CHECK_SIZE}x{CHECK_SIZE} check on {device} returned {} values", values.len())));
    }
    let expected = CHECK_SIZE as f32;
    match values.iter().position(|&v| v != expected) {
        Some(at) => Err(Error(format!("the {CHECK_SIZE}x{CHECK_SIZE} matmul of ones on {device} gave {} at element {at}, not {expected}", values[at]))),
        None => Ok(()),
    }
}
