//! `arena._native`: the Python face of the Rust frameworks (Candle, Burn). `Model(framework, family,
//! ...)` is a model kept resident between calls: `setup(workload, inputs)` (untimed), `run()` (timed), `fetch()` (untimed),
//! plus version and thread-pool queries.
//!
//! Inputs arrive as numpy arrays and are copied once into the framework's own storage (neither framework
//! can adopt a foreign buffer); outputs leave as numpy arrays that take over the Rust allocation (no copy).
//! The GIL is released around all native work; a Rust error or a panic becomes a RuntimeError with the
//! message (a panic must not abort the cell process, and pyo3's PanicException is a BaseException that
//! the cell runner would not treat as the framework's error).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::Instant;

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use arena_common::{Arrays, HostArray, HostData, NativeModel, Workload};

/// Run native work without the GIL; a Rust error or panic becomes a RuntimeError.
fn native<T: Send>(py: Python<'_>, work: impl FnOnce() -> arena_common::Result<T> + Send) -> PyResult<T> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(work)));
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(PyRuntimeError::new_err(err.0)),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            Err(PyRuntimeError::new_err(format!("panic in native code: {message}")))
        }
    }
}

/// A dict of numpy arrays (float32 or int64, any layout) as host arrays.
fn host_arrays(arrays: &Bound<'_, PyDict>) -> PyResult<Arrays> {
    let mut out = Arrays::new();
    for (key, value) in arrays.iter() {
        let name: String = key.extract()?;
        let array = if let Ok(a) = value.extract::<PyReadonlyArrayDyn<'_, f32>>() {
            HostArray { shape: a.shape().to_vec(), data: HostData::F32(a.as_array().iter().copied().collect()) }
        } else if let Ok(a) = value.extract::<PyReadonlyArrayDyn<'_, i64>>() {
            HostArray { shape: a.shape().to_vec(), data: HostData::I64(a.as_array().iter().copied().collect()) }
        } else {
            let dtype = value.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| "not an array".into());
            return Err(PyRuntimeError::new_err(format!("{name}: expected a float32 or int64 numpy array, got {dtype}")));
        };
        out.insert(name, array);
    }
    Ok(out)
}

fn numpy_dict<'py>(py: Python<'py>, arrays: Arrays) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, array) in arrays {
        let HostData::F32(data) = array.data else {
            return Err(PyRuntimeError::new_err(format!("{name}: outputs are float32")));
        };
        let nd = ArrayD::from_shape_vec(IxDyn(&array.shape), data).map_err(|e| PyRuntimeError::new_err(format!("{name}: {e}")))?;
        dict.set_item(name, nd.into_pyarray(py))?;
    }
    Ok(dict)
}

/// A model of one family in one Rust framework, built from its config (the spec's validated config as
/// JSON) and the official-named float32 weights.
#[pyclass(module = "arena._native")] // (the same class in arena._native_mkl)
struct Model {
    // A Python object may be reached from any thread; the lock is uncontended in a cell.
    model: Mutex<Box<dyn NativeModel>>,
}

impl Model {
    fn model(&self) -> PyResult<std::sync::MutexGuard<'_, Box<dyn NativeModel>>> {
        self.model.lock().map_err(|_| PyRuntimeError::new_err("the model is unusable after a panic in native code"))
    }
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (framework, family, config_json, weights, device = "cpu"))]
    fn new(py: Python<'_>, framework: &str, family: &str, config_json: &str, weights: &Bound<'_, PyDict>, device: &str) -> PyResult<Self> {
        let build = match framework {
            "candle" => arena_candle::build,
            #[cfg(feature = "burn")]
            "burn" => arena_burn::build,
            other => return Err(unknown_framework(other)),
        };
        let weights = host_arrays(weights)?;
        let model = native(py, || build(family, config_json, weights, device))?;
        Ok(Model { model: Mutex::new(model) })
    }

    /// Untimed: the workload's inputs onto the device, caches filled.
    fn setup(&mut self, py: Python<'_>, workload: &str, inputs: &Bound<'_, PyDict>) -> PyResult<()> {
        let workload: Workload = workload.parse().map_err(|e: arena_common::Error| PyRuntimeError::new_err(e.0))?;
        let inputs = host_arrays(inputs)?;
        let mut model = self.model()?;
        let model = &mut **model;
        native(py, move || model.setup(workload, &inputs))
    }

    /// Timed: one call of the workload set up last; returns when it is computed.
    fn run(&mut self, py: Python<'_>) -> PyResult<()> {
        let mut model = self.model()?;
        let model = &mut **model;
        native(py, move || model.run())
    }

    /// The last run's outputs as numpy arrays (training: "loss" and "grad/<official name>").
    fn fetch<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut model = self.model()?;
        let model = &mut **model;
        let arrays = native(py, move || model.fetch())?;
        numpy_dict(py, arrays)
    }

    fn parameter_names(&self) -> PyResult<Vec<String>> {
        Ok(self.model()?.parameter_names())
    }
}

/// This module's name: the MKL build (rust_ext/mkl/build.sh) is a second module beside the default one.
const MODULE: &str = if cfg!(feature = "candle-mkl") { "arena._native_mkl" } else { "arena._native" };

fn unknown_framework(name: &str) -> PyErr {
    let built: Vec<_> = versions().into_iter().map(|(framework, _)| framework).collect();
    PyRuntimeError::new_err(format!("{MODULE} has no framework {name:?} (it has {built:?})"))
}

