//! Rust literals as tensors, the way TensorFlow maps Python numbers: float literals become
//! float32, integer literals int32, `true`/`false` bool; beside a tensor, a number literal
//! adopts the tensor's (numeric) dtype and a bool literal is only a bool.

use half::f16;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// One Rust scalar, remembered with the kind of literal it was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScalarLiteral {
    /// A float literal (`f64` or `f32`): float32 by default.
    Float(f64),
    /// A `half::f16` value: float16 by default.
    Half(f16),
    /// An integer literal (`i32` or `i64`): int32 by default.
    Int(i64),
    /// A `bool` literal: bool, the only dtype it converts to.
    Bool(bool),
}

impl ScalarLiteral {
    /// The dtype TensorFlow gives this literal on its own.
    pub fn default_dtype(self) -> DType {
        match self {
            ScalarLiteral::Float(_) => DType::F32,
            ScalarLiteral::Half(_) => DType::F16,
            ScalarLiteral::Int(_) => DType::I32,
            ScalarLiteral::Bool(_) => DType::Bool,
        }
    }

    /// The literal as a scalar tensor of `dtype` (the other operand's dtype), for use as an
    /// op's operand: it may be shared with other uses of the same value (see
    /// [`Tensor::shared_scalar`]). A float into int32, an integer outside int32's range, a
    /// number into bool or a bool into a number is an `Err` naming `op` (TensorFlow
    /// converts neither way).
    pub fn to_tensor<R>(self, dtype: DType, op: &'static str) -> Result<Tensor<R>> {
        let refuse = |reason: String| Error::InvalidValue { op, shape: Shape::scalar(), dtype, reason };
        Ok(match (self, dtype) {
            (ScalarLiteral::Float(v), DType::F32) => Tensor::shared_scalar(v as f32),
            (ScalarLiteral::Float(v), DType::F16) => Tensor::shared_scalar(f16::from_f64(v)),
            (ScalarLiteral::Half(v), DType::F32) => Tensor::shared_scalar(v.to_f32()),
            (ScalarLiteral::Half(v), DType::F16) => Tensor::shared_scalar(v),
            (ScalarLiteral::Int(v), DType::F32) => Tensor::shared_scalar(v as f32),
            (ScalarLiteral::Int(v), DType::F16) => Tensor::shared_scalar(f16::from_f64(v as f64)),
            (ScalarLiteral::Int(v), DType::I32) => {
                let v = i32::try_from(v).map_err(|_| refuse(format!("{v} is out of int32's range")))?;
                Tensor::shared_scalar(v)
            }
            (ScalarLiteral::Float(v), DType::I32) => {
                return Err(refuse(format!("cannot convert the float {v} to an int32 tensor")));
            }
            (ScalarLiteral::Half(v), DType::I32) => {
                return Err(refuse(format!("cannot convert the float16 {v} to an int32 tensor")));
            }
            (ScalarLiteral::Bool(v), DType::Bool) => Tensor::shared_scalar(v),
            (ScalarLiteral::Bool(v), _) => {
                return Err(refuse(format!("cannot convert the bool {v} to a {dtype} tensor")));
            }
            (number, DType::Bool) => {
                return Err(refuse(format!("cannot convert the number {:?} to a bool tensor", number.as_f64())));
            }
        })
    }

    fn as_f64(self) -> f64 {
        match self {
            ScalarLiteral::Float(v) => v,
            ScalarLiteral::Half(v) => v.to_f64(),
            ScalarLiteral::Int(v) => v as f64,
            ScalarLiteral::Bool(v) => f64::from(u8::from(v)),
        }
    }
}

/// A Rust scalar type usable as a literal: `f64`, `f32`, `f16`, `i32`, `i64`, `bool`.
pub trait Literal: Copy {
    /// The dtype TensorFlow gives a literal of this type.
    const DTYPE: DType;
    /// The scalar with its kind.
    fn literal(self) -> ScalarLiteral;
}

impl Literal for f64 {
    const DTYPE: DType = DType::F32;
    fn literal(self) -> ScalarLiteral {
        ScalarLiteral::Float(self)
    }
}
impl Literal for f32 {
    const DTYPE: DType = DType::F32;
    fn literal(self) -> ScalarLiteral {
        ScalarLiteral::Float(f64::from(self))
    }
}
impl Literal for f16 {
    const DTYPE: DType = DType::F16;
    fn literal(self) -> ScalarLiteral {
        ScalarLiteral::Half(self)
    }
}
impl Literal for i32 {
    const DTYPE: DType = DType::I32;
    fn literal(self) -> ScalarLiteral {
        ScalarLiteral::Int(i64::from(self))
    }
}
impl Literal for i64 {
    const DTYPE: DType = DType::I32;
    fn literal(self) -> ScalarLiteral {
        ScalarLiteral::Int(self)
    }
}
impl Literal for bool {
    const DTYPE: DType = DType::Bool;
    fn literal(self) -> ScalarLiteral {
        ScalarLiteral::Bool(self)
    }
}

