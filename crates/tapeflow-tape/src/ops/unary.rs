//! Unary ops and their derivatives.

use tapeflow_dtype::Result;
use tapeflow_kernels::{self as kernels, UnaryOp};

use std::sync::Arc;

use tapeflow_kernels::grad::constants::{
    FRAC_1_SQRT_2, FRAC_1_SQRT_2PI, GELU_CUBIC, GELU_CUBIC_3, SELU_SCALE, SELU_SCALE_ALPHA, SQRT_2_OVER_PI,
    TWO_OVER_SQRT_PI,
};

use crate::context::{Rule, record, record_batchable};
use crate::forward::tangent_at;
use crate::ops::TensorMath;
use crate::ops::activation::masked_grad;
use crate::ops::binary::{self, select};
use crate::ops::scalar_like;
use crate::runtime::Tensor;
use crate::trace;

/// `op(x)`, recorded with its derivative. floor, ceil and round are not recorded:
/// TensorFlow's gradient registry returns None for them (sign's gradient is zeros, so
/// sign is recorded).
pub(crate) fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    let y = trace::op(op.name(), [x], move |[x]| kernels::unary(op, x))?;
    if !matches!(op, UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round) {
        record(&[x], &y, || rule(op, x, &y));
    }
    Ok(y)
}

/// The backward rule recorded for `y = op(x)`.
pub(crate) fn rule(op: UnaryOp, x: &Tensor, y: &Tensor) -> Rule {
    // These derivatives are written in terms of y alone: the rule keeps y in x's place too,
    // so that the input (a layer's pre-activation) is freed once nothing else needs it,
    // instead of living until the backward pass.
    let only_y = matches!(
        op,
        UnaryOp::Exp
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Relu
            | UnaryOp::Asinh
            | UnaryOp::Acosh
            | UnaryOp::Elu
            | UnaryOp::Selu
            | UnaryOp::Relu6
    );
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
        UnaryOp::Abs => g * trace::op(UnaryOp::Sign.name(), [x], |[x]| kernels::unary(UnaryOp::Sign, x))?,
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
        // sign is piecewise constant: zeros, as TensorFlow's _SignGrad. floor, ceil and
        // round are never recorded (TensorFlow: None); zeros if a rule is built anyway.
        UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => {
            Ok(Tensor::zeros(x.shape().clone(), x.dtype()))
        }
        _ => derivative_catalog2(op, x, y, g),
    }
}

/// [`derivative`] for the ops of the second catalog, in TensorFlow's gradient functions'
/// order of operations (`math_grad.py`, `nn_grad.py`, and the chain rule through the
/// compositions behind gelu, silu and log_sigmoid), which the fused kernels of
/// `tapeflow_kernels::grad` repeat operation for operation.
fn derivative_catalog2(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    let c = |v: f64| scalar_like(x, v);
    let below_zero = |y: &Tensor| binary::kernel(kernels::BinaryOp::Less, y, &c(0.0));
    match op {
        // d tan = sec² x = (1 / cos x)²
        UnaryOp::Tan => g * x.cos()?.reciprocal()?.square()?,
        // d asin = 1 / √(1 − x²)
        UnaryOp::Asin => g * (c(1.0) - x.square()?)?.sqrt()?.reciprocal()?,
        // d acos = −1 / √(1 − x²)
        UnaryOp::Acos => (-g)? * (c(1.0) - x.square()?)?.sqrt()?.reciprocal()?,
        // d atan = 1 / (1 + x²)
        UnaryOp::Atan => g * (c(1.0) + x.square()?)?.reciprocal()?,
        // d sinh = cosh, d cosh = sinh
        UnaryOp::Sinh => g * x.cosh()?,
        UnaryOp::Cosh => g * x.sinh()?,
        // d asinh = 1 / cosh y, d acosh = 1 / sinh y
        UnaryOp::Asinh => g / y.cosh()?,
        UnaryOp::Acosh => g / y.sinh()?,
        // d atanh = 1 / (1 − x²)
        UnaryOp::Atanh => g * (c(1.0) - x.square()?)?.reciprocal()?,
        // d erf = 2/√π · e^(−x²), d erfc = −2/√π · e^(−x²)
        UnaryOp::Erf => (g * c(TWO_OVER_SQRT_PI))? * (-x.square()?)?.exp()?,
        UnaryOp::Erfc => (g * c(-TWO_OVER_SQRT_PI))? * (-x.square()?)?.exp()?,
        // log_sigmoid = −softplus(−x): d = sigmoid(−x)
        UnaryOp::LogSigmoid => g * (-x)?.sigmoid()?,
        // d softsign = 1 / (1 + |x|)²
        UnaryOp::Softsign => g / (x.abs()? + c(1.0))?.square()?,
        // TensorFlow's EluGrad of the output: y < 0 ? (y + 1)·g : g
        UnaryOp::Elu => select(&below_zero(y)?, &((y + c(1.0))? * g)?, g),
        // SeluGrad: y < 0 ? g·(y + scale·alpha) : g·scale
        UnaryOp::Selu => select(&below_zero(y)?, &(g * (y + c(SELU_SCALE_ALPHA))?)?, &(g * c(SELU_SCALE))?),
        // Relu6Grad of the output: g · (0 < y < 6)
        UnaryOp::Relu6 => masked_grad(kernels::MaskedGrad::Relu6, y, g),
        // silu = x·s with s = sigmoid(x): d = s·(1 + x·(1 − s)) (tf.nn.silu's gradient)
        UnaryOp::Silu => {
            let s = x.sigmoid()?;
            g * (&s * (c(1.0) + (x * (c(1.0) - &s)?)?)?)?
        }
        // gelu = x·Φ(x): d = Φ(x) + x·φ(x), Φ(x) = (1 + erf(x/√2))/2, φ(x) = e^(−x²/2)/√(2π)
        UnaryOp::Gelu => {
            let cdf = ((c(1.0) + (x * c(FRAC_1_SQRT_2))?.erf()?)? * c(0.5))?;
            let pdf = ((x.square()? * c(-0.5))?.exp()? * c(FRAC_1_SQRT_2PI))?;
            g * (cdf + (x * pdf)?)?
        }
        // gelu ≈ x/2·(1 + tanh u), u = √(2/π)·(x + 0.044715·x³):
        // d = (1 + t)/2 + x/2·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), t = tanh u
        UnaryOp::GeluTanh => {
            let x2 = x.square()?;
            let t = ((x + ((&x2 * x)? * c(GELU_CUBIC))?)? * c(SQRT_2_OVER_PI))?.tanh()?;
            let du = ((c(1.0) + (&x2 * c(GELU_CUBIC_3))?)? * c(SQRT_2_OVER_PI))?;
            let first = ((c(1.0) + &t)? * c(0.5))?;
            let second = (((x * c(0.5))? * (c(1.0) - (&t * &t)?)?)? * du)?;
            g * (first + second)?
        }
        _ => Ok(Tensor::zeros(x.shape().clone(), x.dtype())),
    }
}

