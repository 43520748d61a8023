//! Gathers and scatters of whole rows: `gather`, `gather_nd`, `scatter_nd`,
//! `unsorted_segment_sum` and `one_hot`.
//!
//! Every op here is one of two kernels over a tensor viewed as `[outer, rows, inner]`:
//! a *gather* copies `inner`-element rows by index (`copy_from_slice`, one memcpy per row),
//! and a *segment sum* adds rows into the rows their indices name. Both split their output
//! over rayon's threads in pieces of whole rows whose boundaries depend only on the sizes.
//! The segment sum is partitioned by *output* row: each output row is computed by one
//! thread as `0 + s₁ + s₂ + …` over its sources in index order, so duplicates are summed in
//! the same order, with the same bits, whatever the thread count.

use half::f16;
use tapeflow_dtype::{DType, Element, Error, Result, Shape, Storage, Tensor};

use crate::isa::{self, Level};
use crate::layout::{checked_output_len, split_at_axis};
use crate::simd;
use crate::slicing::{for_each_row_piece, with_element};

/// A resolved index that selects nothing: a zero row in a gather, no row in a sum.
const NONE: usize = usize::MAX;

/// What a negative index means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Negative {
    /// An `Err`, as every index outside `[0, n)`.
    Refuse,
    /// Nothing: a gather gives a zero row, a segment sum drops the row (TensorFlow's
    /// unsorted segment ops and `_GatherDropNegatives`).
    Skip,
}

fn int32_indices<'a, R>(op: &'static str, indices: &'a Tensor<R>) -> Result<&'a [i32]> {
    if indices.dtype() != DType::I32 {
        return Err(Error::UnsupportedDType { op, shape: indices.shape().clone(), dtype: indices.dtype() });
    }
    indices.as_slice::<i32>()
}

/// `[i, j, …]`: the multi-index of flat position `k` in `dims`.
fn position(mut k: usize, dims: &[usize]) -> String {
    let mut index = vec![0; dims.len()];
    for (i, &d) in dims.iter().enumerate().rev() {
        if d > 0 {
            index[i] = k % d;
            k /= d;
        }
    }
    format!("{index:?}")
}

/// The rows that `indices` select among `bound`: each index as a row, or [`NONE`] for a
/// negative one under [`Negative::Skip`]. Any other index outside `[0, bound)` is an `Err`
/// naming `op`, the index's position and value, and `context` (what it indexes).
fn resolve_rows<R>(
    op: &'static str,
    indices: &Tensor<R>,
    bound: usize,
    negative: Negative,
    context: impl Fn() -> String,
) -> Result<Vec<usize>> {
    let values = int32_indices(op, indices)?;
    values
        .iter()
        .enumerate()
        .map(|(k, &v)| match v {
            v if v < 0 && negative == Negative::Skip => Ok(NONE),
            v if v >= 0 && (v as usize) < bound => Ok(v as usize),
            v => Err(Error::InvalidValue {
                op,
                shape: indices.shape().clone(),
                dtype: indices.dtype(),
                reason: format!("indices{} = {v} is not in [0, {bound}) {}", position(k, indices.dims()), context()),
            }),
        })
        .collect()
}

