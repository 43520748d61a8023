//! The depthwise convolution and its two backward products, directly in SIMD over the
//! channels: each tap of each output pixel is a vector multiply-add of one input pixel's
//! channels by the tap's filter row (`kh · kw` multiply-adds per output element, too few for
//! a GEMM to pay for its packing).
//!
//! With multiplier `M`, output channel `q = c·M + j` reads input channel `c = q / M`, and
//! the filter `[kh, kw, in, M]` is, per tap, a row of `in · M` values indexed by `q`; for
//! `M > 1` an input pixel is first spread to `in · M` lanes (`x[q / M]`).
//!
//! Reproducibility: the forward pass computes each output element once (split by output
//! rows); the input gradient accumulates image by image, pixels and taps in order; the
//! filter gradient sums one partial per image, in image order.

use crate::conv::ConvGeometry;
use crate::isa::{F32s, Kernel, LANES, Level, Simd};
use crate::parallel;

/// `acc += a · b`, elementwise over `acc.len()` lanes (a fused multiply-add where the level
/// has one; the tail through a padded vector, so it rounds as the body does).
#[inline(always)]
fn mul_add_into<S: Simd>(s: S, acc: &mut [f32], a: &[f32], b: &[f32]) {
    let n = acc.len();
    let (av, at) = a[..n].as_chunks::<LANES>();
    let (bv, bt) = b[..n].as_chunks::<LANES>();
    let (cv, ct) = acc.as_chunks_mut::<LANES>();
    for ((c, a), b) in cv.iter_mut().zip(av).zip(bv) {
        s.load(a).mul_add(s.load(b), s.load(c)).store(c);
    }
    if !ct.is_empty() {
        let mut lanes = [0.0f32; LANES];
        s.load_padded(at, 0.0).mul_add(s.load_padded(bt, 0.0), s.load_padded(ct, 0.0)).store(&mut lanes);
        ct.copy_from_slice(&lanes[..ct.len()]);
    }
}

/// Input pixel `x` (`in` channels) spread to `in · M` lanes: `out[q] = x[q / M]`.
#[inline(always)]
fn spread(x: &[f32], mult: usize, out: &mut [f32]) {
    for (group, &v) in out.chunks_exact_mut(mult).zip(x) {
        group.fill(v);
    }
}

/// Output elements of one parallel piece of the forward pass (at least).
const PIECE: usize = 1 << 14;

/// `y = depthwise_conv2d(x, f)` (every element written).
pub(crate) fn forward(level: Level, g: &ConvGeometry, x: &[f32], f: &[f32], y: &mut [f32]) {
    let row = g.cols.output * g.out_channels;
    if y.is_empty() || row == 0 {
        return;
    }
    let rows_per_piece = PIECE.div_ceil(row);
    let pieces: Vec<&mut [f32]> = y.chunks_mut(rows_per_piece * row).collect();
    parallel::for_each_item(pieces, |i, y| {
        level.dispatch(ForwardRows { g, x, f, row0: i * rows_per_piece, y });
    });
}

/// Output rows `row0 ..` (image-major) of the forward pass into `y`.
struct ForwardRows<'a> {
    g: &'a ConvGeometry,
    x: &'a [f32],
    f: &'a [f32],
    row0: usize,
    y: &'a mut [f32],
}

impl Kernel for ForwardRows<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let ForwardRows { g, x, f, row0, y } = self;
        let (cin, cout, mult) = (g.in_channels, g.out_channels, g.multiplier());
        let mut spread_px = vec![0.0f32; if mult > 1 { cout } else { 0 }];
        for (r, out_row) in y.chunks_exact_mut(g.cols.output * cout).enumerate() {
            let (b, oy) = ((row0 + r) / g.rows.output, (row0 + r) % g.rows.output);
            let (s0, s1) = g.rows.valid_taps(oy);
            for (ox, acc) in out_row.chunks_exact_mut(cout).enumerate() {
                acc.fill(0.0);
                let (t0, t1) = g.cols.valid_taps(ox);
                for ky in s0..s1 {
                    let iy = oy * g.rows.stride + ky * g.rows.dilation - g.rows.pad_before;
                    for kx in t0..t1 {
                        let ix = ox * g.cols.stride + kx * g.cols.dilation - g.cols.pad_before;
                        let px = &x[g.input_index(b, iy, ix)..][..cin];
                        let tap = &f[(ky * g.cols.taps + kx) * cout..][..cout];
                        if mult == 1 {
                            mul_add_into(s, acc, px, tap);
                        } else {
                            spread(px, mult, &mut spread_px);
                            mul_add_into(s, acc, &spread_px, tap);
                        }
                    }
                }
            }
        }
    }
}

