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
//!
//! The winning taps are host data read off the pooled input's values: while a function
//! traces, the gradient ops of a pool whose input the trace made take that input as an input
//! of their own and find the taps again from it (as TensorFlow's `MaxPoolGrad` takes the
//! original input), so that a replay on other values scatters into their winners.

use std::sync::Arc;

use tapeflow_dtype::Result;
use tapeflow_kernels::{self as kernels, MaxPoolTaps, Padding, PoolGeometry};

use crate::context::record_batchable;
use crate::forward::tangent_at;
use crate::ops::TensorMath;
use crate::runtime::Tensor;
use crate::trace;

/// The taps a max pool took, for its gradient ops.
#[derive(Clone)]
struct Won {
    taps: MaxPoolTaps,
    /// While a function traces: the pooled input and the pool's parameters, from which a
    /// captured gradient op finds the taps again at replay. `None` otherwise (the taps are
    /// then those of a tensor the program does not make: a constant of it).
    source: Option<(Tensor, PoolParams)>,
}

/// `ksize`, `strides` and `padding` of a max pool.
type PoolParams = ([usize; 2], [usize; 2], Padding);

impl Won {
    /// `kernel(taps, t)`: captured with the pooled input as a further input when the taps
    /// come from a value of the program, with the taps as a constant otherwise.
    fn apply(
        &self,
        name: &'static str,
        t: &Tensor,
        kernel: fn(&MaxPoolTaps, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        match &self.source {
            Some((x, (ksize, strides, padding))) if trace::capturing() => {
                let (ksize, strides, padding) = (*ksize, *strides, *padding);
                trace::op(name, [x, t], move |[x, t]| kernel(&kernels::max_pool2d(x, ksize, strides, padding)?.1, t))
            }
            _ => {
                let taps = self.taps.clone();
                trace::op(name, [t], move |[t]| kernel(&taps, t))
            }
        }
    }
}

/// `tf.nn.max_pool2d(input, ksize, strides, padding)`: the maximum of each window of an
/// NHWC image (`ksize`, `strides` as `[height, width]`). The gradient goes to one maximum per
/// window, the first in scan order where several are equal (as TensorFlow's `MaxPoolGrad`).
pub fn max_pool2d(input: impl TensorMath, ksize: [usize; 2], strides: [usize; 2], padding: Padding) -> Result<Tensor> {
    let x = input.to_tensor();
    let (y, taps) = if trace::capturing() {
        let y = trace::op("max_pool2d", [&x], move |[x]| Ok(kernels::max_pool2d(x, ksize, strides, padding)?.0))?;
        // The taps, which the captured op cannot hand out: a second pass, while tracing only
        // (outside the capture, where the input's values can be read).
        (y, trace::untraced(|| kernels::max_pool2d(&x, ksize, strides, padding))?.1)
    } else {
        kernels::max_pool2d(&x, ksize, strides, padding)?
    };
    let won = Won { taps, source: trace::tracing().then(|| (x.clone(), (ksize, strides, padding))) };
    record_batchable(
        &[&x],
        &y,
        |t| max_pool_gather(&won, tangent_at(t, 0)?),
        || {
            let won = won.clone();
            Arc::new(move |g: &Tensor, _: &[bool], _batched: bool| Ok(vec![Some(max_pool_scatter(&won, g)?)]))
        },
    );
    Ok(y)
}

/// `g` added into the positions `taps` records (the max pool's gradient).
fn max_pool_scatter(won: &Won, g: &Tensor) -> Result<Tensor> {
    let y = won.apply("max_pool2d_grad", g, kernels::max_pool2d_scatter)?;
    record_batchable(
        &[g],
        &y,
        |t| max_pool_scatter(won, tangent_at(t, 0)?),
        || {
            let won = won.clone();
            Arc::new(move |u: &Tensor, _: &[bool], _batched: bool| Ok(vec![Some(max_pool_gather(&won, u)?)]))
        },
    );
    Ok(y)
}

/// `u` read at the positions `taps` records (the scatter's gradient).
fn max_pool_gather(won: &Won, u: &Tensor) -> Result<Tensor> {
    let y = won.apply("max_pool2d_grad_grad", u, kernels::max_pool2d_gather)?;
    record_batchable(
        &[u],
        &y,
        |t| max_pool_gather(won, tangent_at(t, 0)?),
        || {
            let won = won.clone();
            Arc::new(move |g: &Tensor, _: &[bool], _batched: bool| Ok(vec![Some(max_pool_scatter(&won, g)?)]))
        },
    );
    Ok(y)
}

/// `tf.nn.avg_pool2d(input, ksize, strides, padding)`: the mean of each window of an NHWC
/// image over its valid elements (a SAME window at the border averages fewer elements, as
/// TensorFlow's does).
pub fn avg_pool2d(input: impl TensorMath, ksize: [usize; 2], strides: [usize; 2], padding: Padding) -> Result<Tensor> {
    let x = input.to_tensor();
    // `kernels::avg_pool2d`, whose geometry depends on shapes only.
    let geometry = PoolGeometry::new("avg_pool2d", &x, ksize, strides, padding)?;
    let y = trace::op("avg_pool2d", [&x], move |[x]| kernels::avg_pool2d_with(&geometry, x))?;
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
    let pool = *geometry;
    let y = trace::op("avg_pool2d_grad", [g], move |[g]| kernels::avg_pool2d_grad(&pool, g))?;
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
    let pool = *geometry;
    let pooled = trace::op("avg_pool2d", [u], move |[u]| kernels::avg_pool2d_with(&pool, u))?;
    record_average(u, &pooled, *geometry);
    Ok(pooled)
}
