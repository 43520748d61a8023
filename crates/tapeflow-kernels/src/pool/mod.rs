//! 2-D pooling on NHWC images: `tf.nn.max_pool2d` and `tf.nn.avg_pool2d`, and the kernels
//! of their gradients.
//!
//! The window arithmetic (TensorFlow's `SAME`/`VALID`) is [`AxisWindow`]'s. Channels are
//! contiguous in NHWC, so every kernel runs 16 channels per vector (one pixel of a window
//! at a time) with a scalar loop for the last `C mod 16` channels.
//!
//! Max pooling records, for every output element, which tap of its window won
//! ([`MaxPoolTaps`]): the first maximum in window scan order (row by row), as TensorFlow's
//! `MaxPoolGrad` on CPU finds it (`SpatialMaxPoolWithArgMaxHelper`: the first tap is taken,
//! then a later tap only when it is strictly greater). A NaN as the first tap therefore wins
//! its window and a later NaN never does. Two adjoint kernels carry the gradients to any
//! order: [`max_pool2d_scatter`] adds `g` into the winning positions (the gradient of the
//! pool) and [`max_pool2d_gather`] reads an input-shaped tensor at them (the gradient of the
//! scatter, TensorFlow's `MaxPoolGradGrad`). Average pooling divides each window's sum by
//! its count of valid (unpadded) elements, as TensorFlow does; its gradient
//! [`avg_pool2d_grad`] spreads `g / count` over each window, and the gradient of that is
//! the average pool again.
//!
//! Threads: the forward kernels and the gather split their output by whole output rows; the
//! scatters split their (input-shaped) output by whole input rows, each input row summing
//! its contributions in output order. Boundaries depend only on the sizes, so results are
//! bitwise identical for any thread count.

mod kernels;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tapeflow_dtype::{Error, Result, Shape, Tensor};

use crate::elementwise::{float_storage, float_view};
use crate::isa;
use crate::parallel::{self, CHUNK, PARALLEL_MIN_WORK};
use crate::window::{AxisWindow, Padding, count};

/// The most taps a pooling window may have: tap indices are held exactly in f32 lanes.
const MAX_TAPS: usize = 1 << 24;

/// The geometry of a 2-D pool over NHWC images `[batch, rows.input, cols.input, channels]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Images.
    pub batch: usize,
    /// Channels (the contiguous axis).
    pub channels: usize,
    /// The height axis.
    pub rows: AxisWindow,
    /// The width axis.
    pub cols: AxisWindow,
}

impl PoolGeometry {
    /// The geometry of `op` on `x` (rank 4, float), or an `Err` naming the op, the shape and
    /// the dtype (rank, dtype, window or stride 0, a VALID window larger than the input).
    pub fn new<R>(
        op: &'static str,
        x: &Tensor<R>,
        ksize: [usize; 2],
        strides: [usize; 2],
        padding: Padding,
    ) -> Result<Self> {
        if !x.dtype().is_float() {
            return Err(Error::UnsupportedDType { op, shape: x.shape().clone(), dtype: x.dtype() });
        }
        let with_input = |reason: String| Error::InvalidArgument {
            op,
            reason: format!("{reason} (input {} {}, ksize {ksize:?}, strides {strides:?})", x.shape(), x.dtype()),
        };
        let [batch, height, width, channels] = *x.dims() else {
            return Err(with_input("the input must be NHWC, of rank 4".into()));
        };
        let axis = |name, n, k, s| {
            AxisWindow::new(op, name, n, k, s, 1, padding).map_err(|e| match e {
                Error::InvalidArgument { reason, .. } => with_input(reason),
                other => other,
            })
        };
        // Before the window arithmetic, which a window near usize::MAX would overflow.
        if ksize[0].checked_mul(ksize[1]).is_none_or(|taps| taps > MAX_TAPS) {
            return Err(with_input(format!("a window of more than {MAX_TAPS} elements is not supported")));
        }
        let rows = axis("height", height, ksize[0], strides[0])?;
        let cols = axis("width", width, ksize[1], strides[1])?;
        Ok(PoolGeometry { batch, channels, rows, cols })
    }

