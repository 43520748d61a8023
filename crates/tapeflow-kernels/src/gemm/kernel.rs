//! The register-blocked micro-kernel, with the write-back of its tile into C.
//!
//! One call multiplies an `MR × kc` sliver of packed A by a `kc × NR` sliver of packed B
//! (`NR = 16·NV`) into `MR·NV` vector accumulators, one FMA chain per register: for every
//! `p` in `0..kc` the kernel loads the `NV` vectors of B row `p`, broadcasts each of the
//! `MR` A values of column `p` (`vbroadcastss`), and issues `MR·NV` independent FMAs. The
//! tile shape is chosen per level (see `super::gemm_at`): on AVX-512, 14 × 32 is 28 zmm
//! accumulators + 2 B vectors + 1 broadcast = 31 of the 32 registers, and 16 loads (2
//! vectors, 14 broadcasts) per 28 FMAs, i.e. per 14 cycles at 2 FMAs per cycle: well within
//! the load ports; on AVX2, 6 × 16 is 12 ymm accumulators + 2 B halves + 1 broadcast = 15 of
//! 16. The accumulation order over `p` is fixed (ascending), which is what makes the result
//! independent of how tiles are spread over threads.

use crate::isa::{F32s, Kernel, Simd};

use super::pack::{KB, Line};

pub(super) use crate::isa::LANES;

/// Computes the tile `Σ_p A[i, p] · B[p, j]` over the `kc` columns of the packed slivers
/// (ascending `p`) and writes (`first`) or adds its valid `rows.len() × ncols` corner
/// into C: `rows[i][col .. col + ncols]` receives row `i` of the tile; the zero-padded
/// rest of an edge tile is dropped. `a` holds `kc·MR` floats in the layout of
/// [`super::pack`] (blocks of 16 columns, row by row, then the tail column by column) and
/// `b` holds `kc·NV` vectors, row by row.
///
/// Called through [`Simd::vectorize`], so each call enters the level's own compiled
/// function: the accumulators and B vectors own (almost) all the registers there, without
/// interference from the caller's loop state.
pub(super) struct Tile<'t, 'r, 'c, const MR: usize, const NV: usize> {
    pub(super) kc: usize,
    pub(super) a: &'t [f32],
    pub(super) b: &'t [Line],
    pub(super) rows: &'r mut [&'c mut [f32]],
    pub(super) col: usize,
    pub(super) ncols: usize,
    pub(super) first: bool,
}

impl<const MR: usize, const NV: usize> Kernel for Tile<'_, '_, '_, MR, NV> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        tile::<S, MR, NV>(s, self.kc, self.a, self.b, self.rows, self.col, self.ncols, self.first);
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<S: Simd, const MR: usize, const NV: usize>(
    s: S,
    kc: usize,
    a: &[f32],
    b: &[Line],
    rows: &mut [&mut [f32]],
    col: usize,
    ncols: usize,
    first: bool,
) {
    let full = kc / KB * KB;
    let (Some((a_blocks, a_tail)), Some((b_blocks, b_tail))) =
        (a.split_at_checked(full * MR), b.split_at_checked(full * NV))
    else {
        return;
    };
    for row in rows.iter() {
        if let Some(dst) = row.get(col..col + ncols) {
            prefetch_for_write(dst);
        }
    }
    let mut acc = [[s.zero(); NV]; MR];
    for (ab, bb) in a_blocks.chunks_exact(MR * KB).zip(b_blocks.chunks_exact(NV * KB)) {
        // The chunk lengths are compile-time constants, so the indexing below needs no
        // bound checks; A row r of the block is ab[r·16 ..], B row q is bb[q·NV ..].
        for q in 0..KB {
            let mut bv = [s.zero(); NV];
            for (j, v) in bv.iter_mut().enumerate() {
                *v = s.load(&bb[q * NV + j].0);
            }
            for (r, acc_row) in acc.iter_mut().enumerate() {
                let av = s.splat(ab[r * KB + q]);
                for (c, &bj) in acc_row.iter_mut().zip(&bv) {
                    *c = av.mul_add(bj, *c);
                }
            }
        }
    }
    for (ap, bp) in a_tail.chunks_exact(MR).zip(b_tail.chunks_exact(NV)).take(kc - full) {
        for (acc_row, &x) in acc.iter_mut().zip(ap) {
            let av = s.splat(x);
            for (c, bj) in acc_row.iter_mut().zip(bp) {
                *c = av.mul_add(s.load(&bj.0), *c);
            }
        }
    }
    store(s, &acc, rows, col, ncols, first);
}

/// Asks for the cache lines of `dst` in a writable state before the tile's FMAs start:
/// the C tile is written (or read and written) only after all `kc` steps, and a C block
/// that was evicted since it was last touched (a fresh output from the buffer pool) would
/// otherwise stall the stores on one read-for-ownership miss after another. Measured on
/// cold 256 × 512 × 512 products (caches flushed between calls): see the PERFORMANCE notes.
#[inline(always)]
pub(super) fn prefetch_for_write(dst: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in dst.chunks(LANES) {
        // SAFETY: `prefetchw` (`_MM_HINT_ET0`) is a hint: it never faults and has no
        // architectural effect, and the pointer comes from a live slice in any case.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = dst;
}

#[inline(always)]
fn store<S: Simd, const MR: usize, const NV: usize>(
    s: S,
    acc: &[[S::F; NV]; MR],
    rows: &mut [&mut [f32]],
    col: usize,
    ncols: usize,
    first: bool,
) {
    for (row, acc_row) in rows.iter_mut().zip(acc) {
        let Some(dst) = row.get_mut(col..col + ncols) else { continue };
        if ncols == NV * LANES {
            for (d, &v) in dst.chunks_exact_mut(LANES).zip(acc_row) {
                let Ok(d) = <&mut [f32; LANES]>::try_from(d) else { continue };
                let v = if first { v } else { s.load(d) + v };
                v.store(d);
            }
        } else {
            // Edge tile: element by element; scalar `+` rounds exactly like the lane-wise
            // vector add of the full-tile path.
            let mut lanes = [[0.0f32; LANES]; NV];
            for (l, v) in lanes.iter_mut().zip(acc_row) {
                v.store(l);
            }
            for (jj, d) in dst.iter_mut().enumerate() {
                let v = lanes[jj / LANES][jj % LANES];
                *d = if first { v } else { *d + v };
            }
        }
    }
}
