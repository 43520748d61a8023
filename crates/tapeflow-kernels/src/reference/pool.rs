//! Scalar references for the pooling kernels (`pool/`): every output element computed on
//! its own from its window, in f64, tap by tap with [`AxisWindow::source`], without the
//! kernels' row splitting, vectors or tap ranges. Images are NHWC, `dims = [n, h, w, c]`.

use crate::window::{AxisWindow, Padding};

/// The two axes' windows of a pool, `None` for invalid arguments.
fn windows(dims: [usize; 4], ksize: [usize; 2], strides: [usize; 2], padding: Padding) -> Option<[AxisWindow; 2]> {
    let rows = AxisWindow::new("reference", "height", dims[1], ksize[0], strides[0], 1, padding).ok()?;
    let cols = AxisWindow::new("reference", "width", dims[2], ksize[1], strides[1], 1, padding).ok()?;
    Some([rows, cols])
}

/// Calls `f(output index, input index of each valid tap in scan order)` for every output
/// element.
fn for_each_window(dims: [usize; 4], [rows, cols]: [AxisWindow; 2], mut f: impl FnMut(usize, &[usize])) {
    let [n, _, w, c] = dims;
    let mut sources = Vec::new();
    let mut out = 0;
    for b in 0..n {
        for oh in 0..rows.output {
            for ow in 0..cols.output {
                for ch in 0..c {
                    sources.clear();
                    for th in 0..rows.taps {
                        for tw in 0..cols.taps {
                            if let (Some(ih), Some(iw)) = (rows.source(oh, th), cols.source(ow, tw)) {
                                sources.push(((b * rows.input + ih) * w + iw) * c + ch);
                            }
                        }
                    }
                    f(out, &sources);
                    out += 1;
                }
            }
        }
    }
}

/// The input index each output element of a max pool takes: the first tap, replaced only
/// by a strictly greater one (TensorFlow's rule; a leading NaN wins, a later one never).
pub fn max_pool_argmax(
    x: &[f64],
    dims: [usize; 4],
    ksize: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Option<Vec<usize>> {
    let windows = windows(dims, ksize, strides, padding)?;
    let mut argmax = Vec::new();
    for_each_window(dims, windows, |_, sources| {
        let mut best = sources[0];
        for &s in &sources[1..] {
            if x[best] < x[s] {
                best = s;
            }
        }
        argmax.push(best);
    });
    Some(argmax)
}

/// `tf.nn.max_pool2d`.
pub fn max_pool(
    x: &[f64],
    dims: [usize; 4],
    ksize: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Option<Vec<f64>> {
    Some(max_pool_argmax(x, dims, ksize, strides, padding)?.into_iter().map(|i| x[i]).collect())
}

/// The max pool's gradient: each `g` added at its window's maximum, in output order.
pub fn max_pool_grad(
    x: &[f64],
    dims: [usize; 4],
    g: &[f64],
    ksize: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Option<Vec<f64>> {
    let mut dx = vec![0.0; x.len()];
    for (&i, &g) in max_pool_argmax(x, dims, ksize, strides, padding)?.iter().zip(g) {
        dx[i] += g;
    }
    Some(dx)
}

/// The gradient of the max pool's gradient: `u` (input-shaped) at each window's maximum.
pub fn max_pool_grad_grad(
    x: &[f64],
    dims: [usize; 4],
    u: &[f64],
    ksize: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Option<Vec<f64>> {
    Some(max_pool_argmax(x, dims, ksize, strides, padding)?.into_iter().map(|i| u[i]).collect())
}

/// `tf.nn.avg_pool2d`: each window's mean over its valid elements.
pub fn avg_pool(
    x: &[f64],
    dims: [usize; 4],
    ksize: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    for_each_window(dims, windows(dims, ksize, strides, padding)?, |_, sources| {
        out.push(sources.iter().map(|&i| x[i]).sum::<f64>() / sources.len() as f64);
    });
    Some(out)
}

/// The average pool's gradient: each `g / count` added to every valid element of its window.
pub fn avg_pool_grad(
    dims: [usize; 4],
    g: &[f64],
    ksize: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Option<Vec<f64>> {
    let mut dx = vec![0.0; dims.iter().product()];
    for_each_window(dims, windows(dims, ksize, strides, padding)?, |o, sources| {
        for &i in sources {
            dx[i] += g[o] / sources.len() as f64;
        }
    });
    Some(dx)
}