/// The JVP of `y = op(x)` with tangent `t` of x: the op is elementwise, so its Jacobian is
/// diagonal (its own transpose) and the tangent is the backward rule applied to `t`.
pub(crate) fn jvp(op: UnaryOp, x: &Tensor, y: &Tensor, t: &Tensor) -> Result<Tensor> {
    if crate::context::nothing_records()
        && let Some(fused) = derivative_first_order(op, x, y, t)?
    {
        // Nothing (no tape, no outer accumulator) sees this tangent's ops: one fused pass,
        // the same bits as the composition.
        return Ok(fused);
    }
    derivative(op, x, y, t)
}

/// [`derivative`] as one fused pass over raw buffers (`tanh`: `g·(1 − y²)` at once), for
/// backward passes that nothing records; the same bits. `None` where no fused form applies
/// (float16, or an upstream gradient of another shape).
pub(crate) fn derivative_first_order(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
    trace::op_maybe("unary_grad", [x, y, g], move |[x, y, g]| kernels::grad::unary_grad(op, x, y, g))
}

/// [`derivative`] with `g` of shape `[R] ++ x.shape` (R stacked seeds of a vectorized
/// jacobian). Each rule multiplies `g` by a function of x and y, which broadcasts over the
/// seed axis, so the batched form is the same expression in the same order (the same bits
/// as one pass per seed); only the two rules that need `g`'s own shape differ.
pub(crate) fn batched_derivative(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    match op {
        UnaryOp::Relu => batched_relu_grad(y, g),
        UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => {
            Ok(Tensor::zeros(g.shape().clone(), g.dtype()))
        }
        // relu6's masked gradient broadcasts y over the seeds itself.
        _ => derivative(op, x, y, g),
    }
}

/// `where(x > 0, g, 0)` for `g` of shape `[R] ++ x.shape`: the fused kernel needs equal
/// shapes, `select` broadcasts the mask over the seeds (the same values: both pick g or +0).
fn batched_relu_grad(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    let positive = binary::kernel(kernels::BinaryOp::Greater, x, &scalar_like(x, 0.0))?;
    select(&positive, g, &scalar_like(g, 0.0))
}

/// ReLU's gradient `where(x > 0, g, 0)` in one fused pass. The mask is piecewise constant
/// in `x`, so the op is recorded as a function of `g` alone, and its own gradient is the
/// same op again (any order).
///
/// The backward pass hands every op a gradient of its output's shape and dtype, which is
/// what the fused kernel requires.
pub(crate) fn relu_grad(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    let out = trace::op("relu_grad", [x, g], |[x, g]| kernels::relu_grad(x, g))?;
    // Linear in g: the JVP is the same op of g's tangent.
    record_batchable(
        &[g],
        &out,
        |t| relu_grad(x, tangent_at(t, 0)?),
        || {
            let x = x.clone();
            Arc::new(move |gg: &Tensor, _needs: &[bool], batched: bool| {
                Ok(vec![Some(if batched { batched_relu_grad(&x, gg)? } else { relu_grad(&x, gg)? })])
            })
        },
    );
    Ok(out)
}
