//! Reductions over any set of axes: sum, mean, max, min, prod.

use tapeflow_dtype::{DType, Error, Result, Shape, Storage, Tensor};

use crate::elementwise::{float_storage, float_view};
use crate::layout::{broadcast_strides, for_each_strided};

use crate::{parallel, simd};

/// Rows per block when a large leading axis is reduced in parallel blocks.
const ROWS_PER_BLOCK: usize = 64;

/// Leading-axis reductions of at least this many elements take the blocked path. Fixed
/// (not tied to [`parallel::PARALLEL_MIN_WORK`]): which path a shape takes decides its
/// last bits.
const BLOCKED_MIN_ELEMENTS: usize = 1 << 17;

/// The reductions of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// `tf.reduce_sum`; empty → 0.
    Sum,
    /// `tf.reduce_mean`; empty → NaN (int32: an `Err`, there is no integer NaN).
    Mean,
    /// `tf.reduce_max`; NaN wins; empty → -inf (int32: `i32::MIN`).
    Max,
    /// `tf.reduce_min`; NaN wins; empty → +inf (int32: `i32::MAX`).
    Min,
    /// `tf.reduce_prod`; empty → 1; int32 wraps.
    Prod,
}

impl ReduceOp {
    /// Every reduction.
    pub const ALL: [ReduceOp; 5] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::Prod];

    /// The op's name.
    pub const fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Prod => "prod",
        }
    }

    /// The float result of reducing nothing (mean divides it by the count 0: NaN).
    const fn identity_f32(self) -> f32 {
        match self {
            ReduceOp::Sum | ReduceOp::Mean => 0.0,
            ReduceOp::Max => f32::NEG_INFINITY,
            ReduceOp::Min => f32::INFINITY,
            ReduceOp::Prod => 1.0,
        }
    }

    /// The int32 result of reducing nothing.
    const fn identity_i32(self) -> i32 {
        match self {
            ReduceOp::Sum | ReduceOp::Mean => 0,
            ReduceOp::Max => i32::MIN,
            ReduceOp::Min => i32::MAX,
            ReduceOp::Prod => 1,
        }
    }

    /// Two partial float results combined (NaN sticking in max and min).
    fn combine_f32(self, a: f32, b: f32) -> f32 {
        use crate::reference::binary_f32;
        match self {
            ReduceOp::Sum | ReduceOp::Mean => a + b,
            ReduceOp::Max => binary_f32(crate::BinaryOp::Maximum, a, b),
            ReduceOp::Min => binary_f32(crate::BinaryOp::Minimum, a, b),
            ReduceOp::Prod => a * b,
        }
    }

    /// Two int32 values combined (sums and products wrap).
    fn combine_i32(self, a: i32, b: i32) -> i32 {
        match self {
            ReduceOp::Sum | ReduceOp::Mean => a.wrapping_add(b),
            ReduceOp::Max => a.max(b),
            ReduceOp::Min => a.min(b),
            ReduceOp::Prod => a.wrapping_mul(b),
        }
    }

    /// A contiguous run reduced to one value in SIMD.
    fn fold(self, level: crate::isa::Level, run: &[f32]) -> f32 {
        match self {
            ReduceOp::Sum | ReduceOp::Mean => simd::sum_f32(level, run),
            ReduceOp::Max => simd::max_f32(level, run),
            ReduceOp::Min => simd::min_f32(level, run),
            ReduceOp::Prod => simd::prod_f32(level, run),
        }
    }

    /// `acc[i] = combine(acc[i], run[i])` in SIMD.
    fn fold_into(self, level: crate::isa::Level, acc: &mut [f32], run: &[f32]) {
        match self {
            ReduceOp::Sum | ReduceOp::Mean => simd::add_into_f32(level, acc, run),
            ReduceOp::Max => simd::max_into_f32(level, acc, run),
            ReduceOp::Min => simd::min_into_f32(level, acc, run),
            ReduceOp::Prod => simd::mul_into_f32(level, acc, run),
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
/// reduced axes stay as length 1. Float reductions run in SIMD over contiguous runs with
/// f32 accumulators (float16 is widened to f32 first); int32 sums wrap.
pub fn reduce<R>(op: ReduceOp, x: &Tensor<R>, axes: &[usize], keepdims: bool) -> Result<Tensor<R>> {
    if let Some(&axis) = axes.iter().find(|&&a| a >= x.rank()) {
        return Err(Error::InvalidAxis {
            op: op.name(),
            axis: axis as isize,
            shape: x.shape().clone(),
            dtype: x.dtype(),
        });
    }
    let kept: Vec<usize> = x.dims().iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    let out_shape = if keepdims {
        Shape::from(kept.clone())
    } else {
        Shape::from(x.dims().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect::<Vec<_>>())
    };
    if x.dtype() == DType::Bool {
        // Sums, means and maxima of truth values: TensorFlow has no such kernels (`any` and
        // `all` are the bool reductions).
        return Err(Error::UnsupportedDType { op: op.name(), shape: x.shape().clone(), dtype: x.dtype() });
    }
    let m = crate::layout::checked_output_len(op.name(), x, &out_shape)?;
    let count = x.num_elements().checked_div(m.max(1)).unwrap_or(0);
    let storage = match float_view(x) {
        Some(src) => {
            let acc = reduce_f32(op, &src, &Groups::new(x.dims(), axes), m);
            float_storage(x.dtype(), m, |dst| match op {
                ReduceOp::Mean => dst.iter_mut().zip(&acc).for_each(|(d, &a)| *d = a / count as f32),
                _ => dst.copy_from_slice(&acc),
            })
        }
        None => {
            let src = x.as_slice::<i32>()?;
            if op == ReduceOp::Mean && count == 0 && m > 0 {
                return Err(Error::InvalidArgument {
                    op: "mean",
                    reason: format!("the mean of an empty int32 reduction (shape {}) is undefined", x.shape()),
                });
            }
            let to_out = broadcast_strides(&kept, x.dims());
            let contiguous = x.shape().strides();
            Storage::for_overwrite::<i32>(m, |dst| {
                dst.fill(op.identity_i32());
                for_each_strided(x.dims(), [&contiguous[..], &to_out[..]], |_, [i, o]| {
                    dst[o] = op.combine_i32(dst[o], src[i]);
                });
                if op == ReduceOp::Mean {
                    // TensorFlow divides the wrapped int32 sum, truncating toward zero.
                    let divisor = i32::try_from(count).unwrap_or(i32::MAX);
                    dst.iter_mut().for_each(|d| *d = d.wrapping_div(divisor));
                }
            })
        }
    };
    Tensor::from_storage(storage, out_shape)
}

/// The input's dimensions merged into alternating groups of kept and reduced axes
/// (length-1 axes dropped), outermost first: the shape of the loops a reduction needs.
struct Groups {
    /// (length, reduced) per group.
    groups: Vec<(usize, bool)>,
}

impl Groups {
    fn new(dims: &[usize], axes: &[usize]) -> Self {
        let mut groups: Vec<(usize, bool)> = Vec::new();
        for (i, &d) in dims.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let reduced = axes.contains(&i);
            match groups.last_mut() {
                // Saturating: only an empty input ([2, 2^64 - 1, 0]) can overflow, and an
                // empty input is never walked.
                Some((len, r)) if *r == reduced => *len = len.saturating_mul(d),
                _ => groups.push((d, reduced)),
            }
        }
        Groups { groups }
    }

    /// Output offset of the first element of contiguous segment `g` (segments are the
    /// runs of the last group), given each kept group's stride in the output.
    fn segment_base(&self, mut g: usize, out_strides: &[usize]) -> usize {
        let mut base = 0;
        for k in (0..self.groups.len() - 1).rev() {
            let (len, _) = self.groups[k];
            base += (g % len) * out_strides[k];
            g /= len;
        }
        base
    }
}

/// The float reduction into `m` f32 accumulators.
fn reduce_f32(op: ReduceOp, src: &[f32], groups: &Groups, m: usize) -> Vec<f32> {
    let init = op.identity_f32();
    let mut acc = vec![init; m];
    let Some(&(last, last_reduced)) = groups.groups.last() else {
        // No axis longer than 1 anywhere: each output is its one input.
        acc.iter_mut().zip(src).for_each(|(a, &v)| *a = v);
        return acc;
    };
    if src.is_empty() {
        return acc;
    }
    let combine = |a: f32, b: f32| op.combine_f32(a, b);
    let level = crate::isa::current();
    let fold = |run: &[f32]| op.fold(level, run);
    match groups.groups.as_slice() {
        // Everything into one number: partial results per fixed chunk, combined in order.
        [(_, true)] => {
            let partials = parallel::map_chunks(src.len(), |r| fold(&src[r]));
            acc[0] = partials.into_iter().fold(init, combine);
        }
        // One output per contiguous row.
        [(_, false), (_, true)] => {
            parallel::for_each_chunk(&mut acc, last, |start, out| {
                for (i, o) in out.iter_mut().enumerate() {
                    let row = start + i;
                    *o = fold(&src[row * last..(row + 1) * last]);
                }
            });
        }
        // The leading axis of a large [rows, cols] (a bias gradient over the batch): fixed
        // blocks of rows summed side by side, then the blocks' sums combined in order. The
        // blocks depend on the shape alone, so the bits do not depend on the threads.
        [(rows, true), (cols, false)] if rows * cols >= BLOCKED_MIN_ELEMENTS => {
            let (rows, cols) = (*rows, *cols);
            let into = |acc: &mut [f32], run: &[f32]| op.fold_into(level, acc, run);
            let blocks = rows.div_ceil(ROWS_PER_BLOCK);
            let partials: Vec<Vec<f32>> = parallel::map_indices(blocks, |block| {
                let mut part = vec![init; cols];
                let first = block * ROWS_PER_BLOCK;
                for row in src[first * cols..(first + ROWS_PER_BLOCK).min(rows) * cols].chunks_exact(cols) {
                    into(&mut part, row);
                }
                part
            });
            for part in &partials {
                into(&mut acc, part);
            }
        }
        _ => {
            // Output strides of the kept groups (row-major over kept groups only).
            let mut out_strides = vec![0usize; groups.groups.len()];
            let mut stride = if last_reduced { 1 } else { last };
            for k in (0..groups.groups.len() - 1).rev() {
                let (len, reduced) = groups.groups[k];
                if !reduced {
                    out_strides[k] = stride;
                    stride *= len;
                }
            }
            for (g, run) in src.chunks_exact(last).enumerate() {
                let base = groups.segment_base(g, &out_strides);
                if last_reduced {
                    acc[base] = combine(acc[base], fold(run));
                } else {
                    op.fold_into(level, &mut acc[base..base + last], run);
                }
            }
        }
    }
    acc
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

#[cfg(test)]
mod property_tests {
    use super::*;
    use crate::reference;
    use proptest::prelude::*;
    type T = Tensor<()>;

    fn case() -> impl Strategy<Value = (Vec<usize>, Vec<f32>, Vec<usize>)> {
        prop::collection::vec(prop::sample::select(vec![0usize, 1, 2, 3, 15, 16, 17, 33]), 0..4).prop_flat_map(|dims| {
            let n: usize = dims.iter().product();
            let rank = dims.len();
            (
                Just(dims),
                prop::collection::vec(-10.0f32..10.0, n),
                prop::sample::subsequence((0..rank).collect::<Vec<_>>(), 0..=rank),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn sum_and_max_match_the_f64_reference_over_any_axes((dims, data, axes) in case()) {
            let x = T::from_vec(data.clone(), dims.clone()).unwrap();
            let wide: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
            for (op, sum) in [(ReduceOp::Sum, true), (ReduceOp::Max, false)] {
                let got = reduce(op, &x, &axes, false).unwrap().to_vec::<f32>().unwrap();
                let want = reference::reduce_f64(sum, &wide, &dims, &axes);
                prop_assert_eq!(got.len(), want.len());
                let n = (data.len().max(1) / want.len().max(1)).max(1) as f64;
                for (g, w) in got.iter().zip(&want) {
                    // |Δ| / n ≤ 1e-6 of the operands' magnitude (here up to 10)
                    prop_assert!((f64::from(*g) - w).abs() / n <= 1e-5 || (*g as f64) == *w, "{op:?} {dims:?} {axes:?}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn large_leading_axis_reductions_in_blocks_are_right_and_thread_independent() {
        // [1437, 128] and [256, 513] (a bias gradient's shape, ≥ 128 Ki elements): blocks of
        // rows side by side, against an f64 reference, with a NaN column for max.
        for (rows, cols) in [(1437usize, 128usize), (256, 513), (4097, 33)] {
            let mut data: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1013) as f32 * 1e-3 - 0.5).collect();
            data[5 * cols + 3] = f32::NAN;
            let x = T::from_vec(data.clone(), [rows, cols]).unwrap();
            for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Mean] {
                let run = |threads: usize| {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    pool.install(|| reduce(op, &x, &[0], false).unwrap().to_vec::<f32>().unwrap())
                };
                let got = run(2);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&run(1)), "{op:?} [{rows}, {cols}]");
                for (j, g) in got.iter().enumerate() {
                    let column = (0..rows).map(|i| f64::from(data[i * cols + j]));
                    let want = match op {
                        ReduceOp::Sum => column.sum::<f64>(),
                        ReduceOp::Mean => column.sum::<f64>() / rows as f64,
                        _ => column
                            .fold(f64::NEG_INFINITY, |m, v| if m.is_nan() || v.is_nan() { f64::NAN } else { m.max(v) }),
                    };
                    if want.is_nan() {
                        assert!(g.is_nan(), "{op:?} [{rows}, {cols}] column {j}: {g}");
                    } else {
                        let tol = if op == ReduceOp::Sum { 1e-5 * rows as f64 } else { 1e-5 };
                        assert!((f64::from(*g) - want).abs() <= tol, "{op:?} column {j}: {g} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn results_are_bitwise_identical_on_one_and_two_threads() {
        let n = 3 * crate::parallel::PARALLEL_MIN_WORK + 17;
        let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
        let x = T::from_vec(data, [n]).unwrap();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                let s = reduce(ReduceOp::Sum, &x, &[0], false).unwrap().to_scalar::<f32>().unwrap();
                let e = crate::unary(crate::UnaryOp::Exp, &x).unwrap().to_vec::<f32>().unwrap();
                let a = crate::binary(crate::BinaryOp::Add, &x, &x).unwrap().to_vec::<f32>().unwrap();
                (s.to_bits(), e, a)
            })
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one.0, two.0);
        assert!(one.1.iter().zip(&two.1).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(one.2.iter().zip(&two.2).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}

#[cfg(test)]
mod min_prod_tests {
    use super::*;
    use crate::reference;
    type T = Tensor<()>;

    /// Values near ±1 (products of a few hundred stay finite), with NaN, infinities and
    /// zeros where `special`.
    fn values(n: usize, seed: usize, special: bool) -> Vec<f32> {
        (0..n)
            .map(|i| match (i * 13 + seed) % 41 {
                0 if special => f32::NAN,
                1 if special => f32::INFINITY,
                2 if special => 0.0,
                3 if special => f32::NEG_INFINITY,
                k => (0.9 + (((i + seed) * 2654435761) % 2001) as f32 * 1e-4) * if k % 2 == 0 { 1.0 } else { -1.0 },
            })
            .collect()
    }

    #[test]
    fn min_and_prod_match_the_f64_reference_at_every_level() {
        let shapes: [&[usize]; 10] =
            [&[], &[1], &[15], &[16], &[17], &[33, 3], &[3, 33], &[2, 3, 17], &[4, 1, 16], &[2, 0, 3]];
        for level in crate::isa::supported_levels() {
            crate::isa::with_isa(level.isa(), || {
                for dims in shapes {
                    for special in [false, true] {
                        let data = values(dims.iter().product(), dims.len(), special);
                        let x = T::from_vec(data.clone(), dims.to_vec()).unwrap();
                        let wide: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
                        // Every subset of the axes.
                        for mask in 0..(1usize << dims.len()) {
                            let axes: Vec<usize> = (0..dims.len()).filter(|a| mask & (1 << a) != 0).collect();
                            for op in [ReduceOp::Min, ReduceOp::Prod] {
                                let got = reduce(op, &x, &axes, false).unwrap().to_vec::<f32>().unwrap();
                                let want = reference::reduce_op_f64(op, &wide, dims, &axes);
                                assert_eq!(got.len(), want.len());
                                for (g, w) in got.iter().zip(&want) {
                                    let ok = if w.is_nan() {
                                        g.is_nan()
                                    } else if op == ReduceOp::Min || w.is_infinite() {
                                        f64::from(*g) == *w
                                    } else {
                                        (f64::from(*g) - w).abs() <= 1e-5 * w.abs().max(1e-30)
                                    };
                                    assert!(ok, "{op:?} {dims:?} axes {axes:?} at {level:?}: {g} vs {w}");
                                }
                            }
                        }
                    }
                }
            });
        }
    }

    #[test]
    fn empty_min_and_prod_follow_tensorflow_and_int32_works() {
        let e = T::from_vec(Vec::<f32>::new(), [0, 2]).unwrap();
        assert_eq!(reduce(ReduceOp::Min, &e, &[0], false).unwrap().to_vec::<f32>().unwrap(), vec![f32::INFINITY; 2]);
        assert_eq!(reduce(ReduceOp::Prod, &e, &[0], false).unwrap().to_vec::<f32>().unwrap(), vec![1.0; 2]);
        let ei = T::from_vec(Vec::<i32>::new(), [0]).unwrap();
        assert_eq!(reduce(ReduceOp::Min, &ei, &[0], false).unwrap().to_scalar::<i32>().unwrap(), i32::MAX);
        assert_eq!(reduce(ReduceOp::Prod, &ei, &[0], false).unwrap().to_scalar::<i32>().unwrap(), 1);
        let xi = T::from_vec(vec![3, -1, 4, 1 << 20, 1 << 12, 2], [2, 3]).unwrap();
        assert_eq!(reduce(ReduceOp::Min, &xi, &[0], false).unwrap().to_vec::<i32>().unwrap(), vec![3, -1, 2]);
        // 2^32 · 2 wraps to 0, as TF's int32 product.
        assert_eq!(
            reduce(ReduceOp::Prod, &xi, &[0], false).unwrap().to_vec::<i32>().unwrap(),
            vec![3 << 20, -(1 << 12), 8]
        );
        assert_eq!(reduce(ReduceOp::Prod, &xi, &[0, 1], false).unwrap().to_scalar::<i32>().unwrap(), 0);
        // NaN wins in min; 0 · inf is NaN in prod.
        let x = T::from_vec(vec![1.0f32, f32::NAN, -3.0, 0.0, f32::INFINITY, 2.0], [2, 3]).unwrap();
        let min = reduce(ReduceOp::Min, &x, &[1], false).unwrap().to_vec::<f32>().unwrap();
        assert!(min[0].is_nan() && min[1] == 0.0);
        assert!(reduce(ReduceOp::Prod, &x, &[1], false).unwrap().to_vec::<f32>().unwrap().iter().all(|v| v.is_nan()));
    }

    #[test]
    fn large_min_and_prod_are_the_same_on_one_and_two_threads() {
        for (dims, axes) in [(vec![4097usize, 33], vec![0usize]), (vec![300_000], vec![0]), (vec![64, 4096], vec![1])] {
            let data = values(dims.iter().product(), 1, true);
            let x = T::from_vec(data, dims.clone()).unwrap();
            for op in [ReduceOp::Min, ReduceOp::Prod] {
                let run = |threads: usize| {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    pool.install(|| {
                        reduce(op, &x, &axes, false)
                            .unwrap()
                            .to_vec::<f32>()
                            .unwrap()
                            .iter()
                            .map(|v| v.to_bits())
                            .collect::<Vec<_>>()
                    })
                };
                assert_eq!(run(1), run(2), "{op:?} {dims:?}");
            }
        }
    }
}
