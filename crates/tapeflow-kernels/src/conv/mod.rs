//! 2-D convolutions on NHWC images, as `tf.nn` has them: `conv2d` (HWIO filters) with its
//! two backward products (`Conv2DBackpropInput`, which is also `conv2d_transpose`, and
//! `Conv2DBackpropFilter`), and `depthwise_conv2d` with its own two.
//!
//! The geometry of each spatial axis is TensorFlow's SAME/VALID arithmetic
//! ([`AxisWindow`]). The products run as GEMMs over image patches ([`patches`]); the
//! depthwise ones, which do a few multiply-adds per element, run directly in SIMD over the
//! channels ([`depthwise`]). float16 operands are widened to f32, computed in f32 and
//! rounded once. Work is split across rayon by output rows or images, from the shape
//! alone, and every output element is summed in one fixed order: the bits do not depend on
//! the number of threads.

mod depthwise;
mod patches;
#[cfg(test)]
mod tests;

use half::f16;
use tapeflow_dtype::{DType, Error, Result, Shape, Storage, Tensor};

use crate::isa::{self, Level};
use crate::window::{AxisWindow, Padding, count};

/// Strides, padding and dilations of a convolution (height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Steps between windows.
    pub strides: [usize; 2],
    /// SAME or VALID.
    pub padding: Padding,
    /// Steps between taps (`[1, 1]`: contiguous).
    pub dilations: [usize; 2],
}

/// The shape of one convolution: batch, both spatial windows, channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images.
    pub batch: usize,
    /// The height axis.
    pub rows: AxisWindow,
    /// The width axis.
    pub cols: AxisWindow,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (`in · multiplier` for a depthwise convolution).
    pub out_channels: usize,
    /// A depthwise convolution (filters `[kh, kw, in, multiplier]`) rather than a full one
    /// (`[kh, kw, in, out]`).
    pub depthwise: bool,
}

impl ConvGeometry {
    /// The geometry of an NHWC `input` under a `kh × kw` filter, or the window's `Err`
    /// (strides and dilations ≥ 1, VALID windows that fit) naming `op`.
    pub fn new(
        op: &'static str,
        input: [usize; 4],
        taps: [usize; 2],
        out_channels: usize,
        depthwise: bool,
        spec: ConvSpec,
    ) -> Result<Self> {
        let [batch, h, w, in_channels] = input;
        let rows = AxisWindow::new(op, "height", h, taps[0], spec.strides[0], spec.dilations[0], spec.padding)?;
        let cols = AxisWindow::new(op, "width", w, taps[1], spec.strides[1], spec.dilations[1], spec.padding)?;
        // The kernels form these products whether or not any tensor has elements (an empty
        // input [0, 2^40, 2^40, 1], filters [2^62, 2^62, 1, 0]): each must be representable.
        let fits = |dims: &[usize]| dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_some();
        let sizes: [(&str, &[usize]); 4] = [
            ("the patch length kh · kw · in", &[rows.taps, cols.taps, in_channels]),
            ("the output pixels", &[batch, rows.output, cols.output]),
            ("one input image", &[rows.input, cols.input, in_channels]),
            ("one output image", &[rows.output, cols.output, out_channels]),
        ];
        if let Some((what, _)) = sizes.iter().find(|(_, dims)| !fits(dims)) {
            return Err(Error::InvalidArgument {
                op,
                reason: format!(
                    "{what} overflows (input {input:?}, window {taps:?}, output {:?})",
                    [batch, rows.output, cols.output, out_channels]
                ),
            });
        }
        Ok(ConvGeometry { batch, rows, cols, in_channels, out_channels, depthwise })
    }

