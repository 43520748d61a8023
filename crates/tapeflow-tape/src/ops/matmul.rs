//! Matrix products and their derivatives.

use tapeflow_dtype::Result;
use tapeflow_kernels as kernels;

use crate::context::{InputGrads, Rule, record};
use crate::ops::binary::{batched_unbroadcast, unbroadcast};
use crate::ops::shape::{reshape, transpose};
use crate::runtime::Tensor;
use crate::trace;

/// `op(a) · op(b)`, recorded with its derivative.
pub(crate) fn matmul(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    let out = product(a, b, transpose_a, transpose_b)?;
    record(&[a, b], &out, || Rule::Matmul { a: a.clone(), b: b.clone(), transpose_a, transpose_b });
    Ok(out)
}

/// The kernel's `op(a) · op(b)`, captured while a function traces (not recorded on tapes).
fn product(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    trace::op("matmul", [a, b], move |[a, b]| kernels::matmul(a, b, transpose_a, transpose_b))
}

/// The JVP of `op(a) · op(b)`, bilinear: `op(t_a) · op(b) + op(a) · op(t_b)`.
pub(crate) fn jvp(
    a: &Tensor,
    b: &Tensor,
    transpose_a: bool,
    transpose_b: bool,
    ta: Option<&Tensor>,
    tb: Option<&Tensor>,
) -> Result<Tensor> {
    let da = ta.map(|t| matmul(t, b, transpose_a, transpose_b));
    let db = tb.map(|t| matmul(a, t, transpose_a, transpose_b));
    crate::forward::two_terms(da, db)
}

/// C = A·B: dA = G·Bᵀ, dB = Aᵀ·G, with the transposes folded into the products (as
/// TensorFlow's MatMul gradient does) and batch broadcasting summed away.
pub(crate) fn derivatives(
    a: &Tensor,
    b: &Tensor,
    transpose_a: bool,
    transpose_b: bool,
    g: &Tensor,
    needs: &[bool],
) -> Result<InputGrads> {
    let (need_a, need_b) = (needs.first() == Some(&true), needs.get(1) == Some(&true));
    // (x, y, transpose x, transpose y) of each product.
    let (pa, pb) = match (transpose_a, transpose_b) {
        (false, false) => ((g, b, false, true), (a, g, true, false)),
        (false, true) => ((g, b, false, false), (g, a, true, false)),
        (true, false) => ((b, g, false, true), (a, g, false, false)),
        (true, true) => ((b, g, true, true), (g, a, true, true)),
    };
    let mm = |(x, y, tx, ty): (&Tensor, &Tensor, bool, bool)| matmul(x, y, tx, ty);
    let (ga, gb) = if need_a && need_b && crate::context::nothing_records() && both_large(&pa, &pb) {
        // Two independent products, each on its own core: no tape records on this thread,
        // so nothing has to be recorded in order, and the results do not depend on where
        // a product runs.
        // The kernel level of this thread (`isa::with_isa`) goes with the product that may
        // be stolen by another thread. While a function traces, both run here, in order
        // (the recorder is this thread's; the results are the same bits).
        let level = kernels::isa::current();
        let run = |(x, y, tx, ty): (&Tensor, &Tensor, bool, bool)| level.enter(|| product(x, y, tx, ty));
        let (ga, gb) = if trace::tracing() { (run(pa), run(pb)) } else { rayon::join(|| run(pa), || run(pb)) };
        (Some(ga), Some(gb))
    } else {
        (need_a.then(|| mm(pa)), need_b.then(|| mm(pb)))
    };
    let ga = ga.map(|r| r.and_then(|t| unbroadcast(&t, a.shape()))).transpose()?;
    let gb = gb.map(|r| r.and_then(|t| unbroadcast(&t, b.shape()))).transpose()?;
    Ok(smallvec::smallvec![ga, gb])
}

/// Whether both products are large enough that running them side by side pays for handing
/// one to another thread ([`JOIN_MIN_WORK`] each), on a pool of more than one thread.
fn both_large(pa: &(&Tensor, &Tensor, bool, bool), pb: &(&Tensor, &Tensor, bool, bool)) -> bool {
    // Multiply-adds: every element of op(x), batch included, times the columns of op(y).
    let work = |&(x, y, _, ty): &(&Tensor, &Tensor, bool, bool)| {
        let yd = y.dims();
        let cols = if yd.len() < 2 {
            0
        } else if ty {
            yd[yd.len() - 2]
        } else {
            yd[yd.len() - 1]
        };
        x.num_elements().saturating_mul(cols)
    };
    // Inside a parallel backward pass's component every thread is busy already.
    rayon::current_num_threads() > 1 && !kernels::parallel::sharing() && work(pa).min(work(pb)) >= JOIN_MIN_WORK
}

