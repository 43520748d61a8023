//! Saving and loading named tensors in the safetensors format (the `safetensors` crate),
//! the weight format of the Rust and Hugging Face ecosystems: Keras' `save_weights` /
//! `load_weights`, by name.
//!
//! ```
//! use tapeflow_dtype::Result;
//! use tapeflow_tape::{Variable, weights};
//!
//! # fn main() -> Result<()> {
//! let w = Variable::new([[1.0, 2.0], [3.0, 4.0]]);
//! let step = Variable::new(7);
//! let bytes = weights::to_safetensors_bytes(&[("w", &w), ("step", &step)])?;
//! let loaded = weights::from_safetensors_bytes(&bytes)?;
//! assert_eq!(loaded["w"].to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0]);
//!
//! let w2 = Variable::new([[0.0, 0.0], [0.0, 0.0]]);
//! weights::assign_variables(&loaded, &[("w", &w2)])?;      // by name, shape and dtype checked
//! assert_eq!(w2.value().to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0]);
//! # Ok(()) }
//! ```
//!
//! Files are read whole into memory (their size bounds the allocation); the header is
//! parsed by the `safetensors` crate, which refuses headers over 100 MB and offsets that
//! do not tile the data exactly. A malformed, truncated or inconsistent file is an `Err`,
//! never a panic. Data is little-endian, as the format specifies, on every platform.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, View};
use tapeflow_dtype::{DType, Error, Result, Shape, f16};

use crate::runtime::Tensor;
use crate::variable::Variable;

/// What can be saved under a name: a [`Tensor`] or a [`Variable`] (its current value, read
/// without recording an access on any tape).
pub trait SavedValue {
    /// The value to write.
    fn saved_value(&self) -> Tensor;
}

impl SavedValue for Tensor {
    fn saved_value(&self) -> Tensor {
        self.clone()
    }
}

impl SavedValue for Variable {
    fn saved_value(&self) -> Tensor {
        self.unrecorded_value()
    }
}

impl<T: SavedValue + ?Sized> SavedValue for &T {
    fn saved_value(&self) -> Tensor {
        (**self).saved_value()
    }
}

