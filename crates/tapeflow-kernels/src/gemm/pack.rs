//! Packing: copies (and for f16 widens) a block of an operand, read through its strides,
//! into the contiguous sliver layout the micro-kernel streams.
//!
//! * A (`m × k`) is cut into slivers of `MR` rows. Within a sliver, the `kc` columns are
//!   grouped in blocks of [`KB`] = 16: a full block stores its `MR` rows one after the
//!   other, 16 values each (`dst[blk·MR·16 + r·16 + q]`), so packing a row-major A is a
//!   plain copy of 64-byte runs; the `kc mod 16` tail columns are stored column by column
//!   (`dst[full·MR + q·MR + r]`).
//! * B (`k × n`) is cut into slivers of `NR` columns; a sliver holds, for each `p`, the
//!   `NR` values of row `p` next to each other (`dst[p·NR + c]`).
//!
//! Rows (columns) past the matrix edge are zero, so every sliver is full and the kernel
//! never branches; the write-back drops the padded part of the tile. A transposed
//! operand (the other orientation) is transposed in registers, 16 × 16 at a time.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::isa::{F32s, Kernel, LANES, Simd};

use super::MatRef;

/// Columns of A per block of the packed A layout, and the side of the square blocks
/// transposed in registers (one vector holds 16 f32).
pub(super) const KB: usize = LANES;

/// One vector's worth of packed floats, on its own cache line (packing buffers are made of
/// these, so every sliver and every B row of a sliver starts aligned).
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Line(pub(crate) [f32; LANES]);

impl Line {
    /// Zeros.
    pub(crate) const ZERO: Line = Line([0.0; LANES]);
}

/// An input element type of the GEMM: widened to f32 while packing.
pub trait Element: Copy + Send + Sync + 'static + sealed::Widen16 {
    /// Widens one value.
    fn to_f32(self) -> f32;

    /// Widens a contiguous run: `dst[i] = src[i]` for `i < src.len()` (`dst` at least as long).
    fn widen(src: &[Self], dst: &mut [f32]);

    /// Widens 16 values into `dst`, straight to memory.
    fn widen_block(src: &[Self; KB], dst: &mut [f32; KB]);

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

    #[inline(always)]
    fn widen_block(src: &[f32; KB], dst: &mut [f32; KB]) {
        *dst = *src;
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
        // `HalfFloatSliceExt` converts with F16C (8 values per instruction) when the CPU
        // has it (detected at run time).
        src.convert_to_f32_slice(&mut dst[..src.len()]);
    }

    #[inline(always)]
    fn widen_block(src: &[f16; KB], dst: &mut [f32; KB]) {
        src.convert_to_f32_slice(dst);
    }
}

// The module is private, so `Widen16` cannot be named outside the crate: the tokens it
// mentions stay private although the trait is a supertrait of the public `Element`.
#[allow(private_interfaces, private_bounds)]
mod sealed {
    use super::*;

    /// The vector widening of 16 values, at a level: outside the public [`Element`] trait
    /// (whose users never see the instruction-set tokens), and sealing it.
    pub trait Widen16: Sized {
        /// Widens 16 values into one register.
        fn widen16<S: Simd>(s: S, src: &[Self; KB]) -> S::F;
    }

    impl Widen16 for f32 {
        #[inline(always)]
        fn widen16<S: Simd>(s: S, src: &[f32; KB]) -> S::F {
            s.load(src)
        }
    }

    impl Widen16 for f16 {
        #[inline(always)]
        fn widen16<S: Simd>(s: S, src: &[f16; KB]) -> S::F {
            s.load_f16(src)
        }
    }
}

/// Contiguous run `data[start .. start + len]`; empty if out of range (never, for a
/// validated [`MatRef`], but this keeps packing panic-free).
#[inline]
fn run<T>(data: &[T], start: usize, len: usize) -> &[T] {
    data.get(start..start + len).unwrap_or(&[])
}

/// `dst[i] = src[i]` for a short run (at most a sliver's width): whole 16-value blocks
/// when `src` has exactly `N` elements, else element by element (kept apart from the
/// block path so that LLVM cannot merge both into one variable-length `memcpy` call).
#[inline(always)]
fn widen_n<T: Element, const N: usize>(src: &[T], dst: &mut [f32]) {
    match (<&[T; N]>::try_from(src), dst.get_mut(..N)) {
        (Ok(s), Some(d)) if N.is_multiple_of(KB) => {
            for (d, s) in d.chunks_exact_mut(KB).zip(s.chunks_exact(KB)) {
                if let (Ok(d), Ok(s)) = (<&mut [f32; KB]>::try_from(d), <&[T; KB]>::try_from(s)) {
                    T::widen_block(s, d);
                }
            }
        }
        (Ok(s), Some(d)) => T::widen(s, d),
        _ => {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = s.to_f32();
            }
        }
    }
}

