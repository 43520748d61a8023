//! The full convolution and its two backward products as GEMMs over image patches.
//!
//! Row `r` of the patch matrix `P` is output pixel `r` (image, row, column in order) and
//! holds the `kh · kw · in` input values its window reads (tap row, tap column, channel;
//! zeros where the window hangs over the border). HWIO filters are already the row-major
//! `[kh · kw · in, out]` matrix `W`, so
//!
//! - `y = P · W` (forward),
//! - `dW = Pᵀ · dy` (the filter gradient, a correlation of the input with `dy`),
//! - `dx = col2im(dy · Wᵀ)` (the input gradient: each row of `dy · Wᵀ` added back onto the
//!   pixels its window read); at stride 1 instead a forward convolution of `dy` with the
//!   flipped filters ([`flipped`]), which needs no scatter.
//!
//! `P` never exists whole: it is gathered a block of rows at a time into a thread-local
//! buffer of at most [`BLOCK_FLOATS`] values (kept in L2 beside the GEMM's packed panels)
//! and multiplied there by the GEMM on the calling thread; the blocks are what rayon
//! splits. A 1 × 1 window with stride 1 needs no gathering: `P` is the input itself.
//!
//! Reproducibility: each element of `y` is one GEMM dot product over K, whose blocking
//! depends on K alone, so the row blocks do not change it. `dW` sums fixed blocks of rows
//! (from the shape alone) into partial products, added in block order. `dx` is
//! accumulated image by image, each image's rows in ascending order. None of it depends on
//! the number of threads.

use std::cell::RefCell;

use crate::conv::ConvGeometry;
use crate::gemm::{self, KernelShape, MatRef, Tuning};
use crate::isa::{LANES, Level};
use crate::parallel;
use crate::window::AxisWindow;

/// Most values of one gathered block of patches (256 KiB): with the GEMM's packed copy of
/// it, it stays in a core's L2.
const BLOCK_FLOATS: usize = 64 * 1024;

/// Rows of a block of patches of length `k`: a multiple of every micro-kernel's row count
/// (so no block ends in a partial sliver), at least one sliver.
fn block_rows(k: usize) -> usize {
    const SLIVERS: usize = 84; // lcm(14, 28, 6, 3, 12)
    (BLOCK_FLOATS / k.max(1)).max(1).next_multiple_of(SLIVERS).max(SLIVERS)
}

/// Rows of one partial product of the filter gradient: larger than a forward block (each
/// partial costs a `k × out` sum at the end), still a bounded buffer.
fn filter_block_rows(k: usize) -> usize {
    4 * block_rows(k)
}

thread_local! {
    /// The gathered patches of the block this thread is working on.
    static PATCHES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a buffer of `len` floats (contents unspecified): this thread's buffer, or
/// a fresh one when a nested call finds it in use.
fn with_buffer<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    let mut f = Some(f);
    let done = PATCHES.with(|cell| {
        let mut buf = cell.try_borrow_mut().ok()?;
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f.take().map(|f| f(&mut buf[..len]))
    });
    match (done, f) {
        (Some(out), _) => out,
        (None, Some(f)) => f(&mut vec![0.0; len]),
        (None, None) => unreachable!("the closure ran or was left"),
    }
}

/// `c = a · b` on this thread (the blocks are the parallel work).
fn product(a: MatRef<'_, f32>, b: MatRef<'_, f32>, c: &mut [f32]) {
    let n = b.cols();
    let kernel = if n <= LANES { KernelShape::K28x16 } else { KernelShape::for_level(crate::isa::current()) };
    let tuning = Tuning { kernel, inline_below: usize::MAX, ..Tuning::DEFAULT };
    // The views are built from the geometry, so their shapes always agree.
    let done = gemm::gemm_tuned(a, b, c, &tuning);
    debug_assert!(done.is_ok(), "{done:?}");
}

/// Gathers the patches of output pixels `r0 .. r0 + rows` into `dst` (`rows × k`).
fn gather(g: &ConvGeometry, x: &[f32], r0: usize, dst: &mut [f32]) {
    let (cin, kw) = (g.in_channels, g.cols.taps);
    let k = g.patch_len();
    let pixels = g.output_pixels();
    for (j, patch) in dst.chunks_exact_mut(k).enumerate() {
        let r = r0 + j;
        let (b, oy, ox) = (r / pixels, (r % pixels) / g.cols.output, r % g.cols.output);
        let (t0, t1) = g.cols.valid_taps(ox);
        for (ky, row) in patch.chunks_exact_mut(kw * cin).enumerate() {
            let Some(iy) = g.rows.source(oy, ky) else {
                row.fill(0.0);
                continue;
            };
            row[..t0 * cin].fill(0.0);
            row[t1 * cin..].fill(0.0);
            if t0 >= t1 {
                continue;
            }
            let ix0 = ox * g.cols.stride + t0 * g.cols.dilation - g.cols.pad_before;
            let src = g.input_index(b, iy, ix0);
            if g.cols.dilation == 1 {
                // Consecutive taps read consecutive pixels: one copy.
                row[t0 * cin..t1 * cin].copy_from_slice(&x[src..src + (t1 - t0) * cin]);
            } else {
                for (t, dst) in row[t0 * cin..t1 * cin].chunks_exact_mut(cin).enumerate() {
                    let at = src + t * g.cols.dilation * cin;
                    dst.copy_from_slice(&x[at..at + cin]);
                }
            }
        }
    }
}

