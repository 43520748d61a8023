//! The pooling kernels, one output (or input) row at a time, 16 channels per vector.
//!
//! Every body reads a window pixel by pixel (the channels of a pixel are contiguous); the
//! last `C mod 16` channels run the same steps in scalar code. Comparisons, selections,
//! additions and divisions are exactly rounded, so every level gives the same bits.

use super::PoolGeometry;
use crate::isa::{F32s, I32s, LANES, Mask, Simd, kernel};

/// The channels of input pixel `(ih, iw)` of one image.
#[inline(always)]
fn pixel<'a>(image: &'a [f32], g: &PoolGeometry, ih: usize, iw: usize) -> &'a [f32] {
    let at = (ih * g.cols.input + iw) * g.channels;
    &image[at..at + g.channels]
}

/// The input row read by output row `oh` at window row `th` (a valid tap).
#[inline(always)]
fn input_row(g: &PoolGeometry, oh: usize, th: usize) -> usize {
    oh * g.rows.stride + th - g.rows.pad_before
}

/// The input column read by output column `ow` at window column `tw` (a valid tap).
#[inline(always)]
fn input_col(g: &PoolGeometry, ow: usize, tw: usize) -> usize {
    ow * g.cols.stride + tw - g.cols.pad_before
}

/// The row-major index of tap `(th, tw)` in a window.
#[inline(always)]
fn tap_index(g: &PoolGeometry, th: usize, tw: usize) -> usize {
    th * g.cols.taps + tw
}

kernel! {
    /// Output row `oh` of a max pool of one image: each window's first maximum (in scan
    /// order) into `out`, its tap index into `taps` (both `out_w · C`).
    pub(super) fn max_row<'a>(image: &'a [f32], g: PoolGeometry, oh: usize, out: &'a mut [f32], taps: &'a mut [i32]) => max_row_body;
}

#[inline(always)]
fn max_row_body<S: Simd>(s: S, image: &[f32], g: PoolGeometry, oh: usize, out: &mut [f32], taps: &mut [i32]) {
    let c = g.channels;
    let (th0, th1) = g.rows.valid_taps(oh);
    for ow in 0..g.cols.output {
        let (tw0, tw1) = g.cols.valid_taps(ow);
        let (out_blocks, out_tail) = out[ow * c..(ow + 1) * c].as_chunks_mut::<LANES>();
        let (tap_blocks, tap_tail) = taps[ow * c..(ow + 1) * c].as_chunks_mut::<LANES>();
        for (b, (out, tap_out)) in out_blocks.iter_mut().zip(tap_blocks).enumerate() {
            let mut best = s.splat(f32::NEG_INFINITY);
            let mut arg = s.zero();
            let mut first = true;
            for th in th0..th1 {
                for tw in tw0..tw1 {
                    let px = pixel(image, &g, input_row(&g, oh, th), input_col(&g, ow, tw));
                    let v = s.load(&px.as_chunks::<LANES>().0[b]);
                    let tap = s.splat(tap_index(&g, th, tw) as f32);
                    if first {
                        (best, arg, first) = (v, tap, false);
                    } else {
                        // Only a strictly greater value replaces the running maximum.
                        let greater = best.simd_lt(v);
                        best = greater.select(v, best);
                        arg = greater.select(tap, arg);
                    }
                }
            }
            best.store(out);
            *tap_out = arg.round_int().to_array();
        }
        let tail = c - out_tail.len();
        for (j, (out, tap_out)) in out_tail.iter_mut().zip(tap_tail).enumerate() {
            let (mut best, mut arg, mut first) = (f32::NEG_INFINITY, 0, true);
            for th in th0..th1 {
                for tw in tw0..tw1 {
                    let v = pixel(image, &g, input_row(&g, oh, th), input_col(&g, ow, tw))[tail + j];
                    if first || best < v {
                        (best, arg, first) = (v, tap_index(&g, th, tw), false);
                    }
                }
            }
            (*out, *tap_out) = (best, arg as i32);
        }
    }
}

