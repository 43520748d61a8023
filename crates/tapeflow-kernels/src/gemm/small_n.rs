//! Products with a narrow output (`n ≤ 16`): the output layer of a classifier and its
//! weight gradient, `[B, H]·[H, 10]` and `[H, B]·[B, 10]`. The blocked path would pack
//! all of A — as many bytes as the product reads — to feed a 28 × 16 tile for a single
//! column vector; here B is widened once into `k` zero-padded vectors (at most 16 floats
//! each, in L1/L2), and blocks of 8 rows of C are computed straight from A, one
//! accumulator vector per row.
//!
//! The bits are those of the blocked path (tested): every element is, for each K block of
//! the blocked path (the same split of K, and the same cut of K in halves for the shapes
//! that take it), the FMA chain `c = a[i,p]·b[p,j] + c` over ascending `p` from zero; the
//! blocks' chains are added in order, and the second half's sum to the first's.

use crate::isa::{F32s, Kernel, LANES, Level, Simd};

use super::pack::Line;
use super::{Element, MatRef, split_even};

/// Widest output this path takes: one vector.
pub(super) const MAX_N: usize = LANES;

/// Rows of C computed together from a row-major A: one accumulator each, enough
/// independent FMA chains to cover the FMA latency on two ports. (A column-major A takes
/// 16: one cache line of a column.)
const BLOCK: usize = 8;

/// Rows of C per parallel job (rows are independent: the split changes no bit).
const ROWS_PER_JOB: usize = 64;

/// Whether `a · b` takes this path.
pub(super) fn applies<T: Copy>(a: &MatRef<'_, T>, b: &MatRef<'_, T>) -> bool {
    (1..=MAX_N).contains(&b.cols) && a.cols >= 1
}

/// How the blocked path would cut K for this product: its K blocks of at most `kc`, and
/// where it cuts K in two halves (`None`: no cut).
#[derive(Clone, Copy)]
pub(super) struct KPlan {
    /// The blocked path's largest K block.
    pub(super) kc: usize,
    /// The start of the second half of K, if the blocked path halves it.
    pub(super) half: Option<usize>,
}

/// `c = a · b` for `1 ≤ n ≤ MAX_N`, `c` row-major `m × n`, K cut as `plan` says; rows
/// split over the threads when `parallel`.
pub(super) fn gemm_small_n<T: Element>(
    level: Level,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut [f32],
    plan: KPlan,
    parallel: bool,
) {
    let (k, n) = (a.cols, b.cols);
    if n == 0 || n > MAX_N || k == 0 || plan.kc == 0 || c.len() != a.rows * n {
        return;
    }
    let mut wide_b = vec![Line::ZERO; k];
    for (p, v) in wide_b.iter_mut().enumerate() {
        for (j, x) in v.0[..n].iter_mut().enumerate() {
            *x = b.get(p, j).to_f32();
        }
    }
    let wide_b = &wide_b[..];
    let rows = |first_row: usize, out: &mut [f32]| level.dispatch(Rows { a, first_row, wide_b, plan, n, out });
    if parallel {
        crate::parallel::for_each_item(c.chunks_mut(ROWS_PER_JOB * n).collect(), |job, out| {
            rows(job * ROWS_PER_JOB, out)
        });
    } else {
        rows(0, c);
    }
}

/// Rows `first_row ..` of C (`out`, whole rows of `n`), one kernel call per job.
struct Rows<'x, 'o, T> {
    a: &'x MatRef<'x, T>,
    first_row: usize,
    wide_b: &'x [Line],
    plan: KPlan,
    n: usize,
    out: &'o mut [f32],
}

impl<T: Element> Kernel for Rows<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let Rows { a, first_row, wide_b, plan, n, out } = self;
        if a.row_stride == 1 && a.col_stride != 1 {
            // A column-major: a whole cache line of a column (16 rows) per block.
            row_blocks::<T, S, 16>(s, a, first_row, wide_b, plan, n, out);
        } else {
            row_blocks::<T, S, BLOCK>(s, a, first_row, wide_b, plan, n, out);
        }
    }
}