/// The flat rows that the index vectors of `indices` (shape `[..., q]`) select in a tensor
/// whose leading dimensions are `dims` (`q` of them), in row-major order; an `Err` naming
/// `op` for a vector outside `dims`.
fn resolve_nd<R>(
    op: &'static str,
    indices: &Tensor<R>,
    dims: &[usize],
    context: impl Fn() -> String,
) -> Result<Vec<usize>> {
    let values = int32_indices(op, indices)?;
    let q = dims.len();
    let vectors = indices.dims()[..indices.rank() - 1].iter().fold(1usize, |n, &d| n.saturating_mul(d));
    if values.is_empty() {
        // No vectors, or vectors of length 0 that each select the whole (leading) tensor.
        return Ok(vec![0; if q == 0 { vectors } else { 0 }]);
    }
    values
        .chunks_exact(q)
        .enumerate()
        .map(|(k, vector)| {
            let mut row = 0usize;
            for (&v, &d) in vector.iter().zip(dims) {
                if v < 0 || v as usize >= d {
                    return Err(Error::InvalidValue {
                        op,
                        shape: indices.shape().clone(),
                        dtype: indices.dtype(),
                        reason: format!(
                            "indices{} = {vector:?} does not index into {}",
                            position(k, &indices.dims()[..indices.rank() - 1]),
                            context()
                        ),
                    });
                }
                row = row * d + v as usize;
            }
            Ok(row)
        })
        .collect()
}

/// The gather kernel: `dst[o, k, :] = src[o, rows[k], :]` (zeros for [`NONE`]) for a
/// source `[outer, n, inner]` and `len = outer · rows.len() · inner` output elements.
fn gather_rows<T: Element>(src: &[T], n: usize, inner: usize, rows: &[usize], len: usize) -> Storage {
    Storage::for_overwrite::<T>(len, |dst| {
        let k_len = rows.len();
        for_each_row_piece(dst, inner, |first, piece| {
            for (r, out) in piece.chunks_exact_mut(inner).enumerate() {
                let (o, k) = ((first + r) / k_len, (first + r) % k_len);
                match rows[k] {
                    NONE => out.fill(T::ZERO),
                    j => {
                        let at = (o * n + j) * inner;
                        out.copy_from_slice(&src[at..at + inner]);
                    }
                }
            }
        });
    })
}

/// Element types a segment sum adds: float32 directly, float16 in f32 (rounded once per
/// output element), int32 wrapping.
trait RowSum: Element {
    /// `dst = 0 + s₁ + s₂ + …` over `sources` in order; `scratch` is two f32 rows of
    /// `dst.len()` for the float16 form.
    fn sum_rows<'a>(level: Level, dst: &mut [Self], sources: impl Iterator<Item = &'a [Self]>, scratch: &mut [f32]);
}

impl RowSum for f32 {
    fn sum_rows<'a>(level: Level, dst: &mut [f32], sources: impl Iterator<Item = &'a [f32]>, _: &mut [f32]) {
        dst.fill(0.0);
        for s in sources {
            simd::add_into_f32(level, dst, s);
        }
    }
}

impl RowSum for f16 {
    fn sum_rows<'a>(level: Level, dst: &mut [f16], sources: impl Iterator<Item = &'a [f16]>, scratch: &mut [f32]) {
        let (acc, wide) = scratch.split_at_mut(dst.len());
        acc.fill(0.0);
        for s in sources {
            simd::widen_f16(level, s, wide);
            simd::add_into_f32(level, acc, wide);
        }
        simd::narrow_f16(level, acc, dst);
    }
}

impl RowSum for i32 {
    fn sum_rows<'a>(_: Level, dst: &mut [i32], sources: impl Iterator<Item = &'a [i32]>, _: &mut [f32]) {
        dst.fill(0);
        for s in sources {
            dst.iter_mut().zip(s).for_each(|(d, &x)| *d = d.wrapping_add(x));
        }
    }
}

