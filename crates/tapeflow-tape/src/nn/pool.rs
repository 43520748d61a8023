//! `tf.nn.max_pool2d` and `tf.nn.avg_pool2d` on NHWC images.
//!
//! Each pool's gradient is an op of its own whose gradient is again a recorded op, so every
//! order differentiates: max pooling's gradient scatters `g` into the position that won
//! each window (TensorFlow's `MaxPoolGrad`), whose gradient gathers the upstream at those
//! positions (`MaxPoolGradGrad`), whose gradient is the scatter again; average pooling's
//! gradient spreads `g / count` over each window (`AvgPoolGrad`), whose gradient is the
//! average pool. The pooled input gets no gradient from these rules: the winning positions
//! are piecewise constant in it. A gradient with a leading seed axis (the batched form) is
//! a further batch of the same images to the kernels, so one rule serves both forms.
//!
//! JVPs: max pooling's tangent is the input tangent read at the winning positions (the
//! gather, the transpose of its scatter gradient); average pooling's the average pool of the
//! tangent; the gradient ops are linear in their upstream, so each one's JVP is itself.

use std::sync::Arc;

use tapeflow_dtype::Result;
use tapeflow_kernels::{self as kernels, MaxPoolTaps, Padding, PoolGeometry};

use crate::context::record_batchable;
use crate::forward::tangent_at;
use crate::ops::TensorMath;
use crate::runtime::Tensor;

/// `tf.nn.max_pool2d(input, ksize, strides, padding)`: the maximum of each window of an
/// NHWC image (`ksize`, `strides` as `[height, width]`). The gradient goes to one maximum per
/// window, the first in scan order where several are equal (as TensorFlow's `MaxPoolGrad`).
pub fn max_pool2d(input: impl TensorMath, ksize: [usize; 2], strides: [usize; 2], padding: Padding) -> Result<Tensor> {
    let x = input.to_tensor();
    let (y, taps) = kernels::max_pool2d(&x, ksize, strides, padding)?;
    record_batchable(
        &[&x],
        &y,
        |t| max_pool_gather(&taps, tangent_at(t, 0)?),
        || {
            let taps = taps.clone();
            Arc::new(move |g: &Tensor, _: &[bool], _batched: bool| Ok(vec![Some(max_pool_scatter(&taps, g)?)]))
        },
    );
    Ok(y)
}

/// `g` added into the positions `taps` records (the max pool's gradient).
fn max_pool_scatter(taps: &MaxPoolTaps, g: &Tensor) -> Result<Tensor> {
    let y = kernels::max_pool2d_scatter(taps, g)?;
    record_batchable(
        &[g],
        &y,
        |t| max_pool_scatter(taps, tangent_at(t, 0)?),
        || {
            let taps = taps.clone();
            Arc::new(move |u: &Tensor, _: &[bool], _batched: bool| Ok(vec![Some(max_pool_gather(&taps, u)?)]))
        },
    );
    Ok(y)
}

/// `u` read at the positions `taps` records (the scatter's gradient).
fn max_pool_gather(taps: &MaxPoolTaps, u: &Tensor) -> Result<Tensor> {
    let y = kernels::max_pool2d_gather(taps, u)?;
    record_batchable(
        &[u],
        &y,
        |t| max_pool_gather(taps, tangent_at(t, 0)?),
        || {
            let taps = taps.clone();
            Arc::new(move |g: &Tensor, _: &[bool], _batched: bool| Ok(vec![Some(max_pool_scatter(&taps, g)?)]))
        },
    );
    Ok(y)
}

/// `tf.nn.avg_pool2d(input, ksize, strides, padding)`: the mean of each window of an NHWC
/// image over its valid elements (a SAME window at the border averages fewer elements, as
/// TensorFlow's does).
pub fn avg_pool2d(input: impl TensorMath, ksize: [usize; 2], strides: [usize; 2], padding: Padding) -> Result<Tensor> {
    let x = input.to_tensor();
    let (y, geometry) = kernels::avg_pool2d(&x, ksize, strides, padding)?;
    record_average(&x, &y, geometry);
    Ok(y)
}

/// Records `y = avg_pool(x)` of `geometry`: its gradient is [`avg_pool_spread`].
fn record_average(x: &Tensor, y: &Tensor, geometry: PoolGeometry) {
    record_batchable(
        &[x],
        y,
        |t| avg_pool_with(&geometry, tangent_at(t, 0)?),
        || Arc::new(move |g: &Tensor, _: &[bool], _batched: bool| Ok(vec![Some(avg_pool_spread(&geometry, g)?)])),
    );
}

/// `g / count` spread over each window (the average pool's gradient); its gradient is the
/// average pool of the upstream.
fn avg_pool_spread(geometry: &PoolGeometry, g: &Tensor) -> Result<Tensor> {
    let y = kernels::avg_pool2d_grad(geometry, g)?;
    record_batchable(
        &[g],
        &y,
        |t| avg_pool_spread(geometry, tangent_at(t, 0)?),
        || {
            let geometry = *geometry;
            Arc::new(move |u: &Tensor, _: &[bool], _batched: bool| Ok(vec![Some(avg_pool_with(&geometry, u)?)]))
        },
    );
    Ok(y)
}

/// The recorded average pool of `u` over `geometry`'s windows.
fn avg_pool_with(geometry: &PoolGeometry, u: &Tensor) -> Result<Tensor> {
    let pooled = kernels::avg_pool2d_with(geometry, u)?;
    record_average(u, &pooled, *geometry);
    Ok(pooled)
}