    /// `[batch, height, width, in]`.
    pub fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.rows.input, self.cols.input, self.in_channels]
    }

    /// `[batch, out height, out width, out]`.
    pub fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.rows.output, self.cols.output, self.out_channels]
    }

    /// `[kh, kw, in, out]`, or `[kh, kw, in, multiplier]` when depthwise.
    pub fn filter_dims(&self) -> [usize; 4] {
        let last = if self.depthwise { self.multiplier() } else { self.out_channels };
        [self.rows.taps, self.cols.taps, self.in_channels, last]
    }

    /// Output channels per input channel of a depthwise convolution.
    pub fn multiplier(&self) -> usize {
        self.out_channels.checked_div(self.in_channels).unwrap_or(0)
    }

    /// Elements of the input (0 when any dimension is, whatever the others).
    pub fn input_len(&self) -> usize {
        count(&self.input_dims())
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        count(&self.output_dims())
    }

    /// Elements of the filter.
    pub fn filter_len(&self) -> usize {
        count(&self.filter_dims())
    }

    /// Output pixels of one image.
    pub(crate) fn output_pixels(&self) -> usize {
        self.rows.output * self.cols.output
    }

    /// Length of one patch, the GEMM's K: `kh · kw · in`.
    pub(crate) fn patch_len(&self) -> usize {
        self.rows.taps * self.cols.taps * self.in_channels
    }

    /// Offset of input pixel `(b, iy, ix)`'s channels.
    #[inline]
    pub fn input_index(&self, b: usize, iy: usize, ix: usize) -> usize {
        ((b * self.rows.input + iy) * self.cols.input + ix) * self.in_channels
    }

    /// Offset of output pixel `(b, oy, ox)`'s channels.
    #[inline]
    pub fn output_index(&self, b: usize, oy: usize, ox: usize) -> usize {
        ((b * self.rows.output + oy) * self.cols.output + ox) * self.out_channels
    }
}

/// `Err` unless `a` and `b` share a float dtype.
fn check_floats<R>(op: &'static str, a: &Tensor<R>, b: &Tensor<R>) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::dtype_mismatch(op, a, b));
    }
    if !a.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, shape: a.shape().clone(), dtype: a.dtype() });
    }
    Ok(())
}

/// The four dims of a rank-4 operand, or an `Err` naming both operands.
fn rank4<R>(op: &'static str, t: &Tensor<R>, a: &Tensor<R>, b: &Tensor<R>, what: &str) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(t.dims()).map_err(|_| {
        Error::shape_mismatch(op, a, b, format!("{what} must have rank 4, not {} (shape {:?})", t.rank(), t.dims()))
    })
}

/// The four dims of a shape argument (`input_shape`, `output_shape`, `filter_shape`).
fn shape4<R>(op: &'static str, shape: &Shape, a: &Tensor<R>, b: &Tensor<R>, what: &str) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(shape.dims())
        .map_err(|_| Error::shape_mismatch(op, a, b, format!("{what} must have 4 dimensions, not {:?}", shape.dims())))
}

/// [`ConvGeometry::new`] for the operands `a` and `b`, whose shapes and dtypes a window
/// error then names too.
#[allow(clippy::too_many_arguments)]
fn geometry<R>(
    op: &'static str,
    a: &Tensor<R>,
    b: &Tensor<R>,
    input: [usize; 4],
    taps: [usize; 2],
    out_channels: usize,
    depthwise: bool,
    spec: ConvSpec,
) -> Result<ConvGeometry> {
    ConvGeometry::new(op, input, taps, out_channels, depthwise, spec).map_err(|e| match e {
        Error::InvalidArgument { reason, .. } => Error::shape_mismatch(op, a, b, reason),
        other => other,
    })
}

/// Runs `kernel(level, a, b, out)` on the f32 values of `a` and `b` (float16 widened,
/// the result rounded once) into a fresh tensor of `out_dims`. The kernel must write every
/// element of `out`.
fn run<R>(
    op: &'static str,
    a: &Tensor<R>,
    b: &Tensor<R>,
    out_dims: [usize; 4],
    kernel: impl FnOnce(Level, &[f32], &[f32], &mut [f32]),
) -> Result<Tensor<R>> {
    let shape = Shape::from(out_dims.to_vec());
    let len = crate::layout::checked_output_len(op, a, &shape)?;
    let level = isa::current();
    let storage = match a.dtype() {
        DType::F32 => {
            let (x, y) = (a.as_slice::<f32>()?, b.as_slice::<f32>()?);
            Storage::for_overwrite::<f32>(len, |out| kernel(level, x, y, out))
        }
        DType::F16 => {
            let widen = |t: &[f16]| {
                let mut wide = vec![0.0f32; t.len()];
                crate::simd::widen_f16(level, t, &mut wide);
                wide
            };
            let (x, y) = (widen(a.as_slice::<f16>()?), widen(b.as_slice::<f16>()?));
            let mut wide = vec![0.0f32; len];
            kernel(level, &x, &y, &mut wide);
            Storage::for_overwrite::<f16>(len, |out| crate::simd::narrow_f16(level, &wide, out))
        }
        dtype => return Err(Error::UnsupportedDType { op, shape: a.shape().clone(), dtype }),
    };
    Tensor::from_storage(storage, shape)
}

