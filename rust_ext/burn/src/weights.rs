//! Our safetensors weights into a Burn module, and its gradients back out, both through burn-store.
//!
//! Loading: the official-named f32 arrays become burn-store tensors, a family's few renames map HF
//! names onto its module paths (`KeyRemapper`), and `PyTorchToBurnAdapter` transposes Linear weights
//! to Burn's [in, out] and renames norm weight/bias to gamma/beta. Anything missing, unexpected or of
//! the wrong shape is an error naming the official tensor: a partial load would benchmark a model
//! with random weights.
//!
//! Gradients: the tracked module is mapped to one whose parameters hold their gradients and collected
//! with `BurnToPyTorchAdapter`, so gradients leave by the same names and in the same layout as the
//! weights came in ([out, in] Linear weights, weight/bias norms). They leave as Burn data; `layers.rs`
//! makes the host arrays, so this module uses nothing else of the crate.
//!
//! An enum in a module tree (a layer whose type the config picks, e.g. the UNet's Conv2d-or-Linear
//! projections) adds nothing to a path: its variant name is not part of the official name.

use std::collections::BTreeSet;

use arena_common::{Arrays, Error, HostArray, HostData, Result};

use burn::module::{Module, ModuleMapper, Param};
use burn::store::{bridge, ApplyError, BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter};
use burn::tensor::{Gradients, Tensor, TensorData};

/// (official-name fragment, module-path fragment) pairs, for names a Burn module tree cannot spell
/// (`downsample.0` is a Vec index in HF, a named field here).
pub type Renames = &'static [(&'static str, &'static str)];

/// A module with our weights, on the autodiff device (training) and as a plain snapshot sharing the
/// same storage (inference, latency: no autodiff bookkeeping, eval-mode layers).
pub struct Loaded<M: Module> {
    pub train: M,
    pub valid: M,
    renames: Renames,
    names: Vec<String>,
}

impl<M: Module> Loaded<M> {
    /// Load `weights` into `module`, built on the autodiff device with lazily initialised
    /// parameters (`Device::autodiff`), so nothing is initialised only to be overwritten.
    pub fn new(module: M, weights: Arrays, renames: Renames) -> Result<Self> {
        let names: Vec<String> = weights.keys().cloned().collect();
        let mut train = module;
        let tensors = weights.into_iter().map(|(name, array)| pack(name, array)).collect();
        let remapper = KeyRemapper::from_patterns(renames.iter().map(|(hf, burn)| (regex_literal(hf), burn.to_string())).collect())
            .map_err(|e| Error(format!("renames: {e}")))?;
        let (tensors, _) = remapper.remap(tensors);
        let result = train.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), SKIP_ENUM_VARIANTS);
        let official = |path: &str| official_name(path, renames);
        let mut problems = Vec::new();
        if !result.errors.is_empty() {
            problems.push(format!("wrong tensors (shapes in Burn's layout: Linear weights are [in, out]): {}", result.errors.iter().map(|e| describe(e, renames)).collect::<Vec<_>>().join("; ")));
        }
        if !result.missing.is_empty() {
            problems.push(format!("missing from the weights: {}", result.missing.iter().map(|(path, _)| official(path)).collect::<Vec<_>>().join(", ")));
        }
        if !result.unused.is_empty() {
            problems.push(format!("unexpected in the weights (no such parameter): {}", result.unused.iter().map(|p| official(p)).collect::<Vec<_>>().join(", ")));
        }
        if !problems.is_empty() {
            return Err(Error(format!("Burn could not load the weights: {}", problems.join("; "))));
        }
        let valid = train.valid();
        Ok(Loaded { train, valid, renames, names })
    }

    /// The official names of the loaded tensors.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// (official name, gradient) for every parameter that requires a gradient, in PyTorch layout. A
    /// trainable parameter without a gradient is an error (it would pass unnoticed otherwise).
    pub fn gradients(&self, grads: &Gradients) -> Result<Vec<(String, TensorData)>> {
        let mut mapper = GradMapper { grads, path: Vec::new(), frozen: BTreeSet::new(), missing: Vec::new() };
        let grad_module = self.train.clone().map(&mut mapper);
        if !mapper.missing.is_empty() {
            let names: Vec<String> = mapper.missing.iter().map(|p| official_name(p, self.renames)).collect();
            return Err(Error(format!("no gradient reached {}", names.join(", "))));
        }
        let mut gradients = Vec::new();
        for tensor in grad_module.collect(None, Some(Box::new(BurnToPyTorchAdapter)), SKIP_ENUM_VARIANTS) {
            if mapper.frozen.contains(&tensor.name) {
                continue;
            }
            let name = official_name(&tensor.name, self.renames);
            let data = bridge::into_data(tensor).map_err(|e| Error(format!("{name}: {e:?}")))?;
            gradients.push((name, data));
        }
        Ok(gradients)
    }
}

/// Replaces each trainable parameter's value by its gradient, remembering frozen ones (buffers and
/// tables that take no gradient) and trainable ones that got none.
struct GradMapper<'a> {
    grads: &'a Gradients,
    path: Vec<String>,
    frozen: BTreeSet<String>,
    missing: Vec<String>,
}

impl ModuleMapper for GradMapper<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if !is_enum_variant(container_type) {
            self.path.push(name.to_string());
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if !is_enum_variant(container_type) {
            self.path.pop();
        }
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        if !param.is_require_grad() {
            self.frozen.insert(path);
            return param;
        }
        match param.val().grad(self.grads) {
            Some(grad) => param.map(|_| grad),
            None => {
                self.missing.push(path);
                param
            }
        }
    }
}

/// Enum variants are left out of module paths (burn-store's `skip_enum_variants`), here and in the
/// gradient names alike.
const SKIP_ENUM_VARIANTS: bool = true;

/// burn-derive enters an enum's variant as a module of container type `Enum:<name>`.
fn is_enum_variant(container_type: &str) -> bool {
    SKIP_ENUM_VARIANTS && container_type.starts_with("Enum:")
}

/// The official name of a module path: the renames backwards, and the adapter's norm renames
/// (gamma/beta are weight/bias in PyTorch).
pub fn official_name(path: &str, renames: Renames) -> String {
    let name = renames.iter().fold(path.to_string(), |name, (hf, burn)| name.replace(burn, hf));
    match name.rsplit_once('.') {
        Some((module, "gamma")) => format!("{module}.weight"),
        Some((module, "beta")) => format!("{module}.bias"),
        _ => name,
    }
}

/// burn-store's message for a tensor it could not apply, naming the tensor by its official name (it
/// names the module path).
fn describe(error: &ApplyError, renames: Renames) -> String {
    let path = match error {
        ApplyError::ShapeMismatch { path, .. } | ApplyError::DTypeMismatch { path, .. } | ApplyError::AdapterError { path, .. } | ApplyError::LoadError { path, .. } => path,
    };
    error.to_string().replace(&format!("'{path}'"), &format!("'{}'", official_name(path, renames)))
}

fn regex_literal(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_string() } else { format!("\\{c}") }).collect()
}

fn pack(name: String, array: HostArray) -> burn::store::burn_pack::Tensor {
    let data = match array.data {
        HostData::F32(values) => TensorData::new(values, array.shape),
        HostData::I64(values) => TensorData::new(values, array.shape),
    };
    bridge::from_data(data, name, None)
}