/// The segment-sum kernel: `dst[o, j, :] = Σ_{k : rows[k] = j} src[o, k, :]` in increasing
/// `k`, for a source `[outer, rows.len(), inner]` and an output `[outer, n, inner]` of `len`
/// elements.
fn sum_rows<T: RowSum>(level: Level, src: &[T], inner: usize, rows: &[usize], n: usize, len: usize) -> Storage {
    // Sources by destination row, in index order (a stable counting sort).
    let mut start = vec![0usize; n + 1];
    rows.iter().filter(|&&j| j != NONE).for_each(|&j| start[j + 1] += 1);
    for j in 0..n {
        start[j + 1] += start[j];
    }
    let mut next = start.clone();
    let mut order = vec![0usize; start[n]];
    for (k, &j) in rows.iter().enumerate().filter(|&(_, &j)| j != NONE) {
        order[next[j]] = k;
        next[j] += 1;
    }
    let k_len = rows.len();
    Storage::for_overwrite::<T>(len, |dst| {
        for_each_row_piece(dst, inner, |first, piece| {
            let mut scratch = if T::DTYPE == DType::F16 { vec![0.0f32; 2 * inner] } else { Vec::new() };
            for (r, out) in piece.chunks_exact_mut(inner).enumerate() {
                let (o, j) = ((first + r) / n, (first + r) % n);
                let sources = order[start[j]..start[j + 1]].iter().map(|&k| {
                    let at = (o * k_len + k) * inner;
                    &src[at..at + inner]
                });
                T::sum_rows(level, out, sources, &mut scratch);
            }
        });
    })
}

fn describe<R>(what: &str, x: &Tensor<R>) -> String {
    format!("{what} of shape {} {}", x.shape(), x.dtype())
}

/// `tf.gather(params, indices, axis)`: the output shape is `params.shape[:axis]`, then
/// `indices.shape`, then `params.shape[axis + 1:]`; an index outside
/// `[0, params.shape[axis])` is an `Err`, as on TensorFlow's CPU.
pub fn gather<R>(params: &Tensor<R>, indices: &Tensor<R>, axis: isize) -> Result<Tensor<R>> {
    gather_with(params, indices, axis, Negative::Refuse)
}

/// [`gather`] where a negative index gives a zero row: the gradient of
/// [`unsorted_segment_sum`], whose negative ids drop their rows.
pub fn gather_or_zero<R>(params: &Tensor<R>, indices: &Tensor<R>, axis: isize) -> Result<Tensor<R>> {
    gather_with(params, indices, axis, Negative::Skip)
}

fn gather_with<R>(params: &Tensor<R>, indices: &Tensor<R>, axis: isize, negative: Negative) -> Result<Tensor<R>> {
    const OP: &str = "gather";
    let a = params.shape().resolve_axis(axis).ok_or_else(|| Error::InvalidAxis {
        op: OP,
        axis,
        shape: params.shape().clone(),
        dtype: params.dtype(),
    })?;
    let (_, n, inner) = split_at_axis(params.dims(), a);
    let rows = resolve_rows(OP, indices, n, negative, || format!("for axis {axis} of {}", describe("params", params)))?;
    let dims: Vec<usize> =
        params.dims()[..a].iter().chain(indices.dims()).chain(&params.dims()[a + 1..]).copied().collect();
    let out = Shape::from(dims);
    let len = checked_output_len(OP, params, &out)?;
    let storage = with_element!(params.dtype(), T => gather_rows::<T>(params.as_slice::<T>()?, n, inner, &rows, len));
    Tensor::from_storage(storage, out)
}

/// `tf.math.unsorted_segment_sum(data, segment_ids, num_segments)`: `segment_ids`' shape
/// is a prefix of `data`'s; output `[num_segments] + data.shape[ids.rank:]`, each row the
/// sum of the data rows with its id (zero if none). Negative ids are dropped; an id
/// `≥ num_segments` is an `Err` (TensorFlow's CPU kernel).
pub fn unsorted_segment_sum<R>(data: &Tensor<R>, segment_ids: &Tensor<R>, num_segments: usize) -> Result<Tensor<R>> {
    segment_sum(data, segment_ids, 0, num_segments)
}