/// Builds a tensor of the literals' default dtype. int64 values outside int32's range wrap,
/// as numpy's `astype(int32)` would; every other conversion is exact or rounds to nearest.
fn tensor_from_literals<R, L: Literal>(values: &[L], shape: Shape) -> Tensor<R> {
    let dtype = L::DTYPE;
    let n = values.len();
    let storage = match dtype {
        DType::F32 => Storage::from_fn::<f32>(n, |out| {
            out.iter_mut().zip(values).for_each(|(o, v)| *o = v.literal().as_f64() as f32)
        }),
        DType::F16 => Storage::from_fn::<f16>(n, |out| {
            out.iter_mut().zip(values).for_each(|(o, v)| *o = f16::from_f64(v.literal().as_f64()))
        }),
        DType::I32 => Storage::from_fn::<i32>(n, |out| {
            out.iter_mut().zip(values).for_each(|(o, v)| match v.literal() {
                ScalarLiteral::Int(i) => *o = i as i32,
                other => *o = other.as_f64() as i32,
            })
        }),
        DType::Bool => Storage::from_fn::<bool>(n, |out| {
            out.iter_mut().zip(values).for_each(|(o, v)| *o = v.literal().as_f64() != 0.0)
        }),
    };
    // The shape was built from the very arrays whose elements fill the storage.
    Tensor::from_storage(storage, shape.clone()).unwrap_or_else(|_| Tensor::zeros(shape, dtype))
}

macro_rules! scalar_into_tensor {
    ($($t:ty),*) => {$(
        impl<R> From<$t> for Tensor<R> {
            fn from(value: $t) -> Self {
                tensor_from_literals(&[value], Shape::scalar())
            }
        }
    )*};
}
scalar_into_tensor!(f64, f32, f16, i32, i64, bool);

impl<R, L: Literal, const N: usize> From<[L; N]> for Tensor<R> {
    fn from(values: [L; N]) -> Self {
        tensor_from_literals(&values, Shape::from([N]))
    }
}

impl<R, L: Literal, const N: usize, const M: usize> From<[[L; N]; M]> for Tensor<R> {
    fn from(values: [[L; N]; M]) -> Self {
        tensor_from_literals(values.as_flattened(), Shape::from([M, N]))
    }
}

impl<R, L: Literal, const N: usize, const M: usize, const K: usize> From<[[[L; N]; M]; K]> for Tensor<R> {
    fn from(values: [[[L; N]; M]; K]) -> Self {
        tensor_from_literals(values.as_flattened().as_flattened(), Shape::from([K, M, N]))
    }
}

impl<R, L: Literal> From<Vec<L>> for Tensor<R> {
    fn from(values: Vec<L>) -> Self {
        let n = values.len();
        tensor_from_literals(&values, Shape::from([n]))
    }
}

impl<R, L: Literal> From<&[L]> for Tensor<R> {
    fn from(values: &[L]) -> Self {
        tensor_from_literals(values, Shape::from([values.len()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type T = Tensor<()>;

    #[test]
    fn literals_take_tensorflow_default_dtypes() {
        assert_eq!(T::from(3.0).dtype(), DType::F32);
        assert_eq!(T::from(30).dtype(), DType::I32);
        assert_eq!(T::from(f16::ONE).dtype(), DType::F16);
        let m = T::from([[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(m.dims(), &[2, 2]);
        assert_eq!(m.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(T::from([[[1, 2]], [[3, 4]]]).dims(), &[2, 1, 2]);
        let mask = T::from([[true, false], [false, true]]);
        assert_eq!((mask.dtype(), mask.dims()), (DType::Bool, &[2usize, 2][..]));
        assert_eq!(mask.to_vec::<bool>().unwrap(), vec![true, false, false, true]);
        assert!(T::from(true).to_scalar::<bool>().unwrap());
    }

    #[test]
    fn bool_literals_and_numbers_do_not_convert_into_each_other() {
        let t: T = ScalarLiteral::Bool(true).to_tensor(DType::Bool, "logical_and").unwrap();
        assert!(t.to_scalar::<bool>().unwrap());
        let err = ScalarLiteral::Bool(true).to_tensor::<()>(DType::F32, "add").unwrap_err().to_string();
        assert!(err.contains("add") && err.contains("bool") && err.contains("float32"), "{err}");
        let err = ScalarLiteral::Int(1).to_tensor::<()>(DType::Bool, "logical_or").unwrap_err().to_string();
        assert!(err.contains("logical_or") && err.contains("bool"), "{err}");
    }

    #[test]
    fn literals_adopt_the_other_operand_dtype() {
        let t: T = ScalarLiteral::Int(3).to_tensor(DType::F16, "mul").unwrap();
        assert_eq!(t.dtype(), DType::F16);
        let err = ScalarLiteral::Float(2.5).to_tensor::<()>(DType::I32, "mul").unwrap_err();
        assert!(err.to_string().contains("mul"));
    }
}