/// One tensor ready for the writer: dtype, shape and little-endian bytes.
struct Encoded {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn encode(t: &Tensor) -> Result<Encoded> {
    let (dtype, bytes) = match t.dtype() {
        DType::F32 => (Dtype::F32, t.as_slice::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::F16 => (Dtype::F16, t.as_slice::<f16>()?.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect()),
        DType::I32 => (Dtype::I32, t.as_slice::<i32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::Bool => (Dtype::BOOL, t.as_slice::<bool>()?.iter().map(|&v| u8::from(v)).collect()),
    };
    Ok(Encoded { dtype, shape: t.dims().to_vec(), bytes })
}

/// The safetensors bytes of `items`, each saved under its name. Names must be distinct and
/// not `__metadata__` (`Err` otherwise). Tensors are laid out as the format prescribes (by dtype, then name).
pub fn to_safetensors_bytes<N: AsRef<str>, V: SavedValue>(items: &[(N, V)]) -> Result<Vec<u8>> {
    const OP: &str = "to_safetensors_bytes";
    let mut seen = HashSet::new();
    let mut encoded = Vec::with_capacity(items.len());
    for (name, value) in items {
        let name = name.as_ref();
        if !seen.insert(name) {
            return Err(Error::InvalidArgument { op: OP, reason: format!("the name '{name}' is given twice") });
        }
        if name == "__metadata__" {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: "'__metadata__' is reserved by the format for the header's metadata".into(),
            });
        }
        encoded.push((name.to_string(), encode(&value.saved_value())?));
    }
    safetensors::tensor::serialize(encoded.iter().map(|(name, e)| (name.as_str(), e)), None)
        .map_err(|e| Error::Format { op: OP, reason: e.to_string() })
}

/// Writes `items` to the safetensors file `path` (Keras' `save_weights`).
pub fn save_safetensors<N: AsRef<str>, V: SavedValue>(path: impl AsRef<Path>, items: &[(N, V)]) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_safetensors_bytes(items)?;
    std::fs::write(path, bytes).map_err(|e| Error::Io {
        op: "save_safetensors",
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Every tensor of safetensors `bytes`, by name. `Err` for malformed or truncated data,
/// and for a dtype tapeflow does not have (naming the tensor and its dtype).
pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>> {
    const OP: &str = "from_safetensors_bytes";
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::Format { op: OP, reason: e.to_string() })?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.iter() {
        let shape = Shape::new(view.shape());
        let data = view.data();
        let bad_length = |dtype: DType| Error::Format {
            op: OP,
            reason: format!("tensor '{name}' of shape {shape} {dtype} has {} bytes of data", data.len()),
        };
        let tensor = match view.dtype() {
            Dtype::F32 => {
                let values: Vec<f32> =
                    data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                Tensor::from_vec(values, shape.clone()).map_err(|_| bad_length(DType::F32))?
            }
            Dtype::F16 => {
                let values: Vec<f16> =
                    data.chunks_exact(2).map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]]))).collect();
                Tensor::from_vec(values, shape.clone()).map_err(|_| bad_length(DType::F16))?
            }
            Dtype::I32 => {
                let values: Vec<i32> =
                    data.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                Tensor::from_vec(values, shape.clone()).map_err(|_| bad_length(DType::I32))?
            }
            // One byte per element, 0 or 1; any other byte is a malformed file.
            Dtype::BOOL => {
                let values = data
                    .iter()
                    .map(|&b| match b {
                        0 | 1 => Ok(b == 1),
                        _ => Err(Error::Format {
                            op: OP,
                            reason: format!("tensor '{name}' of shape {shape} bool holds the byte {b}, not 0 or 1"),
                        }),
                    })
                    .collect::<Result<Vec<bool>>>()?;
                Tensor::from_vec(values, shape.clone()).map_err(|_| bad_length(DType::Bool))?
            }
            other => {
                return Err(Error::Format {
                    op: OP,
                    reason: format!(
                        "tensor '{name}' of shape {shape} has dtype {other:?}; tapeflow reads F32, F16, I32 and BOOL only"
                    ),
                });
            }
        };
        tensors.insert(name.to_string(), tensor);
    }
    Ok(tensors)
}

/// Every tensor of the safetensors file `path`, by name; see
/// [`from_safetensors_bytes`].
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        op: "load_safetensors",
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    from_safetensors_bytes(&bytes)
}

/// Assigns `tensors[name]` to each named variable (Keras' `load_weights`, by name). Every
/// name must be present with the variable's shape and dtype; all are checked before any
/// variable changes, so an `Err` leaves every variable as it was. Tensors not named are
/// ignored.
pub fn assign_variables<N: AsRef<str>>(tensors: &BTreeMap<String, Tensor>, vars: &[(N, &Variable)]) -> Result<()> {
    const OP: &str = "assign_variables";
    let mut updates = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        let name = name.as_ref();
        let value = tensors.get(name).ok_or_else(|| Error::InvalidArgument {
            op: OP,
            reason: format!(
                "no tensor named '{name}' (variable {} of shape {} {})",
                var.name(),
                var.shape(),
                var.dtype()
            ),
        })?;
        let current = var.unrecorded_value();
        if value.dtype() != current.dtype() {
            return Err(Error::dtype_mismatch(OP, value, &current));
        }
        if value.shape() != current.shape() {
            return Err(Error::shape_mismatch(
                OP,
                value,
                &current,
                format!("tensor '{name}' must have the shape of its variable"),
            ));
        }
        updates.push((var, value));
    }
    for (var, value) in updates {
        var.assign(value)?;
    }
    Ok(())
}

/// Loads the safetensors file `path` into the named variables; see [`assign_variables`].
pub fn load_variables<N: AsRef<str>>(path: impl AsRef<Path>, vars: &[(N, &Variable)]) -> Result<()> {
    assign_variables(&load_safetensors(path)?, vars)
}
