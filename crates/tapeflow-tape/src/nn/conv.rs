//! Convolutions: `conv2d`, `conv2d_transpose`, `depthwise_conv2d`, each recorded with its
//! derivative.
//!
//! Every convolution here is linear in each operand, so its derivatives are the other
//! convolutions of the family, recorded like any op (second order and beyond work):
//!
//! | op, `out = op(a, b)`                 | d a (from upstream `u`)         | d b                                |
//! |--------------------------------------|---------------------------------|------------------------------------|
//! | `conv(x, w)`                         | `backprop_input(u, w)`          | `backprop_filter(x, u)`            |
//! | `backprop_input(dy, w)` (= transpose) | `conv(u, w)`                    | `backprop_filter(u, dy)`           |
//! | `backprop_filter(x, dy)`             | `backprop_input(dy, u)`         | `conv(x, u)`                       |
//!
//! and the same three for the depthwise family. Each row follows from
//! `⟨conv(x, w), dy⟩ = ⟨x, backprop_input(dy, w)⟩ = ⟨w, backprop_filter(x, dy)⟩`.
//!
//! Each op is linear in each operand, so its JVP is the sum of the op with one operand
//! replaced by its tangent: `conv(tₓ, w) + conv(x, t_w)`, and the same for the others.
//!
//! Batched (a leading seed axis on the upstream gradient): where the upstream is the image
//! operand, the seeds fold into the batch axis (one convolution of `R·N` images); where it
//! is the filter, each seed is its own convolution.

use std::sync::Arc;

use tapeflow_dtype::{Result, Shape};
use tapeflow_kernels::Padding;
use tapeflow_kernels::conv::{self as kernels, ConvSpec};

use crate::context::record_batchable;
use crate::forward::sum_of_terms;
use crate::ops::TensorMath;
use crate::ops::shape::{reshape_to, stack};
use crate::runtime::Tensor;
use crate::trace;

/// `tf.nn.conv2d(input, filters, strides, padding, dilations)`: `input` NHWC `[n, h, w, in]`,
/// `filters` `[kh, kw, in, out]`, TensorFlow's SAME/VALID padding; `[n, oh, ow, out]`.
pub fn conv2d(
    input: impl TensorMath,
    filters: impl TensorMath,
    strides: [usize; 2],
    padding: Padding,
    dilations: [usize; 2],
) -> Result<Tensor> {
    conv(&input.to_tensor(), &filters.to_tensor(), ConvSpec { strides, padding, dilations })
}

/// `tf.nn.conv2d_transpose(input, filters, output_shape, strides, padding)`: the gradient of
/// a `conv2d` of an `output_shape` image with respect to that image (TensorFlow's
/// `Conv2DBackpropInput`); `filters` `[kh, kw, out, in]`. The convolution of
/// `output_shape` with these strides and padding must give `input`'s shape.
pub fn conv2d_transpose(
    input: impl TensorMath,
    filters: impl TensorMath,
    output_shape: impl Into<Shape>,
    strides: [usize; 2],
    padding: Padding,
) -> Result<Tensor> {
    let spec = ConvSpec { strides, padding, dilations: [1, 1] };
    backprop_input("conv2d_transpose", &input.to_tensor(), &filters.to_tensor(), &output_shape.into(), spec)
}

/// `tf.nn.depthwise_conv2d(input, filter, strides, padding)`: `filter` `[kh, kw, in, m]`;
/// output channel `c·m + j` is input channel `c` convolved with `filter[.., c, j]`.
pub fn depthwise_conv2d(
    input: impl TensorMath,
    filter: impl TensorMath,
    strides: [usize; 2],
    padding: Padding,
) -> Result<Tensor> {
    depthwise(&input.to_tensor(), &filter.to_tensor(), ConvSpec { strides, padding, dilations: [1, 1] })
}

/// `[R, n, …]` as `[R·n, …]`.
fn fold_seeds(t: &Tensor) -> Result<Tensor> {
    let d = t.dims();
    let mut dims = vec![d[0] * d[1]];
    dims.extend_from_slice(&d[2..]);
    reshape_to(t, dims)
}

/// `[R·n, …]` back to `[R, n, …]`.
fn unfold_seeds(t: &Tensor, seeds: usize) -> Result<Tensor> {
    let d = t.dims();
    let mut dims = vec![seeds, d[0].checked_div(seeds).unwrap_or(0)];
    dims.extend_from_slice(&d[1..]);
    reshape_to(t, dims)
}

/// `f` of each seed of `g` (`[R, …]`), stacked on a new leading axis.
fn per_seed(g: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let each = g.unstack(0)?.iter().map(f).collect::<Result<Vec<_>>>()?;
    stack(&each, 0)
}

