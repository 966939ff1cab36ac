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

/// A count input: one positive int64 (the VLA expert's `num_steps`).
pub fn count(arrays: &Arrays, name: &str) -> Result<usize> {
    let array = get(arrays, name)?;
    match &array.data {
        HostData::I64(v) if v.len() == 1 && v[0] > 0 => Ok(v[0] as usize),
        HostData::I64(v) if v.len() == 1 => Err(Error(format!("{name} must be positive, got {}", v[0]))),
        _ => Err(Error(format!("input {name:?} must be one int64, got shape {:?}", array.shape))),
    }
}

/// A float32 input's values on the host, for what a family computes there (the VLA expert's times).
pub fn f32_values<'a>(arrays: &'a Arrays, name: &str) -> Result<&'a [f32]> {
    match &get(arrays, name)?.data {
        HostData::F32(v) => Ok(v),
        HostData::I64(_) => Err(Error(format!("input {name:?} must be float32"))),
    }
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

    #[test]
    fn a_count_is_one_positive_int64() {
        let mut arrays = Arrays::new();
        arrays.insert("steps".into(), HostArray::i64(vec![1], vec![10]).unwrap());
        arrays.insert("zero".into(), HostArray::i64(vec![1], vec![0]).unwrap());
        arrays.insert("pair".into(), HostArray::i64(vec![2], vec![1, 2]).unwrap());
        arrays.insert("time".into(), HostArray::f32(vec![2], vec![0.5, 1.0]).unwrap());
        assert_eq!(count(&arrays, "steps").unwrap(), 10);
        assert_eq!(count(&arrays, "zero").unwrap_err().0, "zero must be positive, got 0");
        assert_eq!(count(&arrays, "pair").unwrap_err().0, "input \"pair\" must be one int64, got shape [2]");
        assert_eq!(f32_values(&arrays, "time").unwrap(), [0.5, 1.0]);
        assert_eq!(f32_values(&arrays, "steps").unwrap_err().0, "input \"steps\" must be float32");
    }
}
