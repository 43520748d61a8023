//! Strided views: `slice`, `strided_slice`, `reverse` and constant `pad`, all one pair of
//! kernels over a [`SlicePlan`]: [`take`] copies the view out of a tensor, [`put`] writes a
//! tensor into the view of a fresh one filled with a constant (the pad, and the adjoint of
//! `take`). Mirror padding ([`mirror_index`]) is a gather along each padded axis.
//!
//! Data movement depends only on the element's size: every kernel here is generic over the
//! element type and dispatched once through [`with_element`].

use smallvec::SmallVec;
use tapeflow_dtype::{Element, Error, Result, Shape, Storage, Tensor};

use crate::layout::checked_output_len;
use crate::parallel::{self, CHUNK, PARALLEL_MIN_WORK};

/// Runs `$body` with the type alias `$T` naming the Rust element type of `$dtype`: the one
/// dtype dispatch of the data-movement kernels (gathers, slices, pads), which only move
/// elements and so treat every dtype alike.
macro_rules! with_element {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            tapeflow_dtype::DType::F32 => {
                type $T = f32;
                $body
            }
            tapeflow_dtype::DType::F16 => {
                type $T = half::f16;
                $body
            }
            tapeflow_dtype::DType::I32 => {
                type $T = i32;
                $body
            }
            tapeflow_dtype::DType::Bool => {
                type $T = bool;
                $body
            }
        }
    };
}
pub(crate) use with_element;

/// One axis of a strided view: the `count` indices `start, start + step, …` (`step ≠ 0`),
/// all inside the axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisRange {
    /// The first index.
    pub start: usize,
    /// The distance between consecutive indices (negative: backwards).
    pub step: isize,
    /// How many indices.
    pub count: usize,
}

/// A strided view of a tensor of shape [`source_dims`](Self::source_dims): one
/// [`AxisRange`] per axis. The view's shape is the ranges' counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePlan {
    dims: SmallVec<[usize; 4]>,
    axes: SmallVec<[AxisRange; 4]>,
}

fn invalid_axis<R>(op: &'static str, axis: isize, x: &Tensor<R>) -> Error {
    Error::InvalidAxis { op, axis, shape: x.shape().clone(), dtype: x.dtype() }
}

fn bad_argument<R>(op: &'static str, x: &Tensor<R>, what: String) -> Error {
    Error::InvalidArgument { op, reason: format!("{what} (operand of shape {} {})", x.shape(), x.dtype()) }
}

impl SlicePlan {
    /// The whole of `dims`, in order.
    fn full(dims: &[usize]) -> Self {
        SlicePlan {
            dims: SmallVec::from_slice(dims),
            axes: dims.iter().map(|&d| AxisRange { start: 0, step: 1, count: d }).collect(),
        }
    }

    /// `tf.slice(x, begin, size)`: `size[i] = -1` takes the rest of axis `i`. Both lists
    /// have one entry per axis; the block must lie inside `x`.
    pub fn slice<R>(x: &Tensor<R>, begin: &[usize], size: &[isize]) -> Result<Self> {
        const OP: &str = "slice";
        let rank = x.rank();
        if begin.len() != rank || size.len() != rank {
            return Err(bad_argument(
                OP,
                x,
                format!("begin {begin:?} and size {size:?} need one entry per axis ({rank})"),
            ));
        }
        let mut plan = Self::full(x.dims());
        for (i, ((&b, &s), &d)) in begin.iter().zip(size).zip(x.dims()).enumerate() {
            let count = match s {
                -1 if b <= d => d - b,
                s if s >= 0 && b <= d && s as usize <= d - b => s as usize,
                _ => {
                    return Err(bad_argument(
                        OP,
                        x,
                        format!("begin {b} and size {s} of axis {i} leave the axis (size {d}; size -1 = to the end)"),
                    ));
                }
            };
            plan.axes[i] = AxisRange { start: if count == 0 { 0 } else { b }, step: 1, count };
        }
        Ok(plan)
    }