/// [`unsorted_segment_sum`] of `data`'s slices along the axes `axis..axis + ids.rank`, the
/// axes before passing through: `data` is `D[:axis] + ids.shape + D[axis + r:]`, the output
/// `D[:axis] + [num_segments] + D[axis + r:]`. With `axis > 0` it is the gradient of a
/// gather along `axis`.
pub fn segment_sum<R>(data: &Tensor<R>, ids: &Tensor<R>, axis: usize, num_segments: usize) -> Result<Tensor<R>> {
    const OP: &str = "unsorted_segment_sum";
    int32_indices(OP, ids)?;
    let r = ids.rank();
    if data.rank() < axis + r || data.dims()[axis..axis + r] != *ids.dims() {
        return Err(Error::shape_mismatch(
            OP,
            data,
            ids,
            format!("the segment ids' shape must equal data's dimensions from axis {axis}"),
        ));
    }
    let rows = resolve_rows(OP, ids, num_segments, Negative::Skip, || format!("(num_segments = {num_segments})"))?;
    let dims: Vec<usize> =
        data.dims()[..axis].iter().chain(&[num_segments]).chain(&data.dims()[axis + r..]).copied().collect();
    let inner = data.dims()[axis + r..].iter().fold(1usize, |n, &d| n.saturating_mul(d));
    summed(OP, data, rows, inner, num_segments, Shape::from(dims))
}

/// The segment-sum kernel on `data` for the output shape `out`, dispatched on the dtype.
fn summed<R>(
    op: &'static str,
    data: &Tensor<R>,
    rows: Vec<usize>,
    inner: usize,
    n: usize,
    out: Shape,
) -> Result<Tensor<R>> {
    let len = checked_output_len(op, data, &out)?;
    if len == 0 {
        // Nothing to sum into, however many segments (`n` may be any count).
        return Tensor::try_zeros(out, data.dtype());
    }
    let level = isa::current();
    let storage = match data.dtype() {
        DType::F32 => sum_rows(level, data.as_slice::<f32>()?, inner, &rows, n, len),
        DType::F16 => sum_rows(level, data.as_slice::<f16>()?, inner, &rows, n, len),
        DType::I32 => sum_rows(level, data.as_slice::<i32>()?, inner, &rows, n, len),
        DType::Bool => {
            return Err(Error::UnsupportedDType { op, shape: data.shape().clone(), dtype: data.dtype() });
        }
    };
    Tensor::from_storage(storage, out)
}

fn nd_indices<R>(op: &'static str, indices: &Tensor<R>) -> Result<usize> {
    int32_indices(op, indices)?;
    indices.dims().last().copied().ok_or_else(|| Error::InvalidArgument {
        op,
        reason: format!("indices of shape {} {} need rank at least 1", indices.shape(), indices.dtype()),
    })
}

/// `tf.gather_nd(params, indices)`: each vector along `indices`' last axis (length `q`)
/// selects `params[i₁, …, i_q]`; output `indices.shape[:-1] + params.shape[q:]`.
pub fn gather_nd<R>(params: &Tensor<R>, indices: &Tensor<R>) -> Result<Tensor<R>> {
    gather_nd_lead(params, indices, 0)
}

/// [`gather_nd`] below `lead` leading axes of `params` that pass through (output
/// `params.shape[:lead] + indices.shape[:-1] + params.shape[lead + q:]`): the batched forms
/// of the gather_nd and scatter_nd gradients.
pub fn gather_nd_lead<R>(params: &Tensor<R>, indices: &Tensor<R>, lead: usize) -> Result<Tensor<R>> {
    const OP: &str = "gather_nd";
    let q = nd_indices(OP, indices)?;
    if lead + q > params.rank() {
        return Err(Error::shape_mismatch(
            OP,
            params,
            indices,
            format!("index vectors of length {q} need params of rank at least {}", lead + q),
        ));
    }
    let p = params.dims();
    let dims: Vec<usize> =
        p[..lead].iter().chain(&indices.dims()[..indices.rank() - 1]).chain(&p[lead + q..]).copied().collect();
    let out = Shape::from(dims);
    let len = checked_output_len(OP, params, &out)?;
    if q == 0 && len == 0 {
        // Index vectors of length 0 hold no values to check; their count may be any.
        return Tensor::try_zeros(out, params.dtype());
    }
    let rows = resolve_nd(OP, indices, &p[lead..lead + q], || describe("params", params))?;
    let n = p[lead..lead + q].iter().fold(1usize, |n, &d| n.saturating_mul(d));
    let inner = p[lead + q..].iter().fold(1usize, |n, &d| n.saturating_mul(d));
    let storage = with_element!(params.dtype(), T => gather_rows::<T>(params.as_slice::<T>()?, n, inner, &rows, len));
    Tensor::from_storage(storage, out)
}

