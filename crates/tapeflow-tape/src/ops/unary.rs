//! Unary ops and their derivatives.

use tapeflow_dtype::Result;
use tapeflow_kernels::{self as kernels, UnaryOp};

use std::sync::Arc;

use crate::context::{Rule, record, record_batchable};
use crate::ops::TensorMath;
use crate::ops::scalar_like;
use crate::runtime::Tensor;

/// `op(x)`, recorded with its derivative.
pub(crate) fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    let y = kernels::unary(op, x)?;
    if op != UnaryOp::Sign {
        record(&[x], &y, || rule(op, x, &y));
    }
    Ok(y)
}

/// The backward rule recorded for `y = op(x)`.
pub(crate) fn rule(op: UnaryOp, x: &Tensor, y: &Tensor) -> Rule {
    // These derivatives are written in terms of y alone: the rule keeps y in x's place too,
    // so that the input (a layer's pre-activation) is freed once nothing else needs it,
    // instead of living until the backward pass.
    let only_y =
        matches!(op, UnaryOp::Exp | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Relu);
    Rule::Unary { op, x: if only_y { y.clone() } else { x.clone() }, y: y.clone() }
}

/// The gradient of `y = op(x)` given upstream `g`, in the form TensorFlow's gradient
/// functions use (so results match TF's to the last bit where it matters).
pub(crate) fn derivative(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    let c = |v: f64| scalar_like(x, v);
    match op {
        // d(-x) = -1
        UnaryOp::Neg => -g,
        // d|x| = sign(x), 0 at 0; sign is piecewise constant: not recorded.
        UnaryOp::Abs => g * kernels::unary(UnaryOp::Sign, x)?,
        // d e^x = e^x = y
        UnaryOp::Exp => g * y,
        // d log x = 1/x
        UnaryOp::Log => g * x.reciprocal()?,
        // d sqrt(x) = 0.5 / y (inf at 0)
        UnaryOp::Sqrt => (g * c(0.5)) / y,
        // d x^-1/2 = -0.5 y^3
        UnaryOp::Rsqrt => (g * c(-0.5)) * ((y * y) * y)?,
        // d x² = 2x
        UnaryOp::Square => g * (c(2.0) * x)?,
        // d tanh = 1 - y²
        UnaryOp::Tanh => g * (c(1.0) - (y * y)?)?,
        // d sigmoid = y (1 - y)
        UnaryOp::Sigmoid => (g * y) * (c(1.0) - y)?,
        // d relu = 1 where x > 0 (0 at 0 and at NaN)
        // y > 0 exactly where x > 0 (relu(NaN) is NaN, relu(-0) is 0).
        UnaryOp::Relu => relu_grad(y, g),
        // d sin = cos
        UnaryOp::Sin => g * x.cos()?,
        // d cos = -sin
        UnaryOp::Cos => (-g)? * x.sin()?,
        // d softplus = sigmoid
        UnaryOp::Softplus => g * x.sigmoid()?,
        // d log(1+x) = 1 / (1 + x)
        UnaryOp::Log1p => g * (c(1.0) + x)?.reciprocal()?,
        // d (e^x - 1) = e^x
        UnaryOp::Expm1 => g * x.exp()?,
        // d 1/x = -y²
        UnaryOp::Reciprocal => (-g)? * (y * y)?,
        // sign is piecewise constant and never recorded.
        UnaryOp::Sign => Ok(Tensor::zeros(x.shape().clone(), x.dtype())),
    }
}

/// [`derivative`] as one fused pass over raw buffers (`tanh`: `g·(1 − y²)` at once), for
/// backward passes that nothing records; the same bits. `None` where no fused form applies
/// (float16, or an upstream gradient of another shape).
pub(crate) fn derivative_first_order(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
    kernels::grad::unary_grad(op, x, y, g)
}

/// [`derivative`] with `g` of shape `[R] ++ x.shape` (R stacked seeds of a vectorized
/// jacobian). Each rule multiplies `g` by a function of x and y, which broadcasts over the
/// seed axis, so the batched form is the same expression in the same order (the same bits
/// as one pass per seed); only the two rules that need `g`'s own shape differ.
pub(crate) fn batched_derivative(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    match op {
        UnaryOp::Relu => batched_relu_grad(y, g),
        UnaryOp::Sign => Ok(Tensor::zeros(g.shape().clone(), g.dtype())),
        _ => derivative(op, x, y, g),
    }
}

/// `where(x > 0, g, 0)` for `g` of shape `[R] ++ x.shape`: the fused kernel needs equal
/// shapes, `select` broadcasts the mask over the seeds (the same values: both pick g or +0).
fn batched_relu_grad(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    let positive = kernels::binary(kernels::BinaryOp::Greater, x, &scalar_like(x, 0.0))?;
    crate::ops::binary::select(&positive, g, &scalar_like(g, 0.0))
}

/// ReLU's gradient `where(x > 0, g, 0)` in one fused pass. The mask is piecewise constant
/// in `x`, so the op is recorded as a function of `g` alone, and its own gradient is the
/// same op again (any order).
///
/// The backward pass hands every op a gradient of its output's shape and dtype, which is
/// what the fused kernel requires.
pub(crate) fn relu_grad(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    let out = kernels::relu_grad(x, g)?;
    record_batchable(&[g], &out, || {
        let x = x.clone();
        Arc::new(move |gg: &Tensor, _needs: &[bool], batched: bool| {
            Ok(vec![Some(if batched { batched_relu_grad(&x, gg)? } else { relu_grad(&x, gg)? })])
        })
    });
    Ok(out)
}