    /// `tf.strided_slice(x, begin, end, strides)` without masks: per axis, Python's
    /// `x[begin:end:stride]` (negative bounds count from the end, out-of-range bounds clamp,
    /// a negative stride walks backwards). The lists have equal length, at most the rank;
    /// the axes after them are taken whole. A stride of 0 is an `Err`.
    pub fn strided<R>(x: &Tensor<R>, begin: &[isize], end: &[isize], strides: &[isize]) -> Result<Self> {
        const OP: &str = "strided_slice";
        if begin.len() != end.len() || begin.len() != strides.len() || begin.len() > x.rank() {
            return Err(bad_argument(
                OP,
                x,
                format!(
                    "begin {begin:?}, end {end:?} and strides {strides:?} must have equal lengths, at most the rank ({})",
                    x.rank()
                ),
            ));
        }
        let mut plan = Self::full(x.dims());
        for (i, ((&b, &e), &s)) in begin.iter().zip(end).zip(strides).enumerate() {
            if s == 0 {
                return Err(bad_argument(OP, x, format!("stride 0 on axis {i}")));
            }
            plan.axes[i] = python_range(x.dims()[i], b, e, s);
        }
        Ok(plan)
    }

    /// `tf.reverse(x, axes)`: the listed axes backwards (negative axes count from the end;
    /// an axis listed twice is an `Err`, as TensorFlow's).
    pub fn reverse<R>(x: &Tensor<R>, axes: &[isize]) -> Result<Self> {
        const OP: &str = "reverse";
        let mut plan = Self::full(x.dims());
        let mut seen = vec![false; x.rank()];
        for &axis in axes {
            let a = x.shape().resolve_axis(axis).ok_or_else(|| invalid_axis(OP, axis, x))?;
            if std::mem::replace(&mut seen[a], true) {
                return Err(bad_argument(OP, x, format!("axis {axis} is listed more than once")));
            }
            let d = x.dims()[a];
            plan.axes[a] = AxisRange { start: d.saturating_sub(1), step: -1, count: d };
        }
        Ok(plan)
    }

    /// The interior of `x` padded by `paddings` (`[before, after]` per axis): a plan on the
    /// padded shape whose view is `x`'s place in it.
    pub fn interior<R>(op: &'static str, x: &Tensor<R>, paddings: &[[usize; 2]]) -> Result<Self> {
        if paddings.len() != x.rank() {
            return Err(bad_argument(
                op,
                x,
                format!("{} paddings given, one [before, after] per axis needed ({})", paddings.len(), x.rank()),
            ));
        }
        let mut dims: SmallVec<[usize; 4]> = SmallVec::new();
        for (&d, &[before, after]) in x.dims().iter().zip(paddings) {
            let padded = d.checked_add(before).and_then(|n| n.checked_add(after));
            dims.push(padded.ok_or_else(|| bad_argument(op, x, format!("paddings {paddings:?} overflow")))?);
        }
        checked_output_len(op, x, &Shape::new(&dims))?;
        let axes = x
            .dims()
            .iter()
            .zip(paddings)
            .map(|(&d, &[before, _])| AxisRange { start: if d == 0 { 0 } else { before }, step: 1, count: d })
            .collect();
        Ok(SlicePlan { dims, axes })
    }

    /// Shape of the tensor the view is taken from.
    pub fn source_dims(&self) -> &[usize] {
        &self.dims
    }

    /// The ranges, one per axis.
    pub fn axes(&self) -> &[AxisRange] {
        &self.axes
    }

    /// Shape of the view.
    pub fn view_dims(&self) -> Vec<usize> {
        self.axes.iter().map(|a| a.count).collect()
    }

    /// The same view with a whole leading axis of length `n` in front (the seed axis of a
    /// vectorized jacobian).
    pub fn with_leading_axis(&self, n: usize) -> Self {
        let mut plan = Self::full(&[n]);
        plan.dims.extend_from_slice(&self.dims);
        plan.axes.extend_from_slice(&self.axes);
        plan
    }