/// The runs `data[start(i) .. start(i) + 16]` for `i < count` as the rows of a block
/// (a run reaching past the data keeps its first `len` elements, the rest zero; rows
/// from `count` on are zero), transposed: lane `i` of vector `q` is element `q` of run
/// `i`. Lanes of a run past `len` may hold neighbouring data; callers ignore them.
#[inline(always)]
fn load_transposed<T: Element, S: Simd>(
    s: S,
    data: &[T],
    count: usize,
    len: usize,
    start: impl Fn(usize) -> usize,
) -> [S::F; KB] {
    let mut rows = [s.zero(); KB];
    for (i, row) in rows.iter_mut().enumerate().take(count) {
        *row = match <&[T; KB]>::try_from(run(data, start(i), KB)) {
            Ok(src) => T::widen16(s, src),
            Err(_) => {
                let mut buf = [0.0f32; KB];
                T::widen(run(data, start(i), len.min(KB)), &mut buf);
                s.load(&buf)
            }
        };
    }
    s.transpose16(rows)
}

/// [`pack_a`] as a kernel call.
pub(super) struct PackA<'m, 'd, T, const MR: usize> {
    pub(super) a: &'m MatRef<'m, T>,
    pub(super) i0: usize,
    pub(super) p0: usize,
    pub(super) kc: usize,
    pub(super) dst: &'d mut [f32],
}

impl<T: Element, const MR: usize> Kernel for PackA<'_, '_, T, MR> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        pack_a::<T, S, MR>(s, self.a, self.i0, self.p0, self.kc, self.dst);
    }
}

/// [`pack_b_group`] as a kernel call.
pub(super) struct PackBGroup<'m, 'd, T, const NR: usize> {
    pub(super) b: &'m MatRef<'m, T>,
    pub(super) j0: usize,
    pub(super) p0: usize,
    pub(super) kc: usize,
    pub(super) dst: &'d mut [f32],
}

impl<T: Element, const NR: usize> Kernel for PackBGroup<'_, '_, T, NR> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        pack_b_group::<T, S, NR>(s, self.b, self.j0, self.p0, self.kc, self.dst);
    }
}

/// Packs rows `i0 .. i0 + MR` (clipped to the matrix, zero beyond) and columns
/// `p0 .. p0 + kc` of `a` into `dst` (`kc·MR` floats) in the layout of the module docs.
#[inline(always)]
fn pack_a<T: Element, S: Simd, const MR: usize>(
    s: S,
    a: &MatRef<'_, T>,
    i0: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let Some(dst) = dst.get_mut(..kc * MR) else { return };
    let rows = MR.min(a.rows.saturating_sub(i0));
    if rows < MR {
        dst.fill(0.0);
    }
    let full = kc / KB * KB;
    let (blocks, tail) = dst.split_at_mut(full * MR);
    if a.col_stride == 1 {
        // Row-major A: each row of a block is one contiguous run of 16.
        for (blk, d) in blocks.chunks_exact_mut(MR * KB).enumerate() {
            for (r, d) in d.chunks_exact_mut(KB).take(rows).enumerate() {
                widen_n::<T, KB>(run(a.data, (i0 + r) * a.row_stride + p0 + blk * KB, KB), d);
            }
        }
        for r in (0..rows).filter(|_| full < kc) {
            T::scatter(run(a.data, (i0 + r) * a.row_stride + p0 + full, kc - full), &mut tail[r..], MR);
        }
    } else if a.row_stride == 1 {
        // Column-major A (a transposed operand): a column of the sliver is a contiguous
        // run of rows; transpose 16 columns × 16 rows at a time (slivers taller than 16
        // rows, like the 28-row one, in several row groups).
        for (blk, d) in blocks.chunks_exact_mut(MR * KB).enumerate() {
            for r0 in (0..rows).step_by(KB) {
                let n = (rows - r0).min(KB);
                let t = load_transposed(s, a.data, KB, n, |q| (p0 + blk * KB + q) * a.col_stride + i0 + r0);
                for (d, v) in d[r0 * KB..].chunks_exact_mut(KB).zip(&t).take(n) {
                    if let Ok(d) = <&mut [f32; KB]>::try_from(d) {
                        v.store(d);
                    }
                }
            }
        }
        for (p, d) in tail.chunks_exact_mut(MR).enumerate() {
            widen_n::<T, MR>(run(a.data, (p0 + full + p) * a.col_stride + i0, rows), d);
        }
    } else {
        for (blk, d) in blocks.chunks_exact_mut(MR * KB).enumerate() {
            for (r, d) in d.chunks_exact_mut(KB).take(rows).enumerate() {
                for (q, x) in d.iter_mut().enumerate() {
                    *x = a.get(i0 + r, p0 + blk * KB + q).to_f32();
                }
            }
        }
        for (p, d) in tail.chunks_exact_mut(MR).enumerate() {
            for (r, x) in d[..rows].iter_mut().enumerate() {
                *x = a.get(i0 + r, p0 + full + p).to_f32();
            }
        }
    }
}