/// Fewest multiply-adds of each product for the two to run side by side: 2^21 take ~20 µs
/// on one core, well above the ~7 µs of handing one to the other thread and waking it.
/// (At 2^18, the 64 × 64 × 64 products of the 16-chain benchmark were joined, and its
/// forced-sequential backward ran 1.5–1.8× slower on two threads than on one.)
const JOIN_MIN_WORK: usize = 1 << 21;

/// [`derivatives`] with `g` of shape `[R] ++ out.shape` (R stacked seeds of a vectorized
/// jacobian); gradients of shapes `[R] ++ a.shape` and `[R] ++ b.shape`.
///
/// Where the other operand is a matrix, the seed axis (with any batch axes) folds into the
/// rows of one GEMM instead of R small products: dA = G·op(b)ᵀ as `[R·…·m, n] · op(b)ᵀ`,
/// and dB through its transpose, dBᵀ = Gᵀ·op(a) as `[R·…·n, m] · op(a)`. Otherwise the
/// products broadcast over the seed axis as over batch axes. A product of another shape
/// blocks its sums differently (and n = 1 or m = 1 takes the GEMV path in one pass per
/// row), so the results equal the row loop's to about 1e-6 relative, not bit for bit.
pub(crate) fn batched_derivatives(
    a: &Tensor,
    b: &Tensor,
    transpose_a: bool,
    transpose_b: bool,
    g: &Tensor,
    needs: &[bool],
) -> Result<InputGrads> {
    let (need_a, need_b) = (needs.first() == Some(&true), needs.get(1) == Some(&true));
    let grad_a = || -> Result<Tensor> {
        let ga = if b.rank() == 2 {
            // dop(a) = G·op(b)ᵀ, rows folded; dA is its transpose when a was transposed.
            let d = fold_rows(g, |rows| matmul(rows, b, false, !transpose_b))?;
            if transpose_a { swap_last_two(&d)? } else { d }
        } else {
            let (x, y, tx, ty) = match (transpose_a, transpose_b) {
                (false, tb) => (g, b, false, !tb),
                (true, false) => (b, g, false, true),
                (true, true) => (b, g, true, true),
            };
            matmul(x, y, tx, ty)?
        };
        batched_unbroadcast(&ga, a.shape())
    };
    let grad_b = || -> Result<Tensor> {
        let gb = if a.rank() == 2 {
            // dop(b)ᵀ = Gᵀ·op(a), rows folded; dB is that when b was transposed.
            let d = fold_rows(&swap_last_two(g)?, |rows| matmul(rows, a, false, transpose_a))?;
            if transpose_b { d } else { swap_last_two(&d)? }
        } else {
            let (x, y, tx, ty) = match (transpose_a, transpose_b) {
                (ta, false) => (a, g, !ta, false),
                (false, true) => (g, a, true, false),
                (true, true) => (g, a, true, true),
            };
            matmul(x, y, tx, ty)?
        };
        batched_unbroadcast(&gb, b.shape())
    };
    let (ga, gb) = if need_a
        && need_b
        && crate::context::nothing_records()
        && rayon::current_num_threads() > 1
        && !kernels::parallel::sharing()
    {
        // Side by side as in `derivatives`: nothing records on this thread, so nothing has
        // to be recorded in order; the kernel level goes with the product that moves.
        // Batched products are R times larger, so they always pay for the hand-off. While a
        // function traces, both run here, in order.
        let level = kernels::isa::current();
        let (ga, gb) = if trace::tracing() {
            (level.enter(grad_a), level.enter(grad_b))
        } else {
            rayon::join(|| level.enter(grad_a), || level.enter(grad_b))
        };
        (Some(ga?), Some(gb?))
    } else {
        (need_a.then(grad_a).transpose()?, need_b.then(grad_b).transpose()?)
    };
    Ok(smallvec::smallvec![ga, gb])
}

/// `product` of `t` (`[… , rows, cols]`) with all leading axes folded into the rows
/// (`[…·rows, cols]`), its result `[…·rows, k]` unfolded to `[…, rows, k]`.
fn fold_rows(t: &Tensor, product: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let dims = t.dims();
    let cols = dims.last().copied().unwrap_or(1);
    let folded = reshape(t, &[-1, cols as isize])?;
    let out = product(&folded)?;
    let mut unfolded: Vec<isize> = dims[..dims.len().saturating_sub(1)].iter().map(|&d| d as isize).collect();
    unfolded.push(out.dims().last().copied().unwrap_or(1) as isize);
    reshape(&out, &unfolded)
}

/// `t` with its last two axes swapped; a reshape (no copy) when one of them has length 1.
fn swap_last_two(t: &Tensor) -> Result<Tensor> {
    let rank = t.rank();
    let mut dims: Vec<usize> = t.dims().to_vec();
    dims.swap(rank - 2, rank - 1);
    if t.dims()[rank - 2] == 1 || t.dims()[rank - 1] == 1 {
        return reshape(t, &dims.iter().map(|&d| d as isize).collect::<Vec<_>>());
    }
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(rank - 2, rank - 1);
    transpose(t, &perm)
}