    /// Whether the view holds every element of the source (a reverse, a whole slice).
    pub fn covers_source(&self) -> bool {
        self.axes.iter().zip(&self.dims).all(|(a, &d)| a.count == d)
    }

    /// The view as row-major walks: see [`Walk`].
    fn walk(&self) -> Walk {
        let rank = self.dims.len();
        let strides = Shape::new(&self.dims).strides();
        // Wrapping: only a view with no elements can overflow (strides of [0, 2^62, 4]
        // saturate), and an empty view is never walked.
        let base =
            self.axes.iter().zip(&strides).fold(0isize, |b, (a, &s)| b.wrapping_add(a.start.wrapping_mul(s) as isize));
        // Trailing axes that are contiguous in the source merge into one run: whole axes
        // with step 1, then one more axis with step 1 (or a single index).
        let mut merged = rank;
        let mut run = 1usize;
        while merged > 0 {
            let a = self.axes[merged - 1];
            if a.step != 1 && a.count > 1 {
                break;
            }
            run = run.saturating_mul(a.count); // saturating: an empty view is never walked
            merged -= 1;
            if a.count != self.dims[merged] {
                break;
            }
        }
        let (outer_axes, inner_len, inner_step) = if merged < rank || rank == 0 {
            (merged, run, 1)
        } else {
            let last = self.axes[rank - 1];
            (rank - 1, last.count, last.step)
        };
        Walk {
            outer_dims: self.axes[..outer_axes].iter().map(|a| a.count).collect(),
            outer_steps: self.axes[..outer_axes]
                .iter()
                .zip(&strides)
                .map(|(a, &s)| a.step.wrapping_mul(s as isize))
                .collect(),
            base,
            inner_len,
            inner_step,
        }
    }
}

/// Python's `range(dim)[begin:end:step]` as a start, step and count (the clamping rules of
/// `tf.strided_slice` without masks).
fn python_range(dim: usize, begin: isize, end: isize, step: isize) -> AxisRange {
    // In i128: an empty tensor's axis may be longer than isize::MAX ([0, 2^64 - 1]).
    let (n, step_wide) = (dim as i128, step as i128);
    // Bounds after counting negatives from the end: [0, n] forwards, [-1, n - 1] backwards.
    let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let clamp = |v: isize| {
        let v = v as i128;
        (if v < 0 { v + n } else { v }).clamp(lo, hi)
    };
    let (b, e) = (clamp(begin), clamp(end));
    let span = e - b;
    let count =
        if span == 0 || (span < 0) != (step < 0) { 0 } else { (span.abs() + step_wide.abs() - 1) / step_wide.abs() };
    let start = if count == 0 { 0 } else { b as usize };
    AxisRange { start, step, count: count as usize }
}

/// A view as rows: for each index of the outer axes (row-major), `inner_len` source
/// elements from `base + Σ index·outer_steps`, `inner_step` apart (1: a contiguous run).
struct Walk {
    outer_dims: SmallVec<[usize; 4]>,
    outer_steps: SmallVec<[isize; 4]>,
    base: isize,
    inner_len: usize,
    inner_step: isize,
}

impl Walk {
    /// Calls `f(row, source offset)` for rows `first..first + rows` of the walk.
    fn rows(&self, first: usize, rows: usize, mut f: impl FnMut(usize, usize)) {
        if rows == 0 {
            return;
        }
        let rank = self.outer_dims.len();
        let mut index: SmallVec<[usize; 4]> = SmallVec::from_elem(0, rank);
        let mut rest = first;
        for d in (0..rank).rev() {
            index[d] = rest % self.outer_dims[d];
            rest /= self.outer_dims[d];
        }
        let mut offset = self.base + index.iter().zip(&self.outer_steps).map(|(&i, &s)| i as isize * s).sum::<isize>();
        for row in first..first + rows {
            f(row, offset as usize);
            // Odometer over the outer axes.
            for d in (0..rank).rev() {
                index[d] += 1;
                offset += self.outer_steps[d];
                if index[d] < self.outer_dims[d] {
                    break;
                }
                offset -= self.outer_steps[d] * self.outer_dims[d] as isize;
                index[d] = 0;
            }
        }
    }
}

