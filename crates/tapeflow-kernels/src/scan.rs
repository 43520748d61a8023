//! `tf.math.cumsum` and `tf.math.cumprod` along one axis, `exclusive` and `reverse` as
//! TensorFlow's attributes.
//!
//! Every output is its slice's running total taken element by element in order (the
//! scalar reference's order), whether the axis is the last one (a sequential loop per
//! row) or not (16 columns per vector, row after row), so every level and every thread
//! count gives the same bits. float16 accumulates in f32 and is rounded once.

use tapeflow_dtype::{DType, Error, Result, Storage, Tensor};

use crate::elementwise::{float_storage, float_view};
use crate::layout::split_at_axis;
use crate::{isa, parallel, simd};

/// The two scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanOp {
    /// `tf.math.cumsum`.
    Sum,
    /// `tf.math.cumprod`.
    Prod,
}

impl ScanOp {
    /// The op's name.
    pub const fn name(self) -> &'static str {
        match self {
            ScanOp::Sum => "cumsum",
            ScanOp::Prod => "cumprod",
        }
    }
}

/// The cumulative sum or product of `x` along `axis` (negative counts from the end):
/// element `k` is the total of elements `0..=k` (`exclusive`: `0..k`; `reverse`: from the
/// end). An axis outside `-rank..rank` (every axis of a scalar) is an `Err`, as TF's.
pub fn scan<R>(op: ScanOp, x: &Tensor<R>, axis: isize, exclusive: bool, reverse: bool) -> Result<Tensor<R>> {
    let bad_axis = || Error::InvalidAxis { op: op.name(), axis, shape: x.shape().clone(), dtype: x.dtype() };
    let a = x.shape().resolve_axis(axis).ok_or_else(bad_axis)?;
    let len = x.num_elements();
    if len == 0 {
        return Ok(x.with_new_id());
    }
    let (_, n, inner) = split_at_axis(x.dims(), a);
    let slab = n * inner;
    let storage = match float_view(x) {
        Some(src) => {
            let level = isa::current();
            float_storage(x.dtype(), len, |dst| {
                for_each_slab(dst, slab, |first, out| {
                    let src = &src[first * slab..first * slab + out.len()];
                    if inner == 1 {
                        // 16 rows at a time in transposed tiles, the rest one by one.
                        let (identity, step): (f32, fn(f32, f32) -> f32) = match op {
                            ScanOp::Sum => (0.0, |a, v| a + v),
                            ScanOp::Prod => (1.0, |a, v| a * v),
                        };
                        let prod = op == ScanOp::Prod;
                        let mut tiles = src.chunks_exact(16 * n).zip(out.chunks_exact_mut(16 * n));
                        for (rows, o) in &mut tiles {
                            simd::scan_rows16_f32(level, rows, o, n, prod, exclusive, reverse);
                        }
                        let done = src.len() / (16 * n) * (16 * n);
                        for (row, o) in src[done..].chunks_exact(n).zip(out[done..].chunks_exact_mut(n)) {
                            scan_row(row, o, exclusive, reverse, identity, step);
                        }
                    } else {
                        for (block, o) in src.chunks_exact(slab).zip(out.chunks_exact_mut(slab)) {
                            simd::scan_columns_f32(level, block, o, n, inner, op == ScanOp::Prod, exclusive, reverse);
                        }
                    }
                })
            })
        }
        None if x.dtype() == DType::I32 => {
            let src = x.as_slice::<i32>()?;
            let (identity, step): (i32, fn(i32, i32) -> i32) = match op {
                ScanOp::Sum => (0, i32::wrapping_add),
                ScanOp::Prod => (1, i32::wrapping_mul),
            };
            Storage::for_overwrite::<i32>(len, |dst| {
                for_each_slab(dst, slab, |first, out| {
                    let src = &src[first * slab..first * slab + out.len()];
                    for (block, o) in src.chunks_exact(slab).zip(out.chunks_exact_mut(slab)) {
                        scan_block(block, o, n, inner, exclusive, reverse, identity, step);
                    }
                })
            })
        }
        None => return Err(Error::UnsupportedDType { op: op.name(), shape: x.shape().clone(), dtype: x.dtype() }),
    };
    Tensor::from_storage(storage, x.shape().clone())
}

/// Calls `f(first, out)` for pieces of `dst` made of whole slabs of `slab` elements
/// (`first`: the index of the piece's first slab), about [`parallel::CHUNK`] elements
/// each, in parallel when there is enough work. Slabs are independent, so the split never
/// changes a result.
fn for_each_slab<T: Send>(dst: &mut [T], slab: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    let per_piece = (parallel::CHUNK / slab).max(1);
    let total = dst.len();
    let pieces: Vec<&mut [T]> = dst.chunks_mut(per_piece * slab).collect();
    if total < parallel::PARALLEL_MIN_WORK {
        pieces.into_iter().enumerate().for_each(|(k, out)| f(k * per_piece, out));
    } else {
        parallel::for_each_item(pieces, |k, out| f(k * per_piece, out));
    }
}

/// The scan of one contiguous row, element by element.
fn scan_row<T: Copy>(row: &[T], out: &mut [T], exclusive: bool, reverse: bool, identity: T, step: impl Fn(T, T) -> T) {
    let mut acc = identity;
    let mut visit = |k: usize| {
        let before = acc;
        acc = step(acc, row[k]);
        out[k] = if exclusive { before } else { acc };
    };
    if reverse {
        (0..row.len()).rev().for_each(&mut visit);
    } else {
        (0..row.len()).for_each(&mut visit);
    }
}

/// The scan of one `[n, inner]` block down its columns, scalar (int32).
#[allow(clippy::too_many_arguments)]
fn scan_block<T: Copy>(
    src: &[T],
    out: &mut [T],
    n: usize,
    inner: usize,
    exclusive: bool,
    reverse: bool,
    identity: T,
    step: fn(T, T) -> T,
) {
    if inner == 1 {
        return scan_row(src, out, exclusive, reverse, identity, step);
    }
    let mut acc = vec![identity; inner];
    for i in 0..n {
        let k = if reverse { n - 1 - i } else { i };
        let (row, dst) = (&src[k * inner..(k + 1) * inner], &mut out[k * inner..(k + 1) * inner]);
        for ((a, &v), d) in acc.iter_mut().zip(row).zip(dst) {
            let before = *a;
            *a = step(*a, v);
            *d = if exclusive { before } else { *a };
        }
    }
}

#[cfg(test)]
mod tests;