/// `tf.nn.conv2d(x, w, strides, padding, dilations)`: `x` NHWC, `w` `[kh, kw, in, out]`.
pub fn conv2d<R>(x: &Tensor<R>, w: &Tensor<R>, spec: ConvSpec) -> Result<Tensor<R>> {
    const OP: &str = "conv2d";
    check_floats(OP, x, w)?;
    let xd = rank4(OP, x, x, w, "the input")?;
    let wd = rank4(OP, w, x, w, "the filters")?;
    if wd[2] != xd[3] {
        return Err(Error::shape_mismatch(
            OP,
            x,
            w,
            format!("the input has {} channels but the filters expect {}", xd[3], wd[2]),
        ));
    }
    let g = geometry(OP, x, w, xd, [wd[0], wd[1]], wd[3], false, spec)?;
    run(OP, x, w, g.output_dims(), |level, x, w, y| patches::forward(level, &g, x, w, y))
}

/// TensorFlow's `Conv2DBackpropInput`: the gradient of `Σ conv2d(x, w) · dy` with
/// respect to an `x` of `input_shape`. As `conv2d_transpose` (its `op` in messages), `dy`
/// is the transposed convolution's input and `input_shape` its `output_shape`: the forward
/// convolution of that shape must give `dy`'s shape.
pub fn conv2d_backprop_input<R>(
    op: &'static str,
    dy: &Tensor<R>,
    w: &Tensor<R>,
    input_shape: &Shape,
    spec: ConvSpec,
) -> Result<Tensor<R>> {
    check_floats(op, dy, w)?;
    let dyd = rank4(op, dy, dy, w, "the input")?;
    let wd = rank4(op, w, dy, w, "the filters")?;
    let xd = shape4(op, input_shape, dy, w, "the output shape")?;
    crate::layout::checked_output_len(op, dy, input_shape)?;
    if xd[3] != wd[2] || dyd[3] != wd[3] {
        return Err(Error::shape_mismatch(
            op,
            dy,
            w,
            format!(
                "filters [kh, kw, {}, {}] need {} output channels (output shape {xd:?}) and {} input channels (input {dyd:?})",
                wd[2], wd[3], wd[2], wd[3]
            ),
        ));
    }
    let g = geometry(op, dy, w, xd, [wd[0], wd[1]], wd[3], false, spec)?;
    if g.output_dims() != dyd {
        return Err(Error::shape_mismatch(
            op,
            dy,
            w,
            format!(
                "the output shape {xd:?} convolves (strides {:?}, {}) to {:?}, not to the input's {dyd:?}",
                spec.strides,
                spec.padding.name(),
                g.output_dims()
            ),
        ));
    }
    run(op, dy, w, xd, |level, dy, w, dx| patches::backprop_input(level, &g, dy, w, dx))
}

/// TensorFlow's `Conv2DBackpropFilter`: the gradient of `Σ conv2d(x, w) · dy` with
/// respect to a `w` of `filter_shape`.
pub fn conv2d_backprop_filter<R>(
    x: &Tensor<R>,
    dy: &Tensor<R>,
    filter_shape: &Shape,
    spec: ConvSpec,
) -> Result<Tensor<R>> {
    const OP: &str = "conv2d_backprop_filter";
    check_floats(OP, x, dy)?;
    let xd = rank4(OP, x, x, dy, "the input")?;
    let dyd = rank4(OP, dy, x, dy, "the output gradient")?;
    let wd = shape4(OP, filter_shape, x, dy, "the filter shape")?;
    if wd[2] != xd[3] {
        return Err(Error::shape_mismatch(
            OP,
            x,
            dy,
            format!("the input has {} channels but the filters {wd:?} expect {}", xd[3], wd[2]),
        ));
    }
    let g = geometry(OP, x, dy, xd, [wd[0], wd[1]], wd[3], false, spec)?;
    if g.output_dims() != dyd {
        return Err(Error::shape_mismatch(
            OP,
            x,
            dy,
            format!("the output gradient must have shape {:?}", g.output_dims()),
        ));
    }
    run(OP, x, dy, wd, |level, x, dy, dw| patches::backprop_filter(level, &g, x, dy, dw))
}