/// Packs columns `j0 .. j0 + NR` (clipped, zero beyond) and rows `p0 .. p0 + kc` of `b`
/// into `dst` (`kc·NR` floats), layout `dst[p·NR + c]`.
#[inline(always)]
fn pack_b<T: Element, S: Simd, const NR: usize>(
    s: S,
    b: &MatRef<'_, T>,
    j0: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let Some(dst) = dst.get_mut(..kc * NR) else { return };
    let cols = NR.min(b.cols.saturating_sub(j0));
    if cols < NR {
        dst.fill(0.0);
    }
    if b.col_stride == 1 {
        // Row-major B: each row of the sliver is one contiguous run.
        for (p, d) in dst.chunks_exact_mut(NR).enumerate() {
            widen_n::<T, NR>(run(b.data, (p0 + p) * b.row_stride + j0, cols), d);
        }
    } else if b.row_stride == 1 && NR.is_multiple_of(KB) {
        // Column-major B (a transposed operand): columns are contiguous runs along k;
        // transpose 16 × 16 blocks in registers, then the k tail element by element.
        let full = kc / KB * KB;
        for q0 in (0..full).step_by(KB) {
            for c0 in (0..NR).step_by(KB) {
                let n = cols.saturating_sub(c0).min(KB);
                let t = load_transposed(s, b.data, n, KB, |c| (j0 + c0 + c) * b.col_stride + p0 + q0);
                for (q, v) in t.iter().enumerate() {
                    if let Ok(d) = <&mut [f32; KB]>::try_from(&mut dst[(q0 + q) * NR + c0..][..KB]) {
                        v.store(d);
                    }
                }
            }
        }
        for c in (0..cols).filter(|_| full < kc) {
            T::scatter(run(b.data, (j0 + c) * b.col_stride + p0 + full, kc - full), &mut dst[full * NR + c..], NR);
        }
    } else {
        for (p, d) in dst.chunks_exact_mut(NR).enumerate() {
            for (c, x) in d[..cols].iter_mut().enumerate() {
                *x = b.get(p0 + p, j0 + c).to_f32();
            }
        }
    }
}

/// Packs the consecutive B slivers, the first at column `j0`, that fill `dst` (whole
/// `kc·NR` slivers). A row-major B is read row by row across all of them, one contiguous
/// run per row, which streams far better than sliver by sliver (rows a stride apart).
#[inline(always)]
fn pack_b_group<T: Element, S: Simd, const NR: usize>(
    s: S,
    b: &MatRef<'_, T>,
    j0: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let size = kc * NR;
    if size == 0 {
        return;
    }
    if b.col_stride != 1 {
        for (i, d) in dst.chunks_exact_mut(size).enumerate() {
            pack_b::<T, S, NR>(s, b, j0 + i * NR, p0, kc, d);
        }
        return;
    }
    for (i, d) in dst.chunks_exact_mut(size).enumerate() {
        if j0 + (i + 1) * NR > b.cols {
            d.fill(0.0);
        }
    }
    for p in 0..kc {
        let row = (p0 + p) * b.row_stride;
        for (i, d) in dst.chunks_exact_mut(size).enumerate() {
            let j = j0 + i * NR;
            let cols = NR.min(b.cols.saturating_sub(j));
            widen_n::<T, NR>(run(b.data, row + j, cols), &mut d[p * NR..(p + 1) * NR]);
        }
    }
}