/// `tf.scatter_nd(indices, updates, shape)`: zeros of `shape` with each update slice added
/// at its index vector (duplicates add up, in index order); `updates` has shape
/// `indices.shape[:-1] + shape[q:]`. An index outside `shape` is an `Err`.
pub fn scatter_nd<R>(indices: &Tensor<R>, updates: &Tensor<R>, shape: &Shape) -> Result<Tensor<R>> {
    scatter_nd_lead(indices, updates, 0, shape)
}

/// [`scatter_nd`] below `lead` leading axes of `updates` that pass through: `updates` is
/// `U[:lead] + indices.shape[:-1] + shape[q:]`, the output `U[:lead] + shape`.
pub fn scatter_nd_lead<R>(indices: &Tensor<R>, updates: &Tensor<R>, lead: usize, shape: &Shape) -> Result<Tensor<R>> {
    const OP: &str = "scatter_nd";
    let q = nd_indices(OP, indices)?;
    let s = shape.dims();
    let mismatch = |reason: String| Error::shape_mismatch(OP, indices, updates, reason);
    if q > s.len() {
        return Err(mismatch(format!("index vectors of length {q} do not fit the output shape {shape}")));
    }
    if updates.rank() < lead {
        return Err(mismatch(format!("updates need {lead} leading axes")));
    }
    let u = updates.dims();
    let want: Vec<usize> =
        u[..lead].iter().chain(&indices.dims()[..indices.rank() - 1]).chain(&s[q..]).copied().collect();
    if u != want.as_slice() {
        return Err(mismatch(format!("updates must have shape {} for the output shape {shape}", Shape::from(want))));
    }
    let out = Shape::from(u[..lead].iter().chain(s).copied().collect::<Vec<_>>());
    if q == 0 && checked_output_len(OP, updates, &out)? == 0 {
        return Tensor::try_zeros(out, updates.dtype());
    }
    let rows = resolve_nd(OP, indices, &s[..q], || format!("the output shape {shape}"))?;
    let n = s[..q].iter().fold(1usize, |n, &d| n.saturating_mul(d));
    let inner = s[q..].iter().fold(1usize, |n, &d| n.saturating_mul(d));
    summed(OP, updates, rows, inner, n, out)
}

/// `tf.one_hot(indices, depth)`: float32 of shape `indices.shape + [depth]`, 1 at each
/// index and 0 elsewhere; an index outside `[0, depth)` gives a row of zeros, as
/// TensorFlow's.
pub fn one_hot_indices<R>(indices: &Tensor<R>, depth: usize) -> Result<Tensor<R>> {
    const OP: &str = "one_hot";
    let values = int32_indices(OP, indices)?;
    let dims: Vec<usize> = indices.dims().iter().copied().chain([depth]).collect();
    let out = Shape::from(dims);
    let len = checked_output_len(OP, indices, &out)?;
    let storage = Storage::for_overwrite::<f32>(len, |dst| {
        for_each_row_piece(dst, depth, |first, piece| {
            piece.fill(0.0);
            for (row, &v) in piece.chunks_exact_mut(depth).zip(&values[first..]) {
                if v >= 0 && (v as usize) < depth {
                    row[v as usize] = 1.0;
                }
            }
        });
    });
    Tensor::from_storage(storage, out)
}

#[cfg(test)]
mod tests;