/// `shape` with the batch axis multiplied by `seeds`.
fn times_seeds(shape: &Shape, seeds: usize) -> Shape {
    let mut dims = shape.dims().to_vec();
    dims[0] *= seeds;
    Shape::from(dims)
}

/// `backprop_input(u, w)` for an upstream `u` of the image operand, folding seeds.
fn image_grad_of_conv(u: &Tensor, w: &Tensor, image: &Shape, spec: ConvSpec, batched: bool) -> Result<Tensor> {
    if !batched {
        return backprop_input("conv2d_backprop_input", u, w, image, spec);
    }
    let seeds = u.dims()[0];
    let out = backprop_input("conv2d_backprop_input", &fold_seeds(u)?, w, &times_seeds(image, seeds), spec)?;
    unfold_seeds(&out, seeds)
}

/// `conv(u, w)` for an upstream `u` of the image operand, folding seeds.
fn conv_of_upstream(u: &Tensor, w: &Tensor, spec: ConvSpec, batched: bool) -> Result<Tensor> {
    if !batched {
        return conv(u, w, spec);
    }
    unfold_seeds(&conv(&fold_seeds(u)?, w, spec)?, u.dims()[0])
}

/// The recorded `conv2d`.
fn conv(x: &Tensor, w: &Tensor, spec: ConvSpec) -> Result<Tensor> {
    let y = trace::op("conv2d", [x, w], move |[x, w]| kernels::conv2d(x, w, spec))?;
    let jvp = |t: &[Option<Tensor>]| sum_of_terms(t, |i, t| if i == 0 { conv(t, w, spec) } else { conv(x, t, spec) });
    record_batchable(&[x, w], &y, jvp, || {
        let (x, w) = (x.clone(), w.clone());
        Arc::new(move |g: &Tensor, needs: &[bool], batched: bool| {
            let dx = needs[0].then(|| image_grad_of_conv(g, &w, x.shape(), spec, batched)).transpose()?;
            let dw = needs[1]
                .then(|| {
                    if batched {
                        per_seed(g, |g| backprop_filter(&x, g, w.shape(), spec))
                    } else {
                        backprop_filter(&x, g, w.shape(), spec)
                    }
                })
                .transpose()?;
            Ok(vec![dx, dw])
        })
    });
    Ok(y)
}

/// The recorded `Conv2DBackpropInput` (`op` names it in errors: `conv2d_transpose` when
/// called as that).
fn backprop_input(op: &'static str, dy: &Tensor, w: &Tensor, image: &Shape, spec: ConvSpec) -> Result<Tensor> {
    let dx = {
        let image = image.clone();
        trace::op(op, [dy, w], move |[dy, w]| kernels::conv2d_backprop_input(op, dy, w, &image, spec))?
    };
    let jvp = |t: &[Option<Tensor>]| {
        sum_of_terms(t, |i, t| {
            if i == 0 { backprop_input(op, t, w, image, spec) } else { backprop_input(op, dy, t, image, spec) }
        })
    };
    record_batchable(&[dy, w], &dx, jvp, || {
        let (dy, w) = (dy.clone(), w.clone());
        Arc::new(move |u: &Tensor, needs: &[bool], batched: bool| {
            let d_dy = needs[0].then(|| conv_of_upstream(u, &w, spec, batched)).transpose()?;
            let d_w = needs[1]
                .then(|| {
                    if batched {
                        per_seed(u, |u| backprop_filter(u, &dy, w.shape(), spec))
                    } else {
                        backprop_filter(u, &dy, w.shape(), spec)
                    }
                })
                .transpose()?;
            Ok(vec![d_dy, d_w])
        })
    });
    Ok(dx)
}

/// The recorded `Conv2DBackpropFilter`.
fn backprop_filter(x: &Tensor, dy: &Tensor, filter: &Shape, spec: ConvSpec) -> Result<Tensor> {
    let dw = {
        let filter = filter.clone();
        trace::op("conv2d_backprop_filter", [x, dy], move |[x, dy]| {
            kernels::conv2d_backprop_filter(x, dy, &filter, spec)
        })?
    };
    let jvp =
        |t: &[Option<Tensor>]| {
            sum_of_terms(t, |i, t| {
                if i == 0 { backprop_filter(t, dy, filter, spec) } else { backprop_filter(x, t, filter, spec) }
            })
        };
    record_batchable(&[x, dy], &dw, jvp, || {
        let (x, dy) = (x.clone(), dy.clone());
        Arc::new(move |v: &Tensor, needs: &[bool], batched: bool| {
            let each = |v: &Tensor| -> Result<(Option<Tensor>, Option<Tensor>)> {
                let d_x = needs[0].then(|| backprop_input("conv2d_backprop_input", &dy, v, x.shape(), spec));
                let d_dy = needs[1].then(|| conv(&x, v, spec));
                Ok((d_x.transpose()?, d_dy.transpose()?))
            };
            if !batched {
                let (d_x, d_dy) = each(v)?;
                return Ok(vec![d_x, d_dy]);
            }
            let d_x = needs[0]
                .then(|| per_seed(v, |v| backprop_input("conv2d_backprop_input", &dy, v, x.shape(), spec)))
                .transpose()?;
            let d_dy = needs[1].then(|| per_seed(v, |v| conv(&x, v, spec))).transpose()?;
            Ok(vec![d_x, d_dy])
        })
    });
    Ok(dw)
}