/// The pinned release of each framework compiled into this extension.
#[pyfunction]
#[cfg_attr(not(feature = "burn"), allow(unused_mut))]
fn versions() -> Vec<(&'static str, &'static str)> {
    let mut built = vec![("candle", arena_candle::CANDLE_VERSION)];
    #[cfg(feature = "burn")]
    built.push(("burn", arena_burn::BURN_VERSION));
    built
}

/// The devices a framework can run on in this build (GPU back-ends are Cargo features).
#[pyfunction]
fn devices(framework: &str) -> PyResult<Vec<&'static str>> {
    match framework {
        "candle" => Ok(arena_candle::devices()),
        #[cfg(feature = "burn")]
        "burn" => Ok(arena_burn::devices()),
        other => Err(unknown_framework(other)),
    }
}

/// Whether a framework's `device` runs work in this build: a small matmul there, checked; raises with
/// the framework's or the driver's error where it does not.
#[pyfunction]
fn first_kernel(py: Python<'_>, framework: &str, device: &str) -> PyResult<()> {
    let check = match framework {
        "candle" => arena_candle::first_kernel,
        #[cfg(feature = "burn")]
        "burn" => arena_burn::first_kernel,
        other => return Err(unknown_framework(other)),
    };
    let device = device.to_owned();
    native(py, move || check(&device))
}

/// What a build compiled in beyond the default CPU build, for the result's settings (empty there).
#[pyfunction]
fn build_info(framework: &str) -> PyResult<Vec<(&'static str, String)>> {
    match framework {
        "candle" => {
            let cuda = arena_candle::cuda_compute_cap().map(|cap| ("cuda_compute_capability", cap.to_string()));
            Ok(cuda.into_iter().chain(arena_candle::mkl::version().map(|v| ("mkl", v))).collect())
        }
        #[cfg(feature = "burn")]
        "burn" => Ok(Vec::new()),
        other => Err(unknown_framework(other)),
    }
}

/// The thread-pool sizes a framework really uses, by name.
#[pyfunction]
fn thread_info(framework: &str) -> PyResult<Vec<(String, usize)>> {
    match framework {
        "candle" => Ok(arena_candle::thread_info()),
        #[cfg(feature = "burn")]
        "burn" => Ok(arena_burn::thread_info()),
        other => Err(unknown_framework(other)),
    }
}

/// The pinned `gemm` crate (Cargo.toml), which both frameworks' CPU matmuls call.
pub const GEMM_VERSION: &str = "0.19.0";

/// The kernels the `gemm` crate runs on this CPU: it is built with `x86-v4` (Cargo.toml), so AVX-512
/// where the CPU has the x86-64-v4 set (pulp's V4: AVX-512 F, BW, CD, DQ, VL), else AVX2 with FMA.
#[pyfunction]
fn gemm_kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512cd")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "x86-64-v4 (AVX-512)";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return "x86-64-v3 (AVX2, FMA)";
        }
        "x86-64 baseline (SSE)"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "aarch64 (NEON)"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "portable"
    }
}

/// Seconds of each of `calls` fp32 GEMMs of square n x n matrices by the `gemm` crate on `threads`
/// threads of rayon's pool, after one untimed call: the machine probe's figure for the GEMM that Candle
/// and Burn use (arena/run/peak.py), timed here so that no Python call sits inside the timing.
#[pyfunction]
fn gemm_seconds(py: Python<'_>, n: usize, threads: usize, calls: usize) -> PyResult<Vec<f64>> {
    native(py, move || {
        let lhs: Vec<f32> = (0..n * n).map(|i| ((i % 13) as f32 - 6.0) / 8.0).collect();
        let rhs: Vec<f32> = (0..n * n).map(|i| ((i % 11) as f32 - 5.0) / 8.0).collect();
        let mut dst = vec![0f32; n * n];
        let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        let stride = n as isize;
        let mut call = || {
            // SAFETY: three n x n row-major buffers (column stride 1, row stride n), alive for the call.
            // The gemm crate computes dst = alpha * dst + beta * lhs * rhs; read_dst = false ignores alpha.
            unsafe {
                gemm::gemm(n, n, n, dst.as_mut_ptr(), 1, stride, false, lhs.as_ptr(), 1, stride, rhs.as_ptr(), 1, stride,
                           0.0f32, 1.0f32, false, false, false, parallelism)
            }
        };
        call();
        Ok((0..calls)
            .map(|_| {
                let started = Instant::now();
                call();
                started.elapsed().as_secs_f64()
            })
            .collect())
    })
}

/// Panics in native code (for the test that a panic becomes an exception, not an abort).
#[pyfunction]
fn panic_for_test(py: Python<'_>, message: String) -> PyResult<()> {
    native(py, move || -> arena_common::Result<()> { panic!("{message}") })
}

#[pymodule]
#[cfg_attr(feature = "candle-mkl", pyo3(name = "_native_mkl"))]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(versions, m)?)?;
    m.add_function(wrap_pyfunction!(thread_info, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(first_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    m.add_function(wrap_pyfunction!(panic_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(gemm_kernels, m)?)?;
    m.add_function(wrap_pyfunction!(gemm_seconds, m)?)?;
    m.add("GEMM_VERSION", GEMM_VERSION)?;
    Ok(())
}
