//! Conversions to and from `ndarray` arrays (cargo feature `ndarray`).
//!
//! ```
//! use ndarray::{ArrayD, IxDyn};
//! use tapeflow_dtype::{DType, Tensor};
//!
//! let array = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
//! let t: Tensor<()> = Tensor::from(array.view());     // any ndarray, owned or a view
//! assert_eq!((t.dims(), t.dtype()), (&[2usize, 2][..], DType::F32));
//! assert_eq!(t.to_ndarray::<f32>().unwrap(), array);
//! assert!(t.to_ndarray::<i32>().is_err());            // the element type must be the dtype
//! ```

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// An array of `f32`, `f16` or `i32` (owned, shared or a view, any dimensionality and any
/// memory layout) becomes a tensor of the same shape, elements in logical row-major order.
impl<R, T, S, D> From<ArrayBase<S, D>> for Tensor<R>
where
    T: Element,
    S: Data<Elem = T>,
    D: Dimension,
{
    fn from(array: ArrayBase<S, D>) -> Self {
        Tensor::from(&array)
    }
}

/// See the owned conversion; the array is copied.
impl<R, T, S, D> From<&ArrayBase<S, D>> for Tensor<R>
where
    T: Element,
    S: Data<Elem = T>,
    D: Dimension,
{
    fn from(array: &ArrayBase<S, D>) -> Self {
        let storage = match array.as_slice() {
            // Standard layout: one copy of the contiguous elements.
            Some(values) => Storage::from_slice(values),
            None => {
                let mut values = array.iter();
                Storage::from_fn::<T>(array.len(), |out| {
                    out.iter_mut().zip(&mut values).for_each(|(o, v)| *o = *v);
                })
            }
        };
        Tensor::from_storage_exact(storage, Shape::new(array.shape()))
    }
}

impl<R> Tensor<R> {
    /// The tensor as an owned `ndarray::ArrayD<T>` of the same shape; `Err` if `T` is not
    /// the tensor's dtype.
    pub fn to_ndarray<T: Element>(&self) -> Result<ArrayD<T>> {
        let values = self.as_slice::<T>().map_err(|_| Error::DTypeMismatch {
            op: "to_ndarray",
            lhs: self.shape().clone(),
            lhs_dtype: self.dtype(),
            rhs: self.shape().clone(),
            rhs_dtype: T::DTYPE,
        })?;
        ArrayD::from_shape_vec(IxDyn(self.dims()), values.to_vec())
            .map_err(|e| Error::InvalidArgument { op: "to_ndarray", reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use half::f16;
    use ndarray::{Array, Array2, ArrayD, IxDyn, arr0, s};

    use crate::dtype::DType;
    use crate::tensor::Tensor;

    type T = Tensor<()>;

    #[test]
    fn all_three_dtypes_round_trip() {
        let f = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0f32, -2.0, 3.5, 0.0, 5.0, 6.0]).unwrap();
        let t = T::from(f.clone());
        assert_eq!((t.dims(), t.dtype()), (&[2usize, 3][..], DType::F32));
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.0]);
        assert_eq!(t.to_ndarray::<f32>().unwrap(), f);

        let h = Array::from_vec(vec![f16::from_f32(0.5), f16::MAX]).into_dyn();
        let t = T::from(&h);
        assert_eq!(t.dtype(), DType::F16);
        assert_eq!(t.to_ndarray::<f16>().unwrap(), h);

        let i = Array2::from_shape_vec((2, 2), vec![i32::MIN, 0, 1, i32::MAX]).unwrap();
        let t = T::from(i.view());
        assert_eq!(t.dtype(), DType::I32);
        assert_eq!(t.to_ndarray::<i32>().unwrap(), i.into_dyn());
    }

    #[test]
    fn scalars_empty_and_strided_arrays() {
        let t = T::from(arr0(2.5f32));
        assert_eq!((t.rank(), t.to_scalar::<f32>().unwrap()), (0, 2.5));
        assert_eq!(t.to_ndarray::<f32>().unwrap().ndim(), 0);

        let empty = ArrayD::<i32>::zeros(IxDyn(&[0, 4]));
        let t = T::from(&empty);
        assert_eq!((t.dims(), t.num_elements()), (&[0usize, 4][..], 0));
        assert_eq!(t.to_ndarray::<i32>().unwrap().shape(), &[0, 4]);

        // A transposed, stepped view is read in its logical row-major order.
        let a = Array2::from_shape_fn((3, 4), |(r, c)| (10 * r + c) as f32);
        let view = a.t();
        let t = T::from(view);
        assert_eq!(t.dims(), &[4, 3]);
        assert_eq!(t.to_vec::<f32>().unwrap()[..4], [0.0, 10.0, 20.0, 1.0]);
        let stepped = a.slice(s![.., ..;2]);
        assert_eq!(T::from(stepped).to_vec::<f32>().unwrap(), vec![0.0, 2.0, 10.0, 12.0, 20.0, 22.0]);
    }

    #[test]
    fn the_element_type_must_match_the_dtype() {
        let t = T::from_vec(vec![1i32, 2], [2]).unwrap();
        let err = t.to_ndarray::<f32>().unwrap_err().to_string();
        assert!(err.contains("to_ndarray") && err.contains("int32") && err.contains("float32"), "{err}");
    }
}
