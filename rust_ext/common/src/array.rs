//! Host arrays: what crosses the numpy boundary. Inputs are float32 or int64 (the families' dtypes);
//! outputs are float32.

use std::collections::BTreeMap;

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub enum HostData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

#[derive(Debug, Clone)]
pub struct HostArray {
    pub shape: Vec<usize>,
    pub data: HostData,
}

/// Named arrays, sorted by name (deterministic iteration).
pub type Arrays = BTreeMap<String, HostArray>;

impl HostArray {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        Self::checked(shape, HostData::F32(data))
    }

    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Self> {
        Self::checked(shape, HostData::I64(data))
    }

    fn checked(shape: Vec<usize>, data: HostData) -> Result<Self> {
        let len = match &data {
            HostData::F32(v) => v.len(),
            HostData::I64(v) => v.len(),
        };
        let expected: usize = shape.iter().product();
        if len != expected {
            return Err(Error(format!("array of shape {shape:?} needs {expected} elements, got {len}")));
        }
        Ok(HostArray { shape, data })
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An input by name, or an error naming what is missing and what is there.
pub fn get<'a>(arrays: &'a Arrays, name: &str) -> Result<&'a HostArray> {
    arrays.get(name).ok_or_else(|| {
        let present: Vec<&str> = arrays.keys().map(String::as_str).collect();
        Error(format!("input {name:?} is missing (got {present:?})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_must_match_the_data() {
        assert!(HostArray::f32(vec![2, 3], vec![0.0; 6]).is_ok());
        let err = HostArray::i64(vec![2, 3], vec![0; 5]).unwrap_err();
        assert!(err.0.contains("needs 6 elements, got 5"), "{err}");
    }

    #[test]
    fn a_missing_input_names_itself_and_what_is_there() {
        let mut arrays = Arrays::new();
        arrays.insert("input_ids".into(), HostArray::i64(vec![1], vec![3]).unwrap());
        let err = get(&arrays, "labels").unwrap_err();
        assert!(err.0.contains("\"labels\"") && err.0.contains("input_ids"), "{err}");
    }
}
