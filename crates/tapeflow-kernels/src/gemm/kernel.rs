//! The register-blocked micro-kernel and the write-back of its tile into C.
//!
//! One call multiplies an `MR × kc` sliver of packed A by a `kc × NR` sliver of packed B
//! (`NR = 16·NV`) into `MR·NV` zmm accumulators, one FMA chain per register: for every
//! `p` in `0..kc` the kernel loads the `NV` vectors of B row `p`, broadcasts each of the
//! `MR` A values of column `p`, and issues `MR·NV` independent `vfmadd231ps`. The
//! accumulation order over `p` is fixed (ascending), which is what makes the result
//! independent of how tiles are spread over threads.

use wide::f32x16;

/// Lanes of one zmm register of f32.
pub(super) const LANES: usize = 16;

/// An `MR × NR` tile of accumulators.
pub(super) type Tile<const MR: usize, const NV: usize> = [[f32x16; NV]; MR];

/// `Σ_p a[p·MR + i] · b[p·NV + j]` for every accumulator `(i, j)`, in ascending `p`.
/// `a` holds `kc·MR` floats and `b` `kc·NV` vectors (extra trailing data is ignored).
///
/// Not inlined: the accumulators and the two B vectors must own (almost) the whole zmm
/// register file; as a separate function LLVM allocates them without interference from
/// the caller's loop state.
#[inline(never)]
pub(super) fn tile<const MR: usize, const NV: usize>(a: &[f32], b: &[f32x16]) -> Tile<MR, NV> {
    let mut acc = [[f32x16::ZERO; NV]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NV)) {
        // Both lengths are the compile-time chunk sizes, so the bound checks below fold
        // away; the conversions cannot fail.
        let Ok(ap) = <&[f32; MR]>::try_from(ap) else { continue };
        let Ok(bp) = <&[f32x16; NV]>::try_from(bp) else { continue };
        let bv = *bp;
        for (acc_row, &x) in acc.iter_mut().zip(ap) {
            let av = f32x16::splat(x);
            for (c, &bj) in acc_row.iter_mut().zip(&bv) {
                *c = av.mul_add(bj, *c);
            }
        }
    }
    acc
}

/// Writes (`first`) or adds the valid `rows.len() × ncols` corner of `acc` into C:
/// `rows[i][col..col + ncols]` receives row `i` of the tile. The zero-padded remainder of
/// an edge tile is dropped here.
#[inline]
pub(super) fn store<const MR: usize, const NV: usize>(
    acc: &Tile<MR, NV>,
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
                let v = if first { v } else { f32x16::new(*d) + v };
                *d = v.to_array();
            }
        } else {
            // Edge tile: element by element; scalar `+` rounds exactly like the lane-wise
            // vector add of the full-tile path.
            for (jj, d) in dst.iter_mut().enumerate() {
                let v = acc_row[jj / LANES].as_array()[jj % LANES];
                *d = if first { v } else { *d + v };
            }
        }
    }
}