    /// `[batch, height, width, channels]` of the input.
    pub fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.rows.input, self.cols.input, self.channels]
    }

    /// `[batch, out_height, out_width, channels]` of the output.
    pub fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.rows.output, self.cols.output, self.channels]
    }

    fn input_len(&self) -> usize {
        count(&self.input_dims())
    }

    fn output_len(&self) -> usize {
        count(&self.output_dims())
    }

    /// Elements of one input image and of one output image.
    fn image_lens(&self) -> (usize, usize) {
        if self.input_len() == 0 {
            // No images (or empty ones): nothing is indexed, whatever the other sizes.
            return (0, 0);
        }
        let [_, h, w, c] = self.input_dims();
        let [_, oh, ow, _] = self.output_dims();
        (count(&[h, w, c]), count(&[oh, ow, c]))
    }

    /// Taps in a (full) window.
    fn taps(&self) -> usize {
        self.rows.taps * self.cols.taps
    }

    /// The output rows whose windows read input row `ih`, with the window row (tap) each
    /// reads it at, in increasing output order.
    fn covering_rows(&self, ih: usize) -> impl Iterator<Item = (usize, usize)> {
        let AxisWindow { taps, stride, pad_before, output, .. } = self.rows;
        let at = ih + pad_before;
        // Output oh reads `at` at tap `at - oh·stride` when that lies in 0..taps.
        let first = (at + 1).saturating_sub(taps).div_ceil(stride);
        let last = (at / stride + 1).min(output);
        (first..last).map(move |oh| (oh, at - oh * stride))
    }
}

/// Which tap of its window each output element of a max pool took (row-major tap index
/// `th · kw + tw`), with the pool's geometry: what the gradient kernels need.
#[derive(Debug, Clone)]
pub struct MaxPoolTaps {
    geometry: PoolGeometry,
    taps: Arc<[i32]>,
}

impl MaxPoolTaps {
    /// The pool's geometry.
    pub fn geometry(&self) -> &PoolGeometry {
        &self.geometry
    }
}

/// Checks that `t` is a float tensor of shape `[lead..., dims]` (any leading axes: a
/// gradient's seed axes, each a further batch of images) and returns its number of
/// `dims`-shaped blocks and its shape.
fn check_operand<R>(op: &'static str, t: &Tensor<R>, dims: [usize; 4], what: &str) -> Result<(usize, Shape)> {
    if !t.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, shape: t.shape().clone(), dtype: t.dtype() });
    }
    let rank = t.rank();
    if rank < 4 || t.dims()[rank - 4..] != dims {
        return Err(Error::InvalidShape {
            op,
            shape: t.shape().clone(),
            dtype: t.dtype(),
            target: dims.iter().map(|&d| d as isize).collect(),
            reason: format!("{what} must have the pool's shape (after any leading axes)"),
        });
    }
    let blocks = if t.num_elements() == 0 { 0 } else { t.dims()[..rank - 4].iter().product() };
    Ok((blocks, t.shape().clone()))
}

/// `shape` with its last four axes replaced by `dims`.
fn with_image_dims(shape: &Shape, dims: [usize; 4]) -> Shape {
    let lead = &shape.dims()[..shape.rank() - 4];
    Shape::new(&[lead, &dims[..]].concat())
}

/// Calls `f(first_row, values, taps)` over pieces of whole rows (`row_len` elements) of two
/// parallel output buffers, on rayon's threads when the work (`values.len() · cost`) is large.
fn for_each_row_pair(
    values: &mut [f32],
    taps: &mut [i32],
    row_len: usize,
    cost: usize,
    f: impl Fn(usize, &mut [f32], &mut [i32]) + Sync + Send,
) {
    if row_len == 0 || values.is_empty() {
        return;
    }
    if values.len().saturating_mul(cost) < PARALLEL_MIN_WORK {
        return f(0, values, taps);
    }
    let rows = (CHUNK / (row_len * cost.max(1))).max(1);
    let pieces: Vec<_> = values.chunks_mut(rows * row_len).zip(taps.chunks_mut(rows * row_len)).collect();
    parallel::for_each_item(pieces, |i, (v, t)| f(i * rows, v, t));
}

/// Calls `f(first_row, piece)` over pieces of whole rows of `dst`, as [`for_each_row_pair`].
fn for_each_rows(dst: &mut [f32], row_len: usize, cost: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if row_len == 0 || dst.is_empty() {
        return;
    }
    if dst.len().saturating_mul(cost) < PARALLEL_MIN_WORK {
        return f(0, dst);
    }
    let rows = (CHUNK / (row_len * cost.max(1))).max(1);
    parallel::for_each_item(dst.chunks_mut(rows * row_len).collect(), |i, piece| f(i * rows, piece));
}