kernel! {
    /// Input row `ih` (`W · C`) of the max-pool gradient of one image: the upstream `grad`
    /// (output-shaped) of every window whose winning tap is in this row, added in output order.
    pub(super) fn max_scatter_row<'a>(grad: &'a [f32], taps: &'a [i32], g: PoolGeometry, ih: usize, row: &'a mut [f32]) => max_scatter_row_body;
}

#[inline(always)]
fn max_scatter_row_body<S: Simd>(s: S, grad: &[f32], taps: &[i32], g: PoolGeometry, ih: usize, row: &mut [f32]) {
    let c = g.channels;
    row.fill(0.0);
    for (oh, th) in g.covering_rows(ih) {
        for ow in 0..g.cols.output {
            let at = (oh * g.cols.output + ow) * c;
            let (grad_px, tap_px) = (&grad[at..at + c], &taps[at..at + c]);
            let (grad_blocks, grad_tail) = grad_px.as_chunks::<LANES>();
            let (tap_blocks, tap_tail) = tap_px.as_chunks::<LANES>();
            let (tw0, tw1) = g.cols.valid_taps(ow);
            for tw in tw0..tw1 {
                let iw = input_col(&g, ow, tw);
                let tap = tap_index(&g, th, tw) as i32;
                let (dst_blocks, dst_tail) = row[iw * c..(iw + 1) * c].as_chunks_mut::<LANES>();
                for ((dst, gv), tv) in dst_blocks.iter_mut().zip(grad_blocks).zip(tap_blocks) {
                    let won = s.load_i(tv).simd_eq(s.splat_i(tap));
                    if won.any() {
                        // Adding +0 in the other lanes changes nothing: the sums start at +0,
                        // so no lane holds -0.
                        (s.load(dst) + won.select(s.load(gv), s.zero())).store(dst);
                    }
                }
                for ((dst, &gv), &tv) in dst_tail.iter_mut().zip(grad_tail).zip(tap_tail) {
                    if tv == tap {
                        *dst += gv;
                    }
                }
            }
        }
    }
}

kernel! {
    /// Output row `oh` of the max-pool gradient's gradient of one image: `u` (input-shaped)
    /// read at the tap each output element took (`taps`, this row's `out_w · C`).
    pub(super) fn max_gather_row<'a>(u: &'a [f32], taps: &'a [i32], g: PoolGeometry, oh: usize, out: &'a mut [f32]) => max_gather_row_body;
}

#[inline(always)]
fn max_gather_row_body<S: Simd>(s: S, u: &[f32], taps: &[i32], g: PoolGeometry, oh: usize, out: &mut [f32]) {
    let c = g.channels;
    let (th0, th1) = g.rows.valid_taps(oh);
    for ow in 0..g.cols.output {
        let (tw0, tw1) = g.cols.valid_taps(ow);
        let (out_blocks, out_tail) = out[ow * c..(ow + 1) * c].as_chunks_mut::<LANES>();
        let (tap_blocks, tap_tail) = taps[ow * c..(ow + 1) * c].as_chunks::<LANES>();
        for (b, (out, tv)) in out_blocks.iter_mut().zip(tap_blocks).enumerate() {
            let tv = s.load_i(tv);
            let mut acc = s.zero();
            for th in th0..th1 {
                for tw in tw0..tw1 {
                    let px = pixel(u, &g, input_row(&g, oh, th), input_col(&g, ow, tw));
                    let won = tv.simd_eq(s.splat_i(tap_index(&g, th, tw) as i32));
                    acc = won.select(s.load(&px.as_chunks::<LANES>().0[b]), acc);
                }
            }
            acc.store(out);
        }
        let tail = c - out_tail.len();
        for (j, (out, &tv)) in out_tail.iter_mut().zip(tap_tail).enumerate() {
            *out = 0.0;
            for th in th0..th1 {
                for tw in tw0..tw1 {
                    if tv == tap_index(&g, th, tw) as i32 {
                        *out = pixel(u, &g, input_row(&g, oh, th), input_col(&g, ow, tw))[tail + j];
                    }
                }
            }
        }
    }
}

/// Valid elements of output `(oh, ow)`'s window.
#[inline(always)]
fn window_count(g: &PoolGeometry, oh: usize, ow: usize) -> f32 {
    let ((th0, th1), (tw0, tw1)) = (g.rows.valid_taps(oh), g.cols.valid_taps(ow));
    ((th1 - th0) * (tw1 - tw0)) as f32
}