/// Whether the patch matrix is the input itself (1 × 1 window, stride 1, no padding).
fn patches_are_input(g: &ConvGeometry) -> bool {
    let unit = |a: &AxisWindow| a.taps == 1 && a.stride == 1 && a.pad_before == 0;
    unit(&g.rows) && unit(&g.cols)
}

/// `y = conv2d(x, w)` (every element of `y` written).
pub(crate) fn forward(level: Level, g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    let (m, k, n) = (g.batch * g.output_pixels(), g.patch_len(), g.out_channels);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        y.fill(0.0);
        return;
    }
    // The callers in conv/mod.rs pass slices of exactly the geometry's sizes (x: batch ·
    // input pixels · in channels, w: k × out, y/dy: m × out), checked before any kernel runs,
    // so every view below fits and its `expect` cannot fire.
    let filters = MatRef::row_major(w, k, n).expect("filters are k × out");
    let rows = block_rows(k);
    let cost = k.saturating_mul(n);
    let run = |i: usize, yc: &mut [f32]| {
        level.enter(|| {
            let (r0, count) = (i * rows, yc.len() / n);
            if patches_are_input(g) {
                product(MatRef::row_major(&x[r0 * k..], count, k).expect("rows of x"), filters, yc);
            } else {
                with_buffer(count * k, |p| {
                    gather(g, x, r0, p);
                    product(MatRef::row_major(p, count, k).expect("gathered rows"), filters, yc);
                });
            }
        })
    };
    let blocks: Vec<&mut [f32]> = y.chunks_mut(rows * n).collect();
    if blocks.len() > 1 && m.saturating_mul(cost) >= gemm::INLINE_BELOW {
        parallel::for_each_item(blocks, run);
    } else {
        blocks.into_iter().enumerate().for_each(|(i, yc)| run(i, yc));
    }
}

/// `dw = Pᵀ · dy` (every element of `dw` written).
pub(crate) fn backprop_filter(level: Level, g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (m, k, n) = (g.batch * g.output_pixels(), g.patch_len(), g.out_channels);
    dw.fill(0.0);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // The callers in conv/mod.rs pass slices of exactly the geometry's sizes (x: batch ·
    // input pixels · in channels, w: k × out, y/dy: m × out), checked before any kernel runs,
    // so every view below fits and its `expect` cannot fire.
    let rows = filter_block_rows(k);
    let blocks = m.div_ceil(rows);
    let partial = |i: usize| -> Vec<f32> {
        level.enter(|| {
            let (r0, count) = (i * rows, rows.min(m - i * rows));
            let grads = MatRef::row_major(&dy[r0 * n..], count, n).expect("rows of dy");
            let mut out = vec![0.0f32; k * n];
            if patches_are_input(g) {
                product(MatRef::row_major(&x[r0 * k..], count, k).expect("rows of x").t(), grads, &mut out);
            } else {
                with_buffer(count * k, |p| {
                    gather(g, x, r0, p);
                    product(MatRef::row_major(p, count, k).expect("gathered rows").t(), grads, &mut out);
                });
            }
            out
        })
    };
    let partials = if blocks > 1 && m.saturating_mul(k * n) >= gemm::INLINE_BELOW {
        parallel::map_indices(blocks, partial)
    } else {
        (0..blocks).map(partial).collect()
    };
    // In block order: the same sums on any number of threads.
    for p in partials {
        for (d, v) in dw.iter_mut().zip(&p) {
            *d += v;
        }
    }
}

