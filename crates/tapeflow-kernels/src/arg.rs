//! `tf.math.argmax` / `tf.math.argmin` along one axis, with int32 indices.
//!
//! TensorFlow's CPU kernel (Eigen's arg reducers) starts from index 0 holding the dtype's
//! lowest (argmax) or highest (argmin) finite value and replaces it by each element that
//! is strictly better, in order. So ties give the first index, NaN is skipped (it compares
//! false), and a slice with nothing strictly beyond that start value (all NaN, or only
//! −inf and the lowest finite value for argmax) gives 0. The kernels here keep the same
//! rule lane by lane and combine the lanes by value, then by smallest index.

use tapeflow_dtype::{DType, Error, Result, Shape, Storage, Tensor, f16};

use crate::elementwise::float_view;
use crate::layout::split_at_axis;
use crate::{isa, parallel, simd};

/// Which end of the order an arg reduction looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgOp {
    /// `tf.math.argmax`.
    Max,
    /// `tf.math.argmin`.
    Min,
}

impl ArgOp {
    /// The op's name.
    pub const fn name(self) -> &'static str {
        match self {
            ArgOp::Max => "argmax",
            ArgOp::Min => "argmin",
        }
    }

    /// The value every slice starts from: the dtype's lowest finite value for argmax, its
    /// highest for argmin (Eigen's `NumTraits::lowest()` / `highest()`).
    fn start_f32(self, dtype: DType) -> f32 {
        let max = if dtype == DType::F16 { f16::MAX.to_f32() } else { f32::MAX };
        match self {
            ArgOp::Max => -max,
            ArgOp::Min => max,
        }
    }
}

/// The index of the maximum (or minimum) of `x` along `axis` (negative counts from the
/// end), as int32, with the axis removed from the shape. An axis out of range, a rank-0
/// input, an empty axis (as TensorFlow: "reduction axis is empty") or an axis longer than
/// `i32::MAX` is an `Err`.
pub fn arg_reduce<R>(op: ArgOp, x: &Tensor<R>, axis: isize) -> Result<Tensor<R>> {
    let name = op.name();
    let bad_axis = || Error::InvalidAxis { op: name, axis, shape: x.shape().clone(), dtype: x.dtype() };
    let a = x.shape().resolve_axis(axis).ok_or_else(bad_axis)?;
    let (outer, n, inner) = split_at_axis(x.dims(), a);
    let out_shape =
        Shape::from(x.dims().iter().enumerate().filter(|&(i, _)| i != a).map(|(_, &d)| d).collect::<Vec<_>>());
    if n == 0 {
        return Err(Error::InvalidArgument {
            op: name,
            reason: format!("the reduction axis {axis} is empty in shape {} {}", x.shape(), x.dtype()),
        });
    }
    let m = crate::layout::checked_output_len(name, x, &out_shape)?;
    if m == 0 {
        return Tensor::from_storage(Storage::for_overwrite::<i32>(0, |_| {}), out_shape);
    }
    if i32::try_from(n).is_err() {
        return Err(Error::InvalidArgument {
            op: name,
            reason: format!("axis {axis} of shape {} {} is too long for int32 indices", x.shape(), x.dtype()),
        });
    }
    let max = op == ArgOp::Max;
    let level = isa::current();
    let storage = match float_view(x) {
        Some(src) => {
            let start = op.start_f32(x.dtype());
            let layout = Layout { outer, n, inner };
            Storage::for_overwrite::<i32>(m, |dst| {
                layout.run(dst, |o, c, out| {
                    if inner == 1 {
                        for (r, d) in out.iter_mut().enumerate() {
                            let row = &src[(o + r) * n..(o + r + 1) * n];
                            *d = simd::arg_row_f32(level, row, max, start) as i32;
                        }
                    } else {
                        let block = &src[o * n * inner + c..(o + 1) * n * inner];
                        simd::arg_columns_f32(level, block, inner, n, max, start, out);
                    }
                })
            })
        }
        None if x.dtype() == DType::I32 => {
            let src = x.as_slice::<i32>()?;
            let layout = Layout { outer, n, inner };
            Storage::for_overwrite::<i32>(m, |dst| {
                layout.run(dst, |o, c, out| {
                    if inner == 1 {
                        for (r, d) in out.iter_mut().enumerate() {
                            let row = &src[(o + r) * n..(o + r + 1) * n];
                            *d = simd::arg_row_i32(level, row, max) as i32;
                        }
                    } else {
                        let block = &src[o * n * inner + c..(o + 1) * n * inner];
                        simd::arg_columns_i32(level, block, inner, n, max, out);
                    }
                })
            })
        }
        None => return Err(Error::UnsupportedDType { op: name, shape: x.shape().clone(), dtype: x.dtype() }),
    };
    Tensor::from_storage(storage, out_shape)
}

/// The loops of an arg reduction over `[outer, n, inner]` (the reduced axis in the
/// middle), cut into pieces of about [`parallel::CHUNK`] input elements: groups of whole
/// rows when `inner` is 1, else blocks of columns of one `outer` slice. Each output is
/// computed the same way whatever piece it falls in, so the split (and the thread count)
/// never changes a result.
struct Layout {
    outer: usize,
    n: usize,
    inner: usize,
}

impl Layout {
    /// Calls `f(o, c, out)` for each piece: `out` holds the outputs of slice `o` (when
    /// `inner` is 1: of rows `o..o + out.len()`) from column `c` on.
    fn run(&self, dst: &mut [i32], f: impl Fn(usize, usize, &mut [i32]) + Sync + Send) {
        let Layout { outer, n, inner } = *self;
        if dst.is_empty() {
            return;
        }
        let pieces: Vec<(usize, usize, &mut [i32])> = if inner == 1 {
            let rows = (parallel::CHUNK / n).max(1);
            dst.chunks_mut(rows).enumerate().map(|(k, out)| (k * rows, 0, out)).collect()
        } else {
            // Columns per piece: a multiple of 64 (four vectors) near CHUNK / n.
            let width = ((parallel::CHUNK / n) / 64 * 64).max(64);
            let mut pieces = Vec::new();
            for (o, slice) in dst.chunks_mut(inner).enumerate() {
                for (k, out) in slice.chunks_mut(width).enumerate() {
                    pieces.push((o, k * width, out));
                }
            }
            pieces
        };
        let work = outer.saturating_mul(n).saturating_mul(inner);
        if work < parallel::PARALLEL_MIN_WORK {
            pieces.into_iter().for_each(|(o, c, out)| f(o, c, out));
        } else {
            parallel::for_each_item(pieces, |_, (o, c, out)| f(o, c, out));
        }
    }
}

#[cfg(test)]
mod tests;