kernel! {
    /// Output row `oh` of an average pool of one image: each window's sum over its valid
    /// elements (in scan order) divided by their count.
    pub(super) fn avg_row<'a>(image: &'a [f32], g: PoolGeometry, oh: usize, out: &'a mut [f32]) => avg_row_body;
}

#[inline(always)]
fn avg_row_body<S: Simd>(s: S, image: &[f32], g: PoolGeometry, oh: usize, out: &mut [f32]) {
    let c = g.channels;
    let (th0, th1) = g.rows.valid_taps(oh);
    for ow in 0..g.cols.output {
        let (tw0, tw1) = g.cols.valid_taps(ow);
        let count = window_count(&g, oh, ow);
        let (out_blocks, out_tail) = out[ow * c..(ow + 1) * c].as_chunks_mut::<LANES>();
        for (b, out) in out_blocks.iter_mut().enumerate() {
            let mut acc = s.zero();
            for th in th0..th1 {
                for tw in tw0..tw1 {
                    let px = pixel(image, &g, input_row(&g, oh, th), input_col(&g, ow, tw));
                    acc += s.load(&px.as_chunks::<LANES>().0[b]);
                }
            }
            (acc / s.splat(count)).store(out);
        }
        let tail = c - out_tail.len();
        for (j, out) in out_tail.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for th in th0..th1 {
                for tw in tw0..tw1 {
                    acc += pixel(image, &g, input_row(&g, oh, th), input_col(&g, ow, tw))[tail + j];
                }
            }
            *out = acc / count;
        }
    }
}

kernel! {
    /// Output row `oh`: `out = grad / count` of each element's window.
    pub(super) fn divide_by_counts<'a>(grad: &'a [f32], g: PoolGeometry, oh: usize, out: &'a mut [f32]) => divide_by_counts_body;
}

#[inline(always)]
fn divide_by_counts_body<S: Simd>(s: S, grad: &[f32], g: PoolGeometry, oh: usize, out: &mut [f32]) {
    let c = g.channels;
    for ow in 0..g.cols.output {
        let count = window_count(&g, oh, ow);
        let (src_blocks, src_tail) = grad[ow * c..(ow + 1) * c].as_chunks::<LANES>();
        let (out_blocks, out_tail) = out[ow * c..(ow + 1) * c].as_chunks_mut::<LANES>();
        for (out, v) in out_blocks.iter_mut().zip(src_blocks) {
            (s.load(v) / s.splat(count)).store(out);
        }
        for (out, &v) in out_tail.iter_mut().zip(src_tail) {
            *out = v / count;
        }
    }
}

kernel! {
    /// Input row `ih` (`W · C`) of the average-pool gradient of one image: `scaled`
    /// (`g / count`, output-shaped) of every window reading this row, added in output order.
    pub(super) fn avg_scatter_row<'a>(scaled: &'a [f32], g: PoolGeometry, ih: usize, row: &'a mut [f32]) => avg_scatter_row_body;
}

#[inline(always)]
fn avg_scatter_row_body<S: Simd>(s: S, scaled: &[f32], g: PoolGeometry, ih: usize, row: &mut [f32]) {
    let c = g.channels;
    row.fill(0.0);
    for (oh, _) in g.covering_rows(ih) {
        for ow in 0..g.cols.output {
            let at = (oh * g.cols.output + ow) * c;
            let (src_blocks, src_tail) = scaled[at..at + c].as_chunks::<LANES>();
            let (tw0, tw1) = g.cols.valid_taps(ow);
            for tw in tw0..tw1 {
                let iw = input_col(&g, ow, tw);
                let (dst_blocks, dst_tail) = row[iw * c..(iw + 1) * c].as_chunks_mut::<LANES>();
                for (dst, v) in dst_blocks.iter_mut().zip(src_blocks) {
                    (s.load(dst) + s.load(v)).store(dst);
                }
                for (dst, &v) in dst_tail.iter_mut().zip(src_tail) {
                    *dst += v;
                }
            }
        }
    }
}
