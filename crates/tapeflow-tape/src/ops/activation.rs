//! The activations with an attribute, tf.nn.leaky_relu (slope) and tf.clip_by_value
//! (bounds), and the masked gradients they share with relu6.
//!
//! Design: these two are not `UnaryOp` variants. An attribute in the op enum would cost
//! every unary op its `Copy + Eq + Hash` value semantics and the per-variant compiled
//! loops of the kernel dispatch, and `Rule::Unary` would have to carry the attribute; so
//! the forward ops are kernels of their own and their rules are batchable closures
//! (`record_batchable`) holding the attribute. Their gradients, like relu6's, are a
//! fixed mask applied to the upstream gradient, one fused kernel ([`masked_grad`]),
//! recorded as a function of that gradient alone (the mask is piecewise constant in x), so
//! its own gradient is the same kernel again, to any order.

use std::sync::Arc;

use tapeflow_dtype::{DType, Result};
use tapeflow_kernels::{self as kernels, MaskedGrad};

use crate::context::record_batchable;
use crate::forward::tangent_at;
use crate::ops::shape;
use crate::runtime::Tensor;
use crate::trace;

/// tf.nn.leaky_relu(x, alpha): `x > 0 ? x : alpha·x`; int32 is cast to float32 first, as
/// TensorFlow's function does. Gradient: `x > 0 ? g : alpha·g` (alpha·g at 0).
pub(crate) fn leaky_relu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    let x = if x.dtype() == DType::I32 { shape::cast(x, DType::F32)? } else { x.clone() };
    let y = trace::op("leaky_relu", [&x], move |[x]| kernels::leaky_relu(x, alpha))?;
    record_masked(&x, &y, MaskedGrad::LeakyRelu { alpha });
    Ok(y)
}

/// tf.clip_by_value(x, min, max) with scalar bounds: `maximum(minimum(x, max), min)`.
/// Gradient as TensorFlow's composition gives it: `g` where `min ≤ x ≤ max` (both bounds
/// included: minimum's and maximum's ties send it to x), 0 elsewhere and at NaN.
pub(crate) fn clip_by_value(x: &Tensor, min: f64, max: f64) -> Result<Tensor> {
    let y = trace::op("clip_by_value", [x], move |[x]| kernels::clip_by_value(x, min, max))?;
    record_masked(x, &y, MaskedGrad::Clip { min, max });
    Ok(y)
}

/// Records `y = op(x)` whose gradient is `masked_grad(rule, x, g)`.
fn record_masked(x: &Tensor, y: &Tensor, rule: MaskedGrad) {
    // Elementwise with the mask as derivative: the tangent masked the same way.
    record_batchable(
        &[x],
        y,
        |t| masked_grad(rule, x, tangent_at(t, 0)?),
        || {
            let x = x.clone();
            // Batched (a leading seed axis on g), x broadcasts over the seeds in `masked_grad`.
            Arc::new(move |g: &Tensor, _needs: &[bool], _batched: bool| Ok(vec![Some(masked_grad(rule, &x, g)?)]))
        },
    );
}

/// `rule`'s mask at `x` applied to `g` in one pass (TensorFlow's Relu6Grad and
/// LeakyReluGrad, clip's composed gradient). `g` may carry leading seed axes (the batched
/// form of a vectorized jacobian): `x` is broadcast to it. Linear in `g`, so it is recorded
/// as a function of `g` alone and its gradient is the same op of the upstream gradient.
pub(crate) fn masked_grad(rule: MaskedGrad, x: &Tensor, g: &Tensor) -> Result<Tensor> {
    // One node: whether x is broadcast depends on the shapes only.
    let out = trace::op(grad_name(rule), [x, g], move |[x, g]| {
        let x_full = if x.shape() == g.shape() { x.clone() } else { kernels::broadcast_to(x, g.shape())? };
        kernels::mask_grad(rule, &x_full, g)
    })?;
    record_batchable(
        &[g],
        &out,
        |t| masked_grad(rule, x, tangent_at(t, 0)?),
        || {
            let x = x.clone();
            Arc::new(move |gg: &Tensor, _needs: &[bool], _batched: bool| Ok(vec![Some(masked_grad(rule, &x, gg)?)]))
        },
    );
    Ok(out)
}

/// The name of `rule`'s gradient kernel.
fn grad_name(rule: MaskedGrad) -> &'static str {
    match rule {
        MaskedGrad::Relu6 => "relu6_grad",
        MaskedGrad::LeakyRelu { .. } => "leaky_relu_grad",
        MaskedGrad::Clip { .. } => "clip_by_value_grad",
    }
}