/// Rows `first_row ..` of C (`out`, whole rows of `n`): blocks of `R` rows, then the rest
/// one at a time.
#[inline(always)]
fn row_blocks<T: Element, S: Simd, const R: usize>(
    s: S,
    a: &MatRef<'_, T>,
    first_row: usize,
    wide_b: &[Line],
    plan: KPlan,
    n: usize,
    out: &mut [f32],
) {
    let mut blocks = out.chunks_exact_mut(R * n);
    let mut i = first_row;
    for out in blocks.by_ref() {
        block::<T, S, R>(s, a, i, wide_b, plan, out);
        i += R;
    }
    for out in blocks.into_remainder().chunks_exact_mut(n) {
        block::<T, S, 1>(s, a, i, wide_b, plan, out);
        i += 1;
    }
}

/// Rows `i0 .. i0 + R` of C (`out`, `R × n`), K cut as the blocked path cuts it.
#[inline(always)]
fn block<T: Element, S: Simd, const R: usize>(
    s: S,
    a: &MatRef<'_, T>,
    i0: usize,
    wide_b: &[Line],
    plan: KPlan,
    out: &mut [f32],
) {
    let k = wide_b.len();
    let n = out.len() / R;
    let sum = match plan.half {
        Some(k0) if k0 < k => {
            let first = blocks::<T, S, R>(s, a, i0, wide_b, 0, k0, plan.kc);
            let second = blocks::<T, S, R>(s, a, i0, wide_b, k0, k, plan.kc);
            let mut sum = first;
            for (x, y) in sum.iter_mut().zip(second) {
                *x += y;
            }
            sum
        }
        _ => blocks::<T, S, R>(s, a, i0, wide_b, 0, k, plan.kc),
    };
    for (dst, acc) in out.chunks_exact_mut(n).zip(&sum) {
        dst.copy_from_slice(&acc.to_array()[..n]);
    }
}

/// `Σ` over K range `p0 .. p1` in the blocked path's K blocks (even blocks of at most
/// `kc`): each block's FMA chain from zero, the blocks' results added in order.
#[inline(always)]
fn blocks<T: Element, S: Simd, const R: usize>(
    s: S,
    a: &MatRef<'_, T>,
    i0: usize,
    wide_b: &[Line],
    p0: usize,
    p1: usize,
    kc: usize,
) -> [S::F; R] {
    let len = p1 - p0;
    let k_blocks = len.div_ceil(kc);
    let mut total = [s.zero(); R];
    for kb in 0..k_blocks {
        let (start, count) = split_even(len, k_blocks, kb);
        let acc = chain::<T, S, R>(s, a, i0, wide_b, p0 + start, p0 + start + count);
        if kb == 0 {
            total = acc;
        } else {
            for (t, a) in total.iter_mut().zip(acc) {
                *t += a;
            }
        }
    }
    total
}

/// The FMA chains of rows `i0 .. i0 + R` over K range `p0 .. p1`, from zero.
#[inline(always)]
fn chain<T: Element, S: Simd, const R: usize>(
    s: S,
    a: &MatRef<'_, T>,
    i0: usize,
    wide_b: &[Line],
    p0: usize,
    p1: usize,
) -> [S::F; R] {
    let mut acc = [s.zero(); R];
    let Some(b) = wide_b.get(p0..p1) else { return acc };
    if a.col_stride == 1 {
        // Row-major A: each row's run is contiguous.
        let mut runs: [&[T]; R] = [&[]; R];
        for (r, run) in runs.iter_mut().enumerate() {
            match a.data.get((i0 + r) * a.row_stride + p0..).and_then(|d| d.get(..p1 - p0)) {
                Some(d) => *run = d,
                None => return acc, // never for a validated MatRef
            }
        }
        for (p, bv) in b.iter().enumerate() {
            let bv = s.load(&bv.0);
            for (acc, run) in acc.iter_mut().zip(&runs) {
                *acc = s.splat(run[p].to_f32()).mul_add(bv, *acc);
            }
        }
    } else if a.row_stride == 1 {
        // Column-major A (a transposed operand): the block's R values of column p are
        // contiguous.
        for (p, bv) in b.iter().enumerate() {
            let bv = s.load(&bv.0);
            let Some(col) = a.data.get((p0 + p) * a.col_stride + i0..).and_then(|d| d.get(..R)) else { return acc };
            for (acc, &x) in acc.iter_mut().zip(col) {
                *acc = s.splat(x.to_f32()).mul_add(bv, *acc);
            }
        }
    } else {
        for (p, bv) in b.iter().enumerate() {
            let bv = s.load(&bv.0);
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = s.splat(a.get(i0 + r, p0 + p).to_f32()).mul_add(bv, *acc);
            }
        }
    }
    acc
}