/// Runs `row(level, image, global_row, out_row)` for every output row (`(n, oh)` pairs in
/// order) of an output-shaped buffer, `src` being input-shaped.
fn by_output_rows(
    geometry: &PoolGeometry,
    src: &[f32],
    dst: &mut [f32],
    row: impl Fn(&[f32], usize, &mut [f32]) + Sync + Send,
) {
    let (image_in, _) = geometry.image_lens();
    let row_len = count(&[geometry.cols.output, geometry.channels]);
    let out_h = geometry.rows.output;
    for_each_rows(dst, row_len, geometry.taps(), |first, piece| {
        for (r, out) in piece.chunks_exact_mut(row_len).enumerate() {
            let (n, oh) = ((first + r) / out_h, (first + r) % out_h);
            row(&src[n * image_in..(n + 1) * image_in], oh, out);
        }
    });
}

/// `tf.nn.max_pool2d(x, ksize, strides, padding)` on NHWC `x`, with the taps that won (for
/// the gradient).
pub fn max_pool2d<R>(
    x: &Tensor<R>,
    ksize: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Result<(Tensor<R>, MaxPoolTaps)> {
    let geometry = PoolGeometry::new("max_pool2d", x, ksize, strides, padding)?;
    let src = float_view(x).unwrap_or_default();
    let level = isa::current();
    let (image_in, _) = geometry.image_lens();
    let out_h = geometry.rows.output;
    let row_len = count(&[geometry.cols.output, geometry.channels]);
    let mut taps = vec![0i32; geometry.output_len()];
    let storage = float_storage(x.dtype(), geometry.output_len(), |dst| {
        for_each_row_pair(dst, &mut taps, row_len, geometry.taps(), |first, values, taps| {
            let rows = values.chunks_exact_mut(row_len).zip(taps.chunks_exact_mut(row_len));
            for (r, (out, tap)) in rows.enumerate() {
                let (n, oh) = ((first + r) / out_h, (first + r) % out_h);
                kernels::max_row(level, &src[n * image_in..(n + 1) * image_in], geometry, oh, out, tap);
            }
        });
    });
    let y = Tensor::from_storage(storage, Shape::from(geometry.output_dims()))?;
    Ok((y, MaxPoolTaps { geometry, taps: taps.into() }))
}

/// The gradient of [`max_pool2d`]: `g` (output-shaped) added into the input positions
/// that won their windows (zeros elsewhere), in output order.
pub fn max_pool2d_scatter<R>(taps: &MaxPoolTaps, g: &Tensor<R>) -> Result<Tensor<R>> {
    let pool = taps.geometry;
    let (blocks, shape) = check_operand("max_pool2d_grad", g, pool.output_dims(), "the upstream gradient")?;
    // Leading (seed) axes are further batches of the same images: block b, image n uses
    // the taps of image n.
    let geometry = PoolGeometry { batch: pool.batch * blocks, ..pool };
    let level = isa::current();
    let src = float_view(g).unwrap_or_default();
    let storage = float_storage(g.dtype(), geometry.input_len(), |dst| {
        let (_, image_out) = geometry.image_lens();
        by_input_rows(&geometry, dst, |n, ih, row| {
            let image = n * image_out..(n + 1) * image_out;
            let own = n % pool.batch.max(1) * image_out;
            let own = &taps.taps[own..own + image_out];
            kernels::max_scatter_row(level, &src[image], own, geometry, ih, row);
        });
    });
    Tensor::from_storage(storage, with_image_dims(&shape, pool.input_dims()))
}

/// The gradient of [`max_pool2d_scatter`] (TensorFlow's `MaxPoolGradGrad`): `u`
/// (input-shaped) read at the input position each output element took.
pub fn max_pool2d_gather<R>(taps: &MaxPoolTaps, u: &Tensor<R>) -> Result<Tensor<R>> {
    let pool = taps.geometry;
    let (blocks, shape) = check_operand("max_pool2d_grad_grad", u, pool.input_dims(), "the input")?;
    let geometry = PoolGeometry { batch: pool.batch * blocks, ..pool };
    let level = isa::current();
    let src = float_view(u).unwrap_or_default();
    let (image_in, image_out) = geometry.image_lens();
    let row_len = count(&[geometry.cols.output, geometry.channels]);
    let out_h = geometry.rows.output;
    let storage = float_storage(u.dtype(), geometry.output_len(), |dst| {
        for_each_rows(dst, row_len, geometry.taps(), |first, piece| {
            for (r, out) in piece.chunks_exact_mut(row_len).enumerate() {
                let (n, oh) = ((first + r) / out_h, (first + r) % out_h);
                let at = n % pool.batch.max(1) * image_out + oh * row_len;
                let image = &src[n * image_in..(n + 1) * image_in];
                kernels::max_gather_row(level, image, &taps.taps[at..at + row_len], geometry, oh, out);
            }
        });
    });
    Tensor::from_storage(storage, with_image_dims(&shape, pool.output_dims()))
}

/// Runs `row(n, ih, dst_row)` for every input row of an input-shaped buffer.
fn by_input_rows(geometry: &PoolGeometry, dst: &mut [f32], row: impl Fn(usize, usize, &mut [f32]) + Sync + Send) {
    let row_len = count(&[geometry.cols.input, geometry.channels]);
    let height = geometry.rows.input;
    // Each input element takes contributions from about taps / stride² windows.
    let cost = geometry.taps().div_ceil(geometry.rows.stride.saturating_mul(geometry.cols.stride)).max(1);
    for_each_rows(dst, row_len, cost, |first, piece| {
        for (r, out) in piece.chunks_exact_mut(row_len).enumerate() {
            let (n, ih) = ((first + r) / height, (first + r) % height);
            row(n, ih, out);
        }
    });
}

/// `tf.nn.avg_pool2d(x, ksize, strides, padding)` on NHWC `x`: each window's sum over its
/// valid elements divided by their count.
pub fn avg_pool2d<R>(
    x: &Tensor<R>,
    ksize: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Result<(Tensor<R>, PoolGeometry)> {
    let geometry = PoolGeometry::new("avg_pool2d", x, ksize, strides, padding)?;
    Ok((avg_pool2d_with(&geometry, x)?, geometry))
}

/// [`avg_pool2d`] of the pool `geometry` (the gradient of [`avg_pool2d_grad`]).
pub fn avg_pool2d_with<R>(pool: &PoolGeometry, x: &Tensor<R>) -> Result<Tensor<R>> {
    let (blocks, shape) = check_operand("avg_pool2d", x, pool.input_dims(), "the input")?;
    let geometry = PoolGeometry { batch: pool.batch * blocks, ..*pool };
    let level = isa::current();
    let src = float_view(x).unwrap_or_default();
    let storage = float_storage(x.dtype(), geometry.output_len(), |dst| {
        by_output_rows(&geometry, &src, dst, |image, oh, out| kernels::avg_row(level, image, geometry, oh, out));
    });
    Tensor::from_storage(storage, with_image_dims(&shape, pool.output_dims()))
}

/// The gradient of [`avg_pool2d`] (TensorFlow's `AvgPoolGrad`): each output element's
/// `g / count` added into every valid element of its window, in output order.
pub fn avg_pool2d_grad<R>(pool: &PoolGeometry, g: &Tensor<R>) -> Result<Tensor<R>> {
    let (blocks, shape) = check_operand("avg_pool2d_grad", g, pool.output_dims(), "the upstream gradient")?;
    let geometry = PoolGeometry { batch: pool.batch * blocks, ..*pool };
    let level = isa::current();
    let src = float_view(g).unwrap_or_default();
    // g / count once per output element (what every window element receives).
    let mut scaled = vec![0.0f32; src.len()];
    let row_len = count(&[geometry.cols.output, geometry.channels]);
    for_each_rows(&mut scaled, row_len, 1, |first, piece| {
        for (r, out) in piece.chunks_exact_mut(row_len).enumerate() {
            let oh = (first + r) % geometry.rows.output;
            let at = (first + r) * row_len;
            kernels::divide_by_counts(level, &src[at..at + row_len], geometry, oh, out);
        }
    });
    let storage = float_storage(g.dtype(), geometry.input_len(), |dst| {
        let (_, image_out) = geometry.image_lens();
        by_input_rows(&geometry, dst, |n, ih, row| {
            kernels::avg_scatter_row(level, &scaled[n * image_out..(n + 1) * image_out], geometry, ih, row);
        });
    });
    Tensor::from_storage(storage, with_image_dims(&shape, pool.input_dims()))
}