/// Copies one walk row: `len` elements of `src` from `at`, `step` apart, into `dst`.
#[inline]
fn read_row<T: Copy>(src: &[T], at: usize, step: isize, dst: &mut [T]) {
    match step {
        1 => dst.copy_from_slice(&src[at..at + dst.len()]),
        -1 => {
            let from = &src[at + 1 - dst.len()..=at];
            dst.iter_mut().zip(from.iter().rev()).for_each(|(d, &s)| *d = s);
        }
        _ => dst.iter_mut().enumerate().for_each(|(j, d)| *d = src[(at as isize + j as isize * step) as usize]),
    }
}

/// Writes one walk row: `src` into `dst` from `at`, `step` apart.
#[inline]
fn write_row<T: Copy>(dst: &mut [T], at: usize, step: isize, src: &[T]) {
    match step {
        1 => dst[at..at + src.len()].copy_from_slice(src),
        -1 => {
            let to = &mut dst[at + 1 - src.len()..=at];
            to.iter_mut().rev().zip(src).for_each(|(d, &s)| *d = s);
        }
        _ => src.iter().enumerate().for_each(|(j, &s)| dst[(at as isize + j as isize * step) as usize] = s),
    }
}

/// Calls `fill(first_row, piece)` for consecutive pieces of `dst`, a buffer of rows of
/// `row_len` elements, each piece whole rows of about [`CHUNK`] elements; on rayon's
/// threads when `dst` is large. Piece boundaries depend only on the sizes, and each row is
/// computed the same way in any piece, so results do not depend on the thread count.
pub(crate) fn for_each_row_piece<T: Send>(dst: &mut [T], row_len: usize, fill: impl Fn(usize, &mut [T]) + Sync + Send) {
    if row_len == 0 || dst.is_empty() {
        return;
    }
    let rows_per_piece = (CHUNK / row_len).max(1);
    if dst.len() < PARALLEL_MIN_WORK {
        fill(0, dst);
    } else {
        parallel::for_each_item(dst.chunks_mut(rows_per_piece * row_len).collect(), |i, piece| {
            fill(i * rows_per_piece, piece)
        });
    }
}

fn check_source<R>(op: &'static str, x: &Tensor<R>, dims: &[usize], what: &str) -> Result<()> {
    if x.dims() == dims {
        Ok(())
    } else {
        Err(Error::InvalidShape {
            op,
            shape: x.shape().clone(),
            dtype: x.dtype(),
            target: dims.iter().map(|&d| d as isize).collect(),
            reason: format!("the plan expects {what} of this shape"),
        })
    }
}

/// The view `plan` of `x` as a new tensor of shape `plan.view_dims()`: contiguous runs are
/// copied whole, split over rayon's threads when large.
pub fn take<R>(op: &'static str, x: &Tensor<R>, plan: &SlicePlan) -> Result<Tensor<R>> {
    check_source(op, x, plan.source_dims(), "a source")?;
    let out = Shape::from(plan.view_dims());
    let n = out.num_elements();
    let walk = plan.walk();
    fn run<T: Element>(src: &[T], n: usize, walk: &Walk) -> Storage {
        Storage::for_overwrite::<T>(n, |dst| {
            let (len, step) = (walk.inner_len, walk.inner_step);
            for_each_row_piece(dst, len, |first, piece| {
                walk.rows(first, piece.len() / len, |row, at| {
                    let start = (row - first) * len;
                    read_row(src, at, step, &mut piece[start..start + len]);
                });
            });
        })
    }
    let storage = with_element!(x.dtype(), T => run::<T>(x.as_slice::<T>()?, n, &walk));
    Tensor::from_storage(storage, out)
}