/// Whether a backward product is worth splitting over images.
fn split_images(g: &ConvGeometry) -> bool {
    g.batch > 1 && g.output_len().saturating_mul(g.rows.taps * g.cols.taps) >= parallel::PARALLEL_MIN_WORK
}

/// `dx` of `depthwise_conv2d` (every element written).
pub(crate) fn backprop_input(level: Level, g: &ConvGeometry, dy: &[f32], f: &[f32], dx: &mut [f32]) {
    dx.fill(0.0);
    let image = g.rows.input * g.cols.input * g.in_channels;
    if image == 0 || g.output_len() == 0 {
        return;
    }
    let run = |b: usize, dx: &mut [f32]| level.dispatch(InputImage { g, dy, f, b, dx });
    let images: Vec<&mut [f32]> = dx.chunks_mut(image).collect();
    if split_images(g) {
        parallel::for_each_item(images, run);
    } else {
        images.into_iter().enumerate().for_each(|(b, dx)| run(b, dx));
    }
}

/// Image `b`'s input gradient, accumulated into `dx` (zeroed).
struct InputImage<'a> {
    g: &'a ConvGeometry,
    dy: &'a [f32],
    f: &'a [f32],
    b: usize,
    dx: &'a mut [f32],
}

impl Kernel for InputImage<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let InputImage { g, dy, f, b, dx } = self;
        let (cin, cout, mult) = (g.in_channels, g.out_channels, g.multiplier());
        let mut products = vec![0.0f32; if mult > 1 { cout } else { 0 }];
        for oy in 0..g.rows.output {
            let (s0, s1) = g.rows.valid_taps(oy);
            for ox in 0..g.cols.output {
                let (t0, t1) = g.cols.valid_taps(ox);
                let grad = &dy[g.output_index(b, oy, ox)..][..cout];
                for ky in s0..s1 {
                    let iy = oy * g.rows.stride + ky * g.rows.dilation - g.rows.pad_before;
                    for kx in t0..t1 {
                        let ix = ox * g.cols.stride + kx * g.cols.dilation - g.cols.pad_before;
                        let px = &mut dx[g.input_index(0, iy, ix)..][..cin];
                        let tap = &f[(ky * g.cols.taps + kx) * cout..][..cout];
                        if mult == 1 {
                            mul_add_into(s, px, grad, tap);
                        } else {
                            // dx[c] += Σ_j dy[c·M + j] · f[c·M + j], the products in SIMD.
                            products.fill(0.0);
                            mul_add_into(s, &mut products, grad, tap);
                            for (d, group) in px.iter_mut().zip(products.chunks_exact(mult)) {
                                *d += group.iter().sum::<f32>();
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `df` of `depthwise_conv2d` (every element written).
pub(crate) fn backprop_filter(level: Level, g: &ConvGeometry, x: &[f32], dy: &[f32], df: &mut [f32]) {
    df.fill(0.0);
    if g.output_len() == 0 || df.is_empty() {
        return;
    }
    let partial = |b: usize| {
        let mut part = vec![0.0f32; df.len()];
        level.dispatch(FilterImage { g, x, dy, b, df: &mut part });
        part
    };
    let partials =
        if split_images(g) { parallel::map_indices(g.batch, partial) } else { (0..g.batch).map(partial).collect() };
    // In image order: the same sums on any number of threads.
    for p in partials {
        for (d, v) in df.iter_mut().zip(&p) {
            *d += v;
        }
    }
}

/// Image `b`'s filter gradient, accumulated into `df` (zeroed).
struct FilterImage<'a> {
    g: &'a ConvGeometry,
    x: &'a [f32],
    dy: &'a [f32],
    b: usize,
    df: &'a mut [f32],
}

impl Kernel for FilterImage<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let FilterImage { g, x, dy, b, df } = self;
        let (cin, cout, mult) = (g.in_channels, g.out_channels, g.multiplier());
        let mut spread_px = vec![0.0f32; if mult > 1 { cout } else { 0 }];
        for oy in 0..g.rows.output {
            let (s0, s1) = g.rows.valid_taps(oy);
            for ox in 0..g.cols.output {
                let (t0, t1) = g.cols.valid_taps(ox);
                let grad = &dy[g.output_index(b, oy, ox)..][..cout];
                for ky in s0..s1 {
                    let iy = oy * g.rows.stride + ky * g.rows.dilation - g.rows.pad_before;
                    for kx in t0..t1 {
                        let ix = ox * g.cols.stride + kx * g.cols.dilation - g.cols.pad_before;
                        let px = &x[g.input_index(b, iy, ix)..][..cin];
                        let tap = &mut df[(ky * g.cols.taps + kx) * cout..][..cout];
                        if mult == 1 {
                            mul_add_into(s, tap, px, grad);
                        } else {
                            spread(px, mult, &mut spread_px);
                            mul_add_into(s, tap, &spread_px, grad);
                        }
                    }
                }
            }
        }
    }
}
