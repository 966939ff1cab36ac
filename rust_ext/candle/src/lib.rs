//! The five families in Candle (candle-core + candle-nn; candle-transformers is not used: its models
//! return last-position logits, lack decoder KV caches, use tanh GELU and cannot train).
//!
//! One file per family, each a `NativeModel`; `layers.rs` holds what they share.

use arena_common::{check_product, Arrays, Error, NativeModel, Result, Workload, CHECK_SIZE};
use candle_core::{DType, Device, Tensor};

use crate::layers::{Last, Params};

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
    /// Timed: one call of the workload set up last; its outputs (`Last::output`, `Last::from_loss`).
    fn run(&mut self) -> candle_core::Result<Last>;
    fn params(&self) -> &Params;
    /// Tensors that get no gradient in training (buffers, fixed tables).
    fn frozen(&self) -> Vec<&str> {
        Vec::new()
    }
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
        self.family.setup(workload, inputs).map_err(native_error)
    }

    fn run(&mut self) -> Result<()> {
        // The previous call's outputs go first: a kept training loss holds its whole graph (every
        // activation) and its gradients, which would double the step's memory.
        self.last = Last::Empty;
        self.last = self.family.run().map_err(native_error)?;
        // A GPU device queues the work: the call ends when it is done (a no-op on the CPU).
        self.family.params().device.synchronize().map_err(native_error)
    }

    fn fetch(&mut self) -> Result<Arrays> {
        self.last.fetch(self.family.params(), &self.family.frozen()).map_err(native_error)
    }

    fn parameter_names(&self) -> Vec<String> {
        self.family.params().names().to_vec()
    }
}

/// A candle error as the error that crosses into Python, without the backtrace candle attaches where
/// RUST_BACKTRACE is set (a cell's reason says what failed, not where in the binary).
pub fn native_error(err: candle_core::Error) -> Error {
    match err {
        candle_core::Error::WithBacktrace { inner, .. } => Error(inner.to_string()),
        other => Error(other.to_string()),
    }
}

/// An arena_common error (a bad input) inside candle's own Result.
pub fn common_error(err: Error) -> candle_core::Error {
    candle_core::Error::Msg(err.0)
}

/// The devices this build can run on: the CPU always; CUDA when the `cuda` feature is on.
pub fn devices() -> Vec<&'static str> {
    let mut names = vec!["cpu"];
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

/// The compute capability the CUDA kernels were compiled for (CUDA_COMPUTE_CAP at build time; nvcc's
/// default where it was not set), or None in a build without CUDA.
pub fn cuda_compute_cap() -> Option<&'static str> {
    if cfg!(feature = "cuda") {
        Some(option_env!("CUDA_COMPUTE_CAP").unwrap_or("the build machine's GPU (CUDA_COMPUTE_CAP unset)"))
    } else {
        None
    }
}

/// The device a cell asks for, by the matrix's device name.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        "cuda" => Device::new_cuda(0).map_err(native_error),
        other => Err(Error(format!("this build of the extension has no Candle device {other:?} (built: {:?}; cuda is the Cargo feature candle-cuda of rust_ext/native)", devices()))),
    }
}

/// Whether `name` really runs work: a small matmul there, read back and checked (a CUDA build on a
/// machine whose driver finds no GPU fails here, with the driver's error).
pub fn first_kernel(name: &str) -> Result<()> {
    let device = device(name)?;
    let ones = Tensor::ones((CHECK_SIZE, CHECK_SIZE), DType::F32, &device).map_err(native_error)?;
    let product = ones.matmul(&ones).and_then(|t| t.flatten_all()?.to_vec1::<f32>()).map_err(native_error)?;
    check_product(&product, name)
}

/// Build a family's model from its config JSON and the official-named weights.
pub fn build(family: &str, config_json: &str, weights: Arrays, device_name: &str) -> Result<Box<dyn NativeModel>> {
    let device = device(device_name)?;
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
/// before first use): candle's own pool size and rayon's global pool (gemm); in the MKL build also
/// MKL's (OpenMP threads, from MKL_NUM_THREADS / OMP_NUM_THREADS).
pub fn thread_info() -> Vec<(String, usize)> {
    let mut pools = vec![
        ("candle_threads".into(), candle_core::utils::get_num_threads()),
        ("rayon_threads".into(), rayon::current_num_threads()),
    ];
    if let Some(threads) = mkl::max_threads() {
        pools.push(("mkl_threads".into(), threads));
    }
    pools
}

/// Intel MKL as linked into the `mkl` build (its own report of version and threads); None without it.
pub mod mkl {
    #[cfg(feature = "mkl")]
    extern "C" {
        fn mkl_get_version_string(buf: *mut std::ffi::c_char, len: std::ffi::c_int);
        fn mkl_get_max_threads() -> std::ffi::c_int;
    }

    /// "Intel(R) oneAPI Math Kernel Library Version ... for Intel(R) 64 architecture applications".
    pub fn version() -> Option<String> {
        #[cfg(feature = "mkl")]
        {
            let mut buf = [0 as std::ffi::c_char; 256];
            // SAFETY: MKL fills `len` bytes (space-padded, not NUL-terminated): one byte less than the
            // zeroed buffer, so its last byte ends the string.
            unsafe { mkl_get_version_string(buf.as_mut_ptr(), buf.len() as std::ffi::c_int - 1) };
            let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
            Some(text.to_string_lossy().trim().to_string())
        }
        #[cfg(not(feature = "mkl"))]
        None
    }

    pub fn max_threads() -> Option<usize> {
        #[cfg(feature = "mkl")]
        // SAFETY: a query without arguments.
        return Some(unsafe { mkl_get_max_threads() }.max(0) as usize);
        #[cfg(not(feature = "mkl"))]
        None
    }
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