/// The recorded `depthwise_conv2d`.
fn depthwise(x: &Tensor, f: &Tensor, spec: ConvSpec) -> Result<Tensor> {
    let y = trace::op("depthwise_conv2d", [x, f], move |[x, f]| kernels::depthwise_conv2d(x, f, spec))?;
    let jvp = |t: &[Option<Tensor>]| {
        sum_of_terms(t, |i, t| if i == 0 { depthwise(t, f, spec) } else { depthwise(x, t, spec) })
    };
    record_batchable(&[x, f], &y, jvp, || {
        let (x, f) = (x.clone(), f.clone());
        Arc::new(move |g: &Tensor, needs: &[bool], batched: bool| {
            let dx = needs[0]
                .then(|| {
                    if batched {
                        let seeds = g.dims()[0];
                        let image = times_seeds(x.shape(), seeds);
                        unfold_seeds(&depthwise_input(&fold_seeds(g)?, &f, &image, spec)?, seeds)
                    } else {
                        depthwise_input(g, &f, x.shape(), spec)
                    }
                })
                .transpose()?;
            let df = needs[1]
                .then(|| {
                    if batched {
                        per_seed(g, |g| depthwise_filter(&x, g, f.shape(), spec))
                    } else {
                        depthwise_filter(&x, g, f.shape(), spec)
                    }
                })
                .transpose()?;
            Ok(vec![dx, df])
        })
    });
    Ok(y)
}

/// The recorded `DepthwiseConv2dNativeBackpropInput`.
fn depthwise_input(dy: &Tensor, f: &Tensor, image: &Shape, spec: ConvSpec) -> Result<Tensor> {
    let dx = {
        let image = image.clone();
        trace::op("depthwise_conv2d_backprop_input", [dy, f], move |[dy, f]| {
            kernels::depthwise_backprop_input(dy, f, &image, spec)
        })?
    };
    let jvp =
        |t: &[Option<Tensor>]| {
            sum_of_terms(t, |i, t| {
                if i == 0 { depthwise_input(t, f, image, spec) } else { depthwise_input(dy, t, image, spec) }
            })
        };
    record_batchable(&[dy, f], &dx, jvp, || {
        let (dy, f) = (dy.clone(), f.clone());
        Arc::new(move |u: &Tensor, needs: &[bool], batched: bool| {
            let d_dy = needs[0]
                .then(|| {
                    if batched {
                        unfold_seeds(&depthwise(&fold_seeds(u)?, &f, spec)?, u.dims()[0])
                    } else {
                        depthwise(u, &f, spec)
                    }
                })
                .transpose()?;
            let d_f = needs[1]
                .then(|| {
                    if batched {
                        per_seed(u, |u| depthwise_filter(u, &dy, f.shape(), spec))
                    } else {
                        depthwise_filter(u, &dy, f.shape(), spec)
                    }
                })
                .transpose()?;
            Ok(vec![d_dy, d_f])
        })
    });
    Ok(dx)
}

/// The recorded `DepthwiseConv2dNativeBackpropFilter`.
fn depthwise_filter(x: &Tensor, dy: &Tensor, filter: &Shape, spec: ConvSpec) -> Result<Tensor> {
    let df = {
        let filter = filter.clone();
        trace::op("depthwise_conv2d_backprop_filter", [x, dy], move |[x, dy]| {
            kernels::depthwise_backprop_filter(x, dy, &filter, spec)
        })?
    };
    let jvp = |t: &[Option<Tensor>]| {
        sum_of_terms(t, |i, t| {
            if i == 0 { depthwise_filter(t, dy, filter, spec) } else { depthwise_filter(x, t, filter, spec) }
        })
    };
    record_batchable(&[x, dy], &df, jvp, || {
        let (x, dy) = (x.clone(), dy.clone());
        Arc::new(move |v: &Tensor, needs: &[bool], batched: bool| {
            let one = |v: &Tensor, input: bool| {
                if input { depthwise_input(&dy, v, x.shape(), spec) } else { depthwise(&x, v, spec) }
            };
            let grad = |i: usize| {
                needs[i].then(|| if batched { per_seed(v, |v| one(v, i == 0)) } else { one(v, i == 0) }).transpose()
            };
            Ok(vec![grad(0)?, grad(1)?])
        })
    });
    Ok(df)
}
