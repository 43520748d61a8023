//! Products with a short inner dimension (`k ≤ 16`: a gradient flowing back through a
//! 10-class output layer, `[B, 10]·[10, H]`). The blocked path would pack A and run the
//! register-tile kernel for a handful of k-steps per tile; here B is widened once into
//! `k` padded rows (at most 16 × n floats, in L1/L2), and each row of C is computed in
//! vectors straight from its `k` A values, written once.
//!
//! Every element is the FMA chain `c = a[i,p]·b[p,j] + c` over ascending `p`, starting
//! from zero, then stored: exactly what the micro-kernel does for a product whose K fits
//! one block, so this path gives the same bits as the blocked one (tested).

use crate::isa::{F32s, Kernel, LANES, Level, Simd};

use super::pack::Line;
use super::{Element, MatRef};

/// Longest K this path takes.
pub(super) const MAX_K: usize = 16;

/// How many rows ahead the C rows are prefetched.
const PREFETCH_AHEAD: usize = 4;

/// Rows of C per parallel job (rows are independent: the split changes no bit).
const ROWS_PER_JOB: usize = 64;

/// `c = a · b` for `1 ≤ k ≤ MAX_K`, `c` row-major `m × n`; rows split over rayon when
/// `parallel`.
pub(super) fn gemm_small_k<T: Element>(
    level: Level,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut [f32],
    parallel: bool,
) {
    let (k, n) = (a.cols, b.cols);
    if n == 0 || k == 0 || k > MAX_K {
        return;
    }
    // Vectors per group (their accumulators stay in registers): as many as the row needs,
    // up to 8; B's rows are padded with zeros to whole groups.
    let nv = n.div_ceil(LANES);
    let group = if nv >= 8 { 8 } else { nv.next_power_of_two() };
    let stride = nv.next_multiple_of(group);
    let mut wide_b = vec![Line::ZERO; k * stride];
    {
        let flat: &mut [f32] = bytemuck::cast_slice_mut(&mut wide_b);
        for p in 0..k {
            for (j, x) in flat[p * stride * LANES..][..n].iter_mut().enumerate() {
                *x = b.get(p, j).to_f32();
            }
        }
    }
    let wide_b = &wide_b[..];
    let rows = |first_row: usize, out: &mut [f32]| level.dispatch(Rows { a, wide_b, stride, group, n, first_row, out });
    if parallel {
        crate::parallel::for_each_item(c.chunks_mut(ROWS_PER_JOB * n).collect(), |job, out| {
            rows(job * ROWS_PER_JOB, out)
        });
    } else {
        rows(0, c);
    }
}

/// Rows `first_row ..` of C (`out`, whole rows), one kernel call per job.
struct Rows<'x, 'o, T> {
    a: &'x MatRef<'x, T>,
    wide_b: &'x [Line],
    stride: usize,
    group: usize,
    n: usize,
    first_row: usize,
    out: &'o mut [f32],
}

impl<T: Element> Kernel for Rows<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let Rows { a, wide_b, stride, group, n, first_row, out } = self;
        let k = a.cols;
        let count = out.len() / n.max(1);
        for r in 0..count {
            // C is written once and is usually out of cache (a recycled output buffer):
            // ask for a row a few rows ahead in a writable state.
            if let Some(ahead) = out.get((r + PREFETCH_AHEAD) * n..(r + PREFETCH_AHEAD + 1) * n) {
                super::kernel::prefetch_for_write(ahead);
            }
            let c_row = &mut out[r * n..(r + 1) * n];
            let i = first_row + r;
            let mut a_row = [0.0f32; MAX_K];
            for (p, x) in a_row[..k].iter_mut().enumerate() {
                *x = a.get(i, p).to_f32();
            }
            let a_row = &a_row[..k];
            match group {
                1 => row::<S, 1>(s, a_row, wide_b, stride, c_row),
                2 => row::<S, 2>(s, a_row, wide_b, stride, c_row),
                4 => row::<S, 4>(s, a_row, wide_b, stride, c_row),
                _ => row::<S, 8>(s, a_row, wide_b, stride, c_row),
            }
        }
    }
}

/// One row of C: `c_row[j] = Σ_p a_row[p]·b[p][j]` as an FMA chain over ascending `p`,
/// `V` vectors at a time (B's rows are `stride` vectors, a multiple of `V`).
#[inline(always)]
fn row<S: Simd, const V: usize>(s: S, a_row: &[f32], wide_b: &[Line], stride: usize, c_row: &mut [f32]) {
    let n = c_row.len();
    for v0 in (0..stride).step_by(V) {
        let mut acc = [s.zero(); V];
        for (p, &x) in a_row.iter().enumerate() {
            let av = s.splat(x);
            let Some(b_group) = wide_b.get(p * stride + v0..).and_then(|b| b.first_chunk::<V>()) else { return };
            for (acc, bv) in acc.iter_mut().zip(b_group) {
                *acc = av.mul_add(s.load(&bv.0), *acc);
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            let start = (v0 + v) * LANES;
            if start >= n {
                break;
            }
            let len = LANES.min(n - start);
            c_row[start..start + len].copy_from_slice(&acc.to_array()[..len]);
        }
    }
}
