//! Products with a narrow output (`n ≤ 16`) and a row-major A whose K fits one K block:
//! the output layer of a classifier, `[B, H]·[H, 10]`. The blocked path would pack all of
//! A — as many bytes as the product reads — to feed a 28 × 16 tile for a single column
//! vector; here B is widened once into `k` zero-padded vectors (at most 16 floats each, in
//! L1/L2), and blocks of rows of C are computed straight from A's rows, one accumulator
//! vector per row.
//!
//! Every element is the FMA chain `c = a[i,p]·b[p,j] + c` over ascending `p`, starting
//! from zero, then stored: exactly what the micro-kernel does for a product whose K fits
//! one block, so this path gives the same bits as the blocked one (tested).

use wide::f32x16;

use super::kernel::LANES;
use super::{Element, MatRef};

/// Widest output this path takes: one vector.
pub(super) const MAX_N: usize = LANES;

/// Rows of C computed together: one accumulator each, enough independent FMA chains to
/// cover the FMA latency on two ports.
const BLOCK: usize = 8;

/// Rows of C per parallel job (rows are independent: the split changes no bit).
const ROWS_PER_JOB: usize = 64;

/// Whether `a · b` takes this path when K blocks hold at most `max_k` values.
pub(super) fn applies<T: Copy>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, max_k: usize) -> bool {
    (1..=MAX_N).contains(&b.cols) && a.col_stride == 1 && (1..=max_k).contains(&a.cols)
}

/// `c = a · b` for a row-major `a` and `1 ≤ n ≤ MAX_N`, `c` row-major `m × n`; rows split
/// over the threads when `parallel`.
pub(super) fn gemm_small_n<T: Element>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, c: &mut [f32], parallel: bool) {
    let (k, n) = (a.cols, b.cols);
    if n == 0 || n > MAX_N || k == 0 || c.len() != a.rows * n {
        return;
    }
    let mut wide_b = vec![f32x16::ZERO; k];
    for (p, v) in wide_b.iter_mut().enumerate() {
        let mut lanes = [0.0f32; LANES];
        for (j, x) in lanes[..n].iter_mut().enumerate() {
            *x = b.get(p, j).to_f32();
        }
        *v = f32x16::new(lanes);
    }
    let rows = |first_row: usize, out: &mut [f32]| {
        let mut blocks = out.chunks_exact_mut(BLOCK * n);
        let mut i = first_row;
        for out in blocks.by_ref() {
            block::<T, BLOCK>(a, i, &wide_b, out);
            i += BLOCK;
        }
        for out in blocks.into_remainder().chunks_exact_mut(n) {
            block::<T, 1>(a, i, &wide_b, out);
            i += 1;
        }
    };
    if parallel {
        crate::parallel::for_each_item(c.chunks_mut(ROWS_PER_JOB * n).collect(), |job, out| {
            rows(job * ROWS_PER_JOB, out)
        });
    } else {
        rows(0, c);
    }
}

/// Rows `i0 .. i0 + R` of C (`out`, `R × n`): one accumulator per row, the FMA chains over
/// ascending `p` interleaved.
#[inline(always)]
fn block<T: Element, const R: usize>(a: &MatRef<'_, T>, i0: usize, wide_b: &[f32x16], out: &mut [f32]) {
    let k = wide_b.len();
    let n = out.len() / R;
    let mut a_rows: [&[T]; R] = [&[]; R];
    for (r, row) in a_rows.iter_mut().enumerate() {
        match a.data.get((i0 + r) * a.row_stride..).and_then(|d| d.get(..k)) {
            Some(d) => *row = d,
            // Never for a validated MatRef; leaves these rows of C untouched.
            None => return,
        }
    }
    let mut acc = [f32x16::ZERO; R];
    for (p, &bv) in wide_b.iter().enumerate() {
        for (acc, row) in acc.iter_mut().zip(&a_rows) {
            *acc = f32x16::splat(row[p].to_f32()).mul_add(bv, *acc);
        }
    }
    for (dst, acc) in out.chunks_exact_mut(n).zip(&acc) {
        dst.copy_from_slice(&acc.as_array()[..n]);
    }
}