/// A tensor of shape `plan.source_dims()` holding `x` at the view and `fill` elsewhere
/// (`fill` converted to the dtype; a value int32 cannot hold exactly is an `Err`).
pub fn put<R>(op: &'static str, x: &Tensor<R>, plan: &SlicePlan, fill: f64) -> Result<Tensor<R>> {
    check_source(op, x, &plan.view_dims(), "a view")?;
    if x.dtype() == tapeflow_dtype::DType::I32
        && (fill.fract() != 0.0 || !(-2147483648.0..2147483648.0).contains(&fill))
    {
        return Err(bad_argument(op, x, format!("the constant {fill} is not an int32 value")));
    }
    let out = Shape::new(plan.source_dims());
    let n = checked_output_len(op, x, &out)?;
    let walk = plan.walk();
    let covered = plan.covers_source();
    fn run<T: Element>(src: &[T], n: usize, walk: &Walk, fill: T, covered: bool) -> Storage {
        Storage::for_overwrite::<T>(n, |dst| {
            if !covered {
                for_each_row_piece(dst, 1, |_, piece| piece.fill(fill));
            }
            let len = walk.inner_len;
            if len == 0 || src.is_empty() {
                return;
            }
            walk.rows(0, src.len() / len, |row, at| {
                write_row(dst, at, walk.inner_step, &src[row * len..(row + 1) * len])
            });
        })
    }
    let storage = with_element!(x.dtype(), T => run::<T>(x.as_slice::<T>()?, n, &walk, T::from_f64(fill), covered));
    Tensor::from_storage(storage, out)
}

/// How `pad` fills the new border.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// With a constant (`tf.pad(..., "CONSTANT", constant_values)`).
    Constant(f64),
    /// Mirrored without repeating the edge: `[1, 2, 3]` padded by 2 → `[3, 2, 1, 2, 3, 2, 1]`.
    /// Each padding must be smaller than its dimension.
    Reflect,
    /// Mirrored repeating the edge: `[1, 2, 3]` padded by 2 → `[2, 1, 1, 2, 3, 3, 2]`. Each
    /// padding must be at most its dimension.
    Symmetric,
}

/// Whether axis `axis` of `x` can be mirror-padded by `[before, after]` (see
/// [`mirror_index`]); the `Err` names `op`, the paddings and the operand.
pub fn mirror_fits<R>(
    op: &'static str,
    x: &Tensor<R>,
    axis: usize,
    [before, after]: [usize; 2],
    reflect: bool,
) -> Result<()> {
    let dim = x.dims()[axis];
    let fits = |p: usize| if reflect { p < dim } else { p <= dim };
    if fits(before) && fits(after) {
        return Ok(());
    }
    let rule = if reflect { "less than" } else { "at most" };
    Err(bad_argument(op, x, format!("paddings {before}, {after} of axis {axis} must be {rule} the dimension ({dim})")))
}

/// For a mirror pad of an axis of length `dim` by `[before, after]`, the source index of
/// every output index (`Reflect` when `reflect`, else `Symmetric`); an `Err` naming `op`
/// when a padding exceeds TensorFlow's MirrorPad limit (< dim for reflect, ≤ dim for
/// symmetric).
pub fn mirror_index<R>(
    op: &'static str,
    x: &Tensor<R>,
    axis: usize,
    [before, after]: [usize; 2],
    reflect: bool,
) -> Result<Vec<usize>> {
    mirror_fits(op, x, axis, [before, after], reflect)?;
    let dim = x.dims()[axis];
    let (dim, shift) = (dim as isize, isize::from(!reflect));
    let source = |p: isize| {
        if p < 0 {
            -p - shift
        } else if p >= dim {
            2 * dim - 2 + shift - p
        } else {
            p
        }
    };
    Ok((-(before as isize)..dim + after as isize).map(|p| source(p) as usize).collect())
}

#[cfg(test)]
mod tests;