/// `tf.nn.depthwise_conv2d(x, f, strides, padding, dilations)`: `f` `[kh, kw, in, m]`,
/// output channel `c·m + j` is input channel `c` under filter `f[.., c, j]`.
pub fn depthwise_conv2d<R>(x: &Tensor<R>, f: &Tensor<R>, spec: ConvSpec) -> Result<Tensor<R>> {
    const OP: &str = "depthwise_conv2d";
    check_floats(OP, x, f)?;
    let xd = rank4(OP, x, x, f, "the input")?;
    let fd = rank4(OP, f, x, f, "the filter")?;
    if fd[2] != xd[3] {
        return Err(Error::shape_mismatch(
            OP,
            x,
            f,
            format!("the input has {} channels but the filter expects {}", xd[3], fd[2]),
        ));
    }
    let out_channels =
        fd[2].checked_mul(fd[3]).ok_or_else(|| Error::shape_mismatch(OP, x, f, "the output channels overflow"))?;
    let g = geometry(OP, x, f, xd, [fd[0], fd[1]], out_channels, true, spec)?;
    run(OP, x, f, g.output_dims(), |level, x, f, y| depthwise::forward(level, &g, x, f, y))
}

/// The gradient of `Σ depthwise_conv2d(x, f) · dy` with respect to an `x` of `input_shape`
/// (TensorFlow's `DepthwiseConv2dNativeBackpropInput`).
pub fn depthwise_backprop_input<R>(
    dy: &Tensor<R>,
    f: &Tensor<R>,
    input_shape: &Shape,
    spec: ConvSpec,
) -> Result<Tensor<R>> {
    const OP: &str = "depthwise_conv2d_backprop_input";
    check_floats(OP, dy, f)?;
    let dyd = rank4(OP, dy, dy, f, "the output gradient")?;
    let fd = rank4(OP, f, dy, f, "the filter")?;
    let xd = shape4(OP, input_shape, dy, f, "the input shape")?;
    crate::layout::checked_output_len(OP, dy, input_shape)?;
    if xd[3] != fd[2] {
        return Err(Error::shape_mismatch(OP, dy, f, format!("the input shape {xd:?} does not match the filter")));
    }
    let out_channels = fd[2].checked_mul(fd[3]).ok_or_else(|| Error::shape_mismatch(OP, dy, f, "channels overflow"))?;
    let g = geometry(OP, dy, f, xd, [fd[0], fd[1]], out_channels, true, spec)?;
    if g.output_dims() != dyd {
        return Err(Error::shape_mismatch(
            OP,
            dy,
            f,
            format!("the output gradient must have shape {:?}", g.output_dims()),
        ));
    }
    run(OP, dy, f, xd, |level, dy, f, dx| depthwise::backprop_input(level, &g, dy, f, dx))
}

/// The gradient of `Σ depthwise_conv2d(x, f) · dy` with respect to an `f` of
/// `filter_shape` (TensorFlow's `DepthwiseConv2dNativeBackpropFilter`).
pub fn depthwise_backprop_filter<R>(
    x: &Tensor<R>,
    dy: &Tensor<R>,
    filter_shape: &Shape,
    spec: ConvSpec,
) -> Result<Tensor<R>> {
    const OP: &str = "depthwise_conv2d_backprop_filter";
    check_floats(OP, x, dy)?;
    let xd = rank4(OP, x, x, dy, "the input")?;
    let dyd = rank4(OP, dy, x, dy, "the output gradient")?;
    let fd = shape4(OP, filter_shape, x, dy, "the filter shape")?;
    crate::layout::checked_output_len(OP, x, filter_shape)?;
    if fd[2] != xd[3] {
        return Err(Error::shape_mismatch(OP, x, dy, format!("the filter shape {fd:?} does not match the input")));
    }
    let out_channels = fd[2].checked_mul(fd[3]).ok_or_else(|| Error::shape_mismatch(OP, x, dy, "channels overflow"))?;
    let g = geometry(OP, x, dy, xd, [fd[0], fd[1]], out_channels, true, spec)?;
    if g.output_dims() != dyd {
        return Err(Error::shape_mismatch(
            OP,
            x,
            dy,
            format!("the output gradient must have shape {:?}", g.output_dims()),
        ));
    }
    run(OP, x, dy, fd, |level, x, dy, df| depthwise::backprop_filter(level, &g, x, dy, df))
}
