//! Packing: copies (and for f16 widens) a block of an operand, read through its strides,
//! into the contiguous sliver layout the micro-kernel streams.
//!
//! * A (`m × k`) is cut into slivers of `MR` rows; a sliver holds, for each `p` of the
//!   `kc` block, the `MR` values of column `p` next to each other (`dst[p·MR + r]`).
//! * B (`k × n`) is cut into slivers of `NR` columns; a sliver holds, for each `p`, the
//!   `NR` values of row `p` next to each other (`dst[p·NR + c]`).
//!
//! Rows (columns) past the matrix edge are zero, so every sliver is full and the kernel
//! never branches; the write-back drops the padded part of the tile.

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::MatRef;

/// An input element type of the GEMM: widened to f32 while packing.
pub trait Element: Copy + Send + Sync + 'static {
    /// Widens one value.
    fn to_f32(self) -> f32;

    /// Widens a contiguous run: `dst[i] = src[i]` for `i < src.len()` (`dst` at least as long).
    fn widen(src: &[Self], dst: &mut [f32]);

    /// Widens a contiguous run into every `stride`-th element of `dst`, starting at
    /// `dst[0]`: `dst[i·stride] = src[i]`.
    fn scatter(src: &[Self], dst: &mut [f32], stride: usize) {
        // Widen in chunks on the stack so that the conversion itself runs vectorized
        // (F16C for f16), then scatter.
        const CHUNK: usize = 64;
        let mut buf = [0.0f32; CHUNK];
        for (ci, chunk) in src.chunks(CHUNK).enumerate() {
            Self::widen(chunk, &mut buf);
            let base = ci * CHUNK * stride;
            for (d, &v) in dst.iter_mut().skip(base).step_by(stride).zip(&buf[..chunk.len()]) {
                *d = v;
            }
        }
    }
}

impl Element for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }

    #[inline]
    fn widen(src: &[f32], dst: &mut [f32]) {
        dst[..src.len()].copy_from_slice(src);
    }

    #[inline]
    fn scatter(src: &[f32], dst: &mut [f32], stride: usize) {
        for (d, &v) in dst.iter_mut().step_by(stride).zip(src) {
            *d = v;
        }
    }
}

impl Element for f16 {
    #[inline]
    fn to_f32(self) -> f32 {
        self.to_f32()
    }

    #[inline]
    fn widen(src: &[f16], dst: &mut [f32]) {
        // `HalfFloatSliceExt` converts with F16C (8 values per instruction) when the
        // target has it, which `-C target-cpu=native` gives here.
        src.convert_to_f32_slice(&mut dst[..src.len()]);
    }
}

/// Contiguous run `data[start .. start + len]`; empty if out of range (never, for a
/// validated [`MatRef`], but this keeps packing panic-free).
#[inline]
fn run<T>(data: &[T], start: usize, len: usize) -> &[T] {
    data.get(start..start + len).unwrap_or(&[])
}

/// Packs rows `i0 .. i0 + MR` (clipped to the matrix, zero beyond) and columns
/// `p0 .. p0 + kc` of `a` into `dst` (`kc·MR` floats), layout `dst[p·MR + r]`.
pub(super) fn pack_a<T: Element, const MR: usize>(a: &MatRef<'_, T>, i0: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    let dst = &mut dst[..kc * MR];
    let rows = MR.min(a.rows.saturating_sub(i0));
    if rows < MR {
        dst.fill(0.0);
    }
    if a.col_stride == 1 {
        // Row-major A: each row is a contiguous run along k.
        for r in 0..rows {
            let src = run(a.data, (i0 + r) * a.row_stride + p0, kc);
            T::scatter(src, &mut dst[r..], MR);
        }
    } else if a.row_stride == 1 {
        // Column-major A (a transposed operand): each column is a contiguous run of rows.
        for (p, d) in dst.chunks_exact_mut(MR).enumerate() {
            T::widen(run(a.data, (p0 + p) * a.col_stride + i0, rows), d);
        }
    } else {
        for (p, d) in dst.chunks_exact_mut(MR).enumerate() {
            for (r, x) in d[..rows].iter_mut().enumerate() {
                *x = a.get(i0 + r, p0 + p).to_f32();
            }
        }
    }
}

/// Packs columns `j0 .. j0 + nr` (clipped, zero beyond) and rows `p0 .. p0 + kc` of `b`
/// into `dst` (`kc·nr` floats), layout `dst[p·nr + c]`.
pub(super) fn pack_b<T: Element>(b: &MatRef<'_, T>, j0: usize, p0: usize, kc: usize, nr: usize, dst: &mut [f32]) {
    let dst = &mut dst[..kc * nr];
    let cols = nr.min(b.cols.saturating_sub(j0));
    if cols < nr {
        dst.fill(0.0);
    }
    if b.col_stride == 1 {
        // Row-major B: each row of the sliver is one contiguous run.
        for (p, d) in dst.chunks_exact_mut(nr).enumerate() {
            T::widen(run(b.data, (p0 + p) * b.row_stride + j0, cols), d);
        }
    } else if b.row_stride == 1 {
        // Column-major B (a transposed operand): each column is a contiguous run along k.
        for c in 0..cols {
            let src = run(b.data, (j0 + c) * b.col_stride + p0, kc);
            T::scatter(src, &mut dst[c..], nr);
        }
    } else {
        for (p, d) in dst.chunks_exact_mut(nr).enumerate() {
            for (c, x) in d[..cols].iter_mut().enumerate() {
                *x = b.get(p0 + p, j0 + c).to_f32();
            }
        }
    }
}
