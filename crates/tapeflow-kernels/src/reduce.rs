//! Reductions over any set of axes: sum, mean, max.

use tapeflow_dtype::{DType, Error, Result, Shape, Storage, Tensor};

use crate::elementwise::{float_storage, float_view};
use crate::layout::{broadcast_strides, for_each_strided};

/// The reductions of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// `tf.reduce_sum`; empty → 0.
    Sum,
    /// `tf.reduce_mean`; empty → NaN (int32: an `Err`, there is no integer NaN).
    Mean,
    /// `tf.reduce_max`; NaN wins; empty → -inf (int32: `i32::MIN`).
    Max,
}

impl ReduceOp {
    /// The op's name.
    pub const fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
        }
    }
}

/// Resolves `axes` (negative counts from the end; `None` = all axes) into sorted, unique
/// axis numbers; an axis out of range or repeated is an `Err`.
pub fn resolve_axes<R>(op: &'static str, x: &Tensor<R>, axes: Option<&[isize]>) -> Result<Vec<usize>> {
    let Some(axes) = axes else {
        return Ok((0..x.rank()).collect());
    };
    let mut resolved = Vec::with_capacity(axes.len());
    for &axis in axes {
        let bad = || Error::InvalidAxis { op, axis, shape: x.shape().clone(), dtype: x.dtype() };
        let a = x.shape().resolve_axis(axis).ok_or_else(bad)?;
        if resolved.contains(&a) {
            return Err(bad());
        }
        resolved.push(a);
    }
    resolved.sort_unstable();
    Ok(resolved)
}

/// Reduces `x` over `axes` (already resolved by [`resolve_axes`]); with `keepdims` the
/// reduced axes stay as length 1. Float sums accumulate in f64, so results are rounded once.
pub fn reduce<R>(op: ReduceOp, x: &Tensor<R>, axes: &[usize], keepdims: bool) -> Result<Tensor<R>> {
    if axes.iter().any(|&a| a >= x.rank()) {
        let axis = axes.iter().copied().find(|&a| a >= x.rank()).unwrap_or(0) as isize;
        return Err(Error::InvalidAxis { op: op.name(), axis, shape: x.shape().clone(), dtype: x.dtype() });
    }
    let kept: Vec<usize> = x.dims().iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    let out_shape = if keepdims {
        Shape::from(kept.clone())
    } else {
        Shape::from(x.dims().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect::<Vec<_>>())
    };
    let m = out_shape.num_elements();
    let count = x.num_elements().checked_div(m.max(1)).unwrap_or(0);
    let to_out = broadcast_strides(&kept, x.dims());
    let contiguous = x.shape().strides();
    let storage = match float_view(x) {
        Some(src) => float_storage(x.dtype(), m, |dst| match op {
            ReduceOp::Sum | ReduceOp::Mean => {
                let mut acc = vec![0.0f64; m];
                for_each_strided(x.dims(), [&contiguous[..], &to_out[..]], |_, [i, o]| acc[o] += f64::from(src[i]));
                let scale = if op == ReduceOp::Mean { 1.0 / count as f64 } else { 1.0 };
                dst.iter_mut().zip(&acc).for_each(|(d, &a)| *d = (if op == ReduceOp::Mean { a * scale } else { a }) as f32);
                if op == ReduceOp::Mean && count == 0 {
                    dst.fill(f32::NAN);
                }
            }
            ReduceOp::Max => {
                dst.fill(f32::NEG_INFINITY);
                for_each_strided(x.dims(), [&contiguous[..], &to_out[..]], |_, [i, o]| {
                    let v = src[i];
                    if v.is_nan() || v > dst[o] {
                        dst[o] = if dst[o].is_nan() { dst[o] } else { v };
                    }
                });
            }
        }),
        None => {
            let src = x.as_slice::<i32>()?;
            if op == ReduceOp::Mean && count == 0 && m > 0 {
                return Err(Error::InvalidArgument {
                    op: "mean",
                    reason: format!("the mean of an empty int32 reduction (shape {}) is undefined", x.shape()),
                });
            }
            Storage::from_fn::<i32>(m, |dst| {
                dst.fill(if op == ReduceOp::Max { i32::MIN } else { 0 });
                for_each_strided(x.dims(), [&contiguous[..], &to_out[..]], |_, [i, o]| {
                    dst[o] = match op {
                        ReduceOp::Max => dst[o].max(src[i]),
                        _ => dst[o].wrapping_add(src[i]),
                    }
                });
                if op == ReduceOp::Mean {
                    // TensorFlow divides the wrapped int32 sum, truncating toward zero.
                    let divisor = i32::try_from(count).unwrap_or(i32::MAX);
                    dst.iter_mut().for_each(|d| *d = d.wrapping_div(divisor));
                }
            })
        }
    };
    debug_assert_eq!(x.dtype() == DType::I32, storage.dtype() == DType::I32);
    Tensor::from_storage(storage, out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    type T = Tensor<()>;

    fn x() -> T {
        T::from_vec((1..=6).map(|v| v as f32).collect(), [2, 3]).unwrap()
    }

    #[test]
    fn sums_over_each_axis() {
        let x = x();
        assert_eq!(reduce(ReduceOp::Sum, &x, &[0], false).unwrap().to_vec::<f32>().unwrap(), vec![5.0, 7.0, 9.0]);
        let r = reduce(ReduceOp::Sum, &x, &[1], true).unwrap();
        assert_eq!(r.dims(), &[2, 1]);
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![6.0, 15.0]);
        assert_eq!(reduce(ReduceOp::Mean, &x, &[0, 1], false).unwrap().to_scalar::<f32>().unwrap(), 3.5);
        assert_eq!(reduce(ReduceOp::Max, &x, &[0], false).unwrap().to_vec::<f32>().unwrap(), vec![4.0, 5.0, 6.0]);
    }

    #[test]
    fn empty_reductions_follow_tensorflow() {
        let e = T::from_vec(Vec::<f32>::new(), [0]).unwrap();
        assert_eq!(reduce(ReduceOp::Sum, &e, &[0], false).unwrap().to_scalar::<f32>().unwrap(), 0.0);
        assert!(reduce(ReduceOp::Mean, &e, &[0], false).unwrap().to_scalar::<f32>().unwrap().is_nan());
        assert_eq!(reduce(ReduceOp::Max, &e, &[0], false).unwrap().to_scalar::<f32>().unwrap(), f32::NEG_INFINITY);
        let ei = T::from_vec(Vec::<i32>::new(), [0]).unwrap();
        assert_eq!(reduce(ReduceOp::Max, &ei, &[0], false).unwrap().to_scalar::<i32>().unwrap(), i32::MIN);
    }

    #[test]
    fn max_propagates_nan() {
        let x = T::from_vec(vec![1.0f32, f32::NAN, 3.0], [3]).unwrap();
        assert!(reduce(ReduceOp::Max, &x, &[0], false).unwrap().to_scalar::<f32>().unwrap().is_nan());
    }

    #[test]
    fn bad_axes_are_errors() {
        let x = x();
        assert!(resolve_axes("sum", &x, Some(&[2])).is_err());
        assert!(resolve_axes("sum", &x, Some(&[1, -1])).is_err());
        assert_eq!(resolve_axes("sum", &x, Some(&[-1, 0])).unwrap(), vec![0, 1]);
    }
}
