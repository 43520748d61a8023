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
use wide::{ShuffleExt, f32x16, u32x16};

use super::MatRef;

/// Columns of A per block of the packed A layout, and the side of the square blocks
/// transposed in registers (one zmm holds 16 f32).
pub(super) const KB: usize = 16;

/// An input element type of the GEMM: widened to f32 while packing.
pub trait Element: Copy + Send + Sync + 'static {
    /// Widens one value.
    fn to_f32(self) -> f32;

    /// Widens a contiguous run: `dst[i] = src[i]` for `i < src.len()` (`dst` at least as long).
    fn widen(src: &[Self], dst: &mut [f32]);

    /// Widens 16 values into `dst`, straight to memory.
    fn widen_block(src: &[Self; KB], dst: &mut [f32; KB]);

    /// Widens 16 values into one register.
    fn widen16(src: &[Self; KB]) -> f32x16;

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

    #[inline(always)]
    fn widen16(src: &[f32; KB]) -> f32x16 {
        load16(src)
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

    #[inline(always)]
    fn widen_block(src: &[f16; KB], dst: &mut [f32; KB]) {
        src.convert_to_f32_slice(dst);
    }

    #[inline(always)]
    fn widen16(src: &[f16; KB]) -> f32x16 {
        let mut out = [0.0f32; KB];
        src.convert_to_f32_slice(&mut out);
        f32x16::new(out)
    }
}

/// One 64-byte unaligned load into a register, for the register transposes. The safe
/// `f32x16::new(*src)` is compiled into a copy through the stack in 32-byte halves whose
/// 64-byte reload then stalls on store forwarding; measured on `Aᵀ·Bᵀ` at n = 512 (both
/// operands transposed while packing), packing takes 12.4% of the time with it and 10.8%
/// with this load. (Plain copies do not need it: `*dst = *src` never reloads.)
#[inline(always)]
fn load16(src: &[f32; KB]) -> f32x16 {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        use std::arch::x86_64::__m512;
        // SAFETY: the pointer comes from a reference to 16 f32, i.e. 64 readable bytes,
        // exactly the size of `__m512`; `read_unaligned` has no alignment requirement;
        // every bit pattern is a valid `__m512`. (A plain vector type, so LLVM emits one
        // `vmovups zmm`; `_mm512_loadu_ps` would need Rust 1.89, above the MSRV.)
        f32x16::from(unsafe { std::ptr::read_unaligned(src.as_ptr().cast::<__m512>()) })
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    {
        f32x16::new(*src)
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

/// One butterfly stage of [`transpose16`]: swaps bit `log2(B)` of the row index with the
/// same bit of the column index, one two-source permute (`vpermt2ps`) per output row.
#[inline(always)]
fn transpose_stage<const B: usize>(m: &mut [f32x16; KB]) {
    let bit = B as u32;
    // Lane c of the low row of a pair takes (row r, col c) when the bit of c is clear,
    // else (row r | bit, col c ^ bit); the high row takes the mirror image.
    let lo = u32x16::new(std::array::from_fn(|c| {
        let c = c as u32;
        if c & bit == 0 { c } else { 16 + (c ^ bit) }
    }));
    let hi = u32x16::new(std::array::from_fn(|c| {
        let c = c as u32;
        if c & bit == 0 { c | bit } else { 16 + c }
    }));
    for base in (0..KB).step_by(2 * B) {
        for r in base..base + B {
            let pair = [m[r], m[r + B]];
            m[r] = pair.shuffle_wrapping(lo);
            m[r + B] = pair.shuffle_wrapping(hi);
        }
    }
}

/// Transposes a 16 × 16 block held as 16 row vectors (four butterfly stages, 64
/// permutes).
#[inline(always)]
pub(super) fn transpose16(mut m: [f32x16; KB]) -> [f32x16; KB] {
    transpose_stage::<1>(&mut m);
    transpose_stage::<2>(&mut m);
    transpose_stage::<4>(&mut m);
    transpose_stage::<8>(&mut m);
    m
}

/// The runs `data[start(i) .. start(i) + 16]` for `i < count` as the rows of a block
/// (a run reaching past the data keeps its first `len` elements, the rest zero; rows
/// from `count` on are zero), transposed: lane `i` of vector `q` is element `q` of run
/// `i`. Lanes of a run past `len` may hold neighbouring data; callers ignore them.
#[inline(always)]
fn load_transposed<T: Element>(data: &[T], count: usize, len: usize, start: impl Fn(usize) -> usize) -> [f32x16; KB] {
    transpose16(std::array::from_fn(|i| {
        if i >= count {
            return f32x16::ZERO;
        }
        match <&[T; KB]>::try_from(run(data, start(i), KB)) {
            Ok(src) => T::widen16(src),
            Err(_) => {
                let mut buf = [0.0f32; KB];
                T::widen(run(data, start(i), len.min(KB)), &mut buf);
                f32x16::new(buf)
            }
        }
    }))
}

/// Packs rows `i0 .. i0 + MR` (clipped to the matrix, zero beyond) and columns
/// `p0 .. p0 + kc` of `a` into `dst` (`kc·MR` floats) in the layout of the module docs.
pub(super) fn pack_a<T: Element, const MR: usize>(a: &MatRef<'_, T>, i0: usize, p0: usize, kc: usize, dst: &mut [f32]) {
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
                let t = load_transposed(a.data, KB, n, |q| (p0 + blk * KB + q) * a.col_stride + i0 + r0);
                for (d, v) in d[r0 * KB..].chunks_exact_mut(KB).zip(&t).take(n) {
                    if let Ok(d) = <&mut [f32; KB]>::try_from(d) {
                        *d = v.to_array();
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
fn pack_b<T: Element, const NR: usize>(b: &MatRef<'_, T>, j0: usize, p0: usize, kc: usize, dst: &mut [f32]) {
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
                let t = load_transposed(b.data, n, KB, |c| (j0 + c0 + c) * b.col_stride + p0 + q0);
                for (q, v) in t.iter().enumerate() {
                    if let Ok(d) = <&mut [f32; KB]>::try_from(&mut dst[(q0 + q) * NR + c0..][..KB]) {
                        *d = v.to_array();
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
pub(super) fn pack_b_group<T: Element, const NR: usize>(
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
        for (s, d) in dst.chunks_exact_mut(size).enumerate() {
            pack_b::<T, NR>(b, j0 + s * NR, p0, kc, d);
        }
        return;
    }
    for (s, d) in dst.chunks_exact_mut(size).enumerate() {
        if j0 + (s + 1) * NR > b.cols {
            d.fill(0.0);
        }
    }
    for p in 0..kc {
        let row = (p0 + p) * b.row_stride;
        for (s, d) in dst.chunks_exact_mut(size).enumerate() {
            let j = j0 + s * NR;
            let cols = NR.min(b.cols.saturating_sub(j));
            widen_n::<T, NR>(run(b.data, row + j, cols), &mut d[p * NR..(p + 1) * NR]);
        }
    }
}
