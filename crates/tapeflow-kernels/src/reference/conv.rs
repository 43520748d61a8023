//! Scalar references for the convolutions (`conv/`): every output element summed on its
//! own in f64 straight from the definition, with none of the kernels' patch gathering,
//! GEMM blocking, scatter order or threading.
//!
//! Layouts as TensorFlow's: images NHWC, filters HWIO (`[kh, kw, in, out]`), depthwise
//! filters `[kh, kw, in, multiplier]` (output channel `c·multiplier + m`).

use crate::conv::ConvGeometry;

/// The `(input row, input column)` that output `(oy, ox)`'s tap `(ky, kx)` reads, if any.
fn tap(g: &ConvGeometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    Some((g.rows.source(oy, ky)?, g.cols.source(ox, kx)?))
}

/// Every (image, output row, output column, tap row, tap column, input row, input column)
/// that reads inside the input, in a fixed order.
fn for_each_tap(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize)) {
    for b in 0..g.batch {
        for oy in 0..g.rows.output {
            for ox in 0..g.cols.output {
                for ky in 0..g.rows.taps {
                    for kx in 0..g.cols.taps {
                        if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                            f(b, oy, ox, ky, kx, iy, ix);
                        }
                    }
                }
            }
        }
    }
}

/// `y = conv2d(x, w)`: `y[b, oy, ox, o] = Σ x[b, iy, ix, i] · w[ky, kx, i, o]`.
pub fn conv2d(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (cin, cout) = (g.in_channels, g.out_channels);
    let mut y = vec![0.0f64; g.output_len()];
    for_each_tap(g, |b, oy, ox, ky, kx, iy, ix| {
        for i in 0..cin {
            let xv = f64::from(x[g.input_index(b, iy, ix) + i]);
            for o in 0..cout {
                y[g.output_index(b, oy, ox) + o] += xv * f64::from(w[((ky * g.cols.taps + kx) * cin + i) * cout + o]);
            }
        }
    });
    y.into_iter().map(|v| v as f32).collect()
}

/// The gradient of `Σ conv2d(x, w) · dy` with respect to `x` (TensorFlow's
/// `Conv2DBackpropInput`, which is also `conv2d_transpose`).
pub fn conv2d_backprop_input(g: &ConvGeometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (cin, cout) = (g.in_channels, g.out_channels);
    let mut dx = vec![0.0f64; g.input_len()];
    for_each_tap(g, |b, oy, ox, ky, kx, iy, ix| {
        for i in 0..cin {
            for o in 0..cout {
                dx[g.input_index(b, iy, ix) + i] += f64::from(dy[g.output_index(b, oy, ox) + o])
                    * f64::from(w[((ky * g.cols.taps + kx) * cin + i) * cout + o]);
            }
        }
    });
    dx.into_iter().map(|v| v as f32).collect()
}

/// The gradient of `Σ conv2d(x, w) · dy` with respect to `w` (`Conv2DBackpropFilter`).
pub fn conv2d_backprop_filter(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (cin, cout) = (g.in_channels, g.out_channels);
    let mut dw = vec![0.0f64; g.filter_len()];
    for_each_tap(g, |b, oy, ox, ky, kx, iy, ix| {
        for i in 0..cin {
            for o in 0..cout {
                dw[((ky * g.cols.taps + kx) * cin + i) * cout + o] +=
                    f64::from(x[g.input_index(b, iy, ix) + i]) * f64::from(dy[g.output_index(b, oy, ox) + o]);
            }
        }
    });
    dw.into_iter().map(|v| v as f32).collect()
}

/// `y = depthwise_conv2d(x, f)`: `y[b, oy, ox, c·M + m] = Σ x[b, iy, ix, c] · f[ky, kx, c, m]`.
pub fn depthwise_conv2d(g: &ConvGeometry, x: &[f32], f: &[f32]) -> Vec<f32> {
    let cout = g.out_channels;
    let mult = g.multiplier();
    let mut y = vec![0.0f64; g.output_len()];
    for_each_tap(g, |b, oy, ox, ky, kx, iy, ix| {
        for q in 0..cout {
            y[g.output_index(b, oy, ox) + q] +=
                f64::from(x[g.input_index(b, iy, ix) + q / mult]) * f64::from(f[(ky * g.cols.taps + kx) * cout + q]);
        }
    });
    y.into_iter().map(|v| v as f32).collect()
}

/// The gradient of `Σ depthwise_conv2d(x, f) · dy` with respect to `x`.
pub fn depthwise_backprop_input(g: &ConvGeometry, dy: &[f32], f: &[f32]) -> Vec<f32> {
    let cout = g.out_channels;
    let mult = g.multiplier();
    let mut dx = vec![0.0f64; g.input_len()];
    for_each_tap(g, |b, oy, ox, ky, kx, iy, ix| {
        for q in 0..cout {
            dx[g.input_index(b, iy, ix) + q / mult] +=
                f64::from(dy[g.output_index(b, oy, ox) + q]) * f64::from(f[(ky * g.cols.taps + kx) * cout + q]);
        }
    });
    dx.into_iter().map(|v| v as f32).collect()
}

/// The gradient of `Σ depthwise_conv2d(x, f) · dy` with respect to `f`.
pub fn depthwise_backprop_filter(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let cout = g.out_channels;
    let mult = g.multiplier();
    let mut df = vec![0.0f64; g.filter_len()];
    for_each_tap(g, |b, oy, ox, ky, kx, iy, ix| {
        for q in 0..cout {
            df[(ky * g.cols.taps + kx) * cout + q] +=
                f64::from(x[g.input_index(b, iy, ix) + q / mult]) * f64::from(dy[g.output_index(b, oy, ox) + q]);
        }
    });
    df.into_iter().map(|v| v as f32).collect()
}