/// The input gradient of a stride-1 convolution as a forward convolution of `dy`:
/// `dx[i] = Σ_t dy[i + p − t·d] · w[t]` is, with the taps reversed (`t' = k − 1 − t`), a
/// correlation of `dy` padded by `(k − 1)·d − p` before, with the filters flipped and their
/// in/out axes swapped. No scatter: every element of `dx` is one GEMM dot product, at the
/// forward pass's speed. `None` for strides above 1 (their gradient skips input pixels).
fn flipped(g: &ConvGeometry) -> Option<ConvGeometry> {
    let axis = |a: &AxisWindow| {
        let reach = (a.taps - 1) * a.dilation;
        (a.stride == 1 && reach >= a.pad_before).then_some(AxisWindow {
            input: a.output,
            taps: a.taps,
            stride: 1,
            dilation: a.dilation,
            output: a.input,
            pad_before: reach - a.pad_before,
        })
    };
    Some(ConvGeometry {
        batch: g.batch,
        rows: axis(&g.rows)?,
        cols: axis(&g.cols)?,
        in_channels: g.out_channels,
        out_channels: g.in_channels,
        depthwise: false,
    })
}

/// `w[kh − 1 − ky, kw − 1 − kx, i, o]` at `[ky, kx, o, i]`.
fn flip_filters(g: &ConvGeometry, w: &[f32]) -> Vec<f32> {
    let (kh, kw, cin, cout) = (g.rows.taps, g.cols.taps, g.in_channels, g.out_channels);
    let mut out = vec![0.0f32; w.len()];
    for ky in 0..kh {
        for kx in 0..kw {
            let src = &w[((kh - 1 - ky) * kw + (kw - 1 - kx)) * cin * cout..][..cin * cout];
            let dst = &mut out[(ky * kw + kx) * cin * cout..][..cin * cout];
            for (i, row) in src.chunks_exact(cout).enumerate() {
                for (o, &v) in row.iter().enumerate() {
                    dst[o * cin + i] = v;
                }
            }
        }
    }
    out
}

/// `dx = col2im(dy · Wᵀ)`, or the flipped forward convolution at stride 1 (every element
/// of `dx` written).
pub(crate) fn backprop_input(level: Level, g: &ConvGeometry, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    if let Some(flipped) = flipped(g) {
        return forward(level, &flipped, dy, &flip_filters(g, w), dx);
    }
    dx.fill(0.0);
    let (pixels, k, n) = (g.output_pixels(), g.patch_len(), g.out_channels);
    let image = g.rows.input * g.cols.input * g.in_channels;
    if g.batch == 0 || pixels == 0 || k == 0 || image == 0 {
        return;
    }
    // The callers in conv/mod.rs pass slices of exactly the geometry's sizes (x: batch ·
    // input pixels · in channels, w: k × out, y/dy: m × out), checked before any kernel runs,
    // so every view below fits and its `expect` cannot fire.
    let filters_t = MatRef::row_major(w, k, n).expect("filters are k × out").t();
    let rows = block_rows(k);
    let run = |b: usize, dx_image: &mut [f32]| {
        level.enter(|| {
            with_buffer(rows.min(pixels) * k, |cols| {
                for p0 in (0..pixels).step_by(rows) {
                    let count = rows.min(pixels - p0);
                    let grads = MatRef::row_major(&dy[(b * pixels + p0) * n..], count, n).expect("rows of dy");
                    let cols = &mut cols[..count * k];
                    product(grads, filters_t, cols);
                    scatter(g, p0, cols, dx_image);
                }
            })
        })
    };
    let images: Vec<&mut [f32]> = dx.chunks_mut(image).collect();
    if images.len() > 1 && (g.batch * pixels).saturating_mul(k * n) >= gemm::INLINE_BELOW {
        parallel::for_each_item(images, run);
    } else {
        images.into_iter().enumerate().for_each(|(b, d)| run(b, d));
    }
}

/// Adds each row of `cols` (output pixels `p0 ..` of one image) onto the input pixels its
/// window read, taps in order.
fn scatter(g: &ConvGeometry, p0: usize, cols: &[f32], dx_image: &mut [f32]) {
    let (cin, kw) = (g.in_channels, g.cols.taps);
    let k = g.patch_len();
    for (j, patch) in cols.chunks_exact(k).enumerate() {
        let p = p0 + j;
        let (oy, ox) = (p / g.cols.output, p % g.cols.output);
        let (t0, t1) = g.cols.valid_taps(ox);
        let (s0, s1) = g.rows.valid_taps(oy);
        for ky in s0..s1 {
            let iy = oy * g.rows.stride + ky * g.rows.dilation - g.rows.pad_before;
            let row = &patch[ky * kw * cin..(ky + 1) * kw * cin];
            for kx in t0..t1 {
                let ix = ox * g.cols.stride + kx * g.cols.dilation - g.cols.pad_before;
                let at = g.input_index(0, iy, ix);
                for (d, v) in dx_image[at..at + cin].iter_mut().zip(&row[kx * cin..(kx + 1) * cin]) {
                    *d += v;
                }
            }
        }
    }
}
