//! Reductions over axes: sum, mean, max, min, prod (recorded with their rules), the
//! composed logsumexp, variance and std (TensorFlow's own compositions, so their gradients
//! follow), and the unrecorded argmax / argmin.

use smallvec::SmallVec;
use tapeflow_dtype::{Error, Result, Shape};
use tapeflow_kernels::{self as kernels, ArgOp, BinaryOp, ReduceOp};

use crate::context::{Rule, record};
use crate::ops::{TensorMath, binary, scalar_like, scan, shape};
use crate::runtime::Tensor;
use crate::trace;

/// `op` over `axes` (`None` = all), recorded with its derivative.
pub(crate) fn reduce(op: ReduceOp, x: &Tensor, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
    let axes = kernels::resolve_axes(op.name(), x, axes)?;
    // The rule's copy is inline; the resolved list itself moves into the captured call.
    let rule_axes: SmallVec<[usize; 4]> = SmallVec::from_slice(&axes);
    let y = trace::op(op.name(), [x], move |[x]| kernels::reduce(op, x, &axes, keepdims))?;
    record(&[x], &y, || Rule::Reduce { op, x: x.clone(), y: y.clone(), axes: rule_axes });
    Ok(y)
}

pub(crate) fn derivative(op: ReduceOp, x: &Tensor, y: &Tensor, axes: &[usize], g: &Tensor) -> Result<Tensor> {
    // The reduced axes back as length 1, then stretched over x's shape.
    let kept = kept_dims(x, axes);
    let spread = shape::broadcast_to(&shape::reshape(g, &kept)?, x.shape())?;
    spread_derivative(op, x, y, axes, &kept, spread)
}

/// The JVP of `y = op(x)` over `axes`, with tangent `t` of x. Each element of x feeds one
/// element of y, so `dy = Σ_axes (∂y/∂x ⊙ t)`, where `∂y/∂x` is the backward rule of a
/// unit upstream (for sum and mean the plain sum or mean of `t`).
pub(crate) fn jvp(op: ReduceOp, x: &Tensor, y: &Tensor, axes: &[usize], t: &Tensor) -> Result<Tensor> {
    let signed: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
    let reduced = match op {
        ReduceOp::Sum | ReduceOp::Mean => reduce(op, t, Some(&signed), true)?,
        ReduceOp::Max | ReduceOp::Min | ReduceOp::Prod => {
            let local = derivative(op, x, y, axes, &Tensor::ones(y.shape().clone(), y.dtype()))?;
            reduce(ReduceOp::Sum, &(t * local)?, Some(&signed), true)?
        }
    };
    shape::reshape(&reduced, &shape::signed(y.shape()))
}

/// [`derivative`] with `g` of shape `[R] ++ y.shape` (R stacked seeds of a vectorized
/// jacobian): `g` is reshaped to `[R] ++ kept` and stretched to `[R] ++ x.shape`; the rest
/// broadcasts over the seed axis, so each element is the same expression (the same bits).
pub(crate) fn batched_derivative(op: ReduceOp, x: &Tensor, y: &Tensor, axes: &[usize], g: &Tensor) -> Result<Tensor> {
    let kept = kept_dims(x, axes);
    let seeds = g.dims().first().copied().unwrap_or(1);
    let mut batched_kept = vec![seeds as isize];
    batched_kept.extend_from_slice(&kept);
    let mut target = vec![seeds];
    target.extend_from_slice(x.dims());
    let spread = shape::broadcast_to(&shape::reshape(g, &batched_kept)?, &Shape::from(target))?;
    spread_derivative(op, x, y, axes, &kept, spread)
}

/// x's dimensions with the reduced `axes` as length 1.
fn kept_dims(x: &Tensor, axes: &[usize]) -> Vec<isize> {
    x.dims().iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d as isize }).collect()
}

/// The derivative from `spread`, the upstream gradient stretched over x's shape (with or
/// without a leading seed axis).
fn spread_derivative(
    op: ReduceOp,
    x: &Tensor,
    y: &Tensor,
    axes: &[usize],
    kept: &[isize],
    spread: Tensor,
) -> Result<Tensor> {
    match op {
        // d sum = 1 for every element
        ReduceOp::Sum => Ok(spread),
        // d mean = 1 / count
        ReduceOp::Mean => {
            let count: usize = axes.iter().fold(1, |n, &a| n.saturating_mul(x.dims()[a]));
            spread / scalar_like(x, count as f64)
        }
        // d max = 1 / (number of maxima) at each maximum: ties share the gradient (min the
        // same, TF's _MinOrMaxGrad). The indicator is piecewise constant, so it is computed
        // unrecorded.
        ReduceOp::Max | ReduceOp::Min => {
            let kept_shape = Shape::from(kept.iter().map(|&d| d as usize).collect::<Vec<_>>());
            let y_kept = trace::op("reshape", [y], move |[y]| y.with_shape(kept_shape.clone()))?;
            let hits = binary::kernel(BinaryOp::Equal, x, &y_kept)?;
            let summed: SmallVec<[usize; 4]> = SmallVec::from_slice(axes);
            let count = trace::op(ReduceOp::Sum.name(), [&hits], move |[hits]| {
                kernels::reduce(ReduceOp::Sum, hits, &summed, true)
            })?;
            let share = binary::kernel(BinaryOp::Div, &hits, &count)?;
            share * spread
        }
        // d prod = the product of the other elements of the slice (TF's _ProdGrad: exact
        // with zeros, no division).
        ReduceOp::Prod => spread * scan::product_of_others(x, axes)?,
    }
}

/// The axes of a composed reduction (`op` names it in errors), resolved, and its input
/// checked to be float: TensorFlow's compositions refuse integers.
fn composed_axes(op: &'static str, x: &Tensor, axes: &[isize]) -> Result<Vec<isize>> {
    let resolved = kernels::resolve_axes(op, x, Some(axes))?;
    if !x.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, shape: x.shape().clone(), dtype: x.dtype() });
    }
    // A result no allocation can hold is refused here, naming this op, not by an op inside.
    let kept: Vec<usize> =
        x.dims().iter().enumerate().map(|(i, &d)| if resolved.contains(&i) { 1 } else { d }).collect();
    kernels::layout::checked_output_len(op, x, &Shape::from(kept))?;
    Ok(resolved.into_iter().map(|a| a as isize).collect())
}

/// `tf.reduce_logsumexp`: `log(sum(exp(x − m))) + m` with `m` the maximum over `axes`
/// where it is finite and 0 elsewhere, held constant (TF's stop_gradient): no overflow, an
/// all −inf slice gives −inf, a slice holding +inf gives +inf.
pub(crate) fn logsumexp(x: &Tensor, axes: &[isize], keepdims: bool) -> Result<Tensor> {
    let axes = composed_axes("logsumexp", x, axes)?;
    let resolved: Vec<usize> = axes.iter().map(|&a| a as usize).collect();
    let raw_max = trace::op(ReduceOp::Max.name(), [x], move |[x]| kernels::reduce(ReduceOp::Max, x, &resolved, true))?;
    // m − m is 0 exactly where m is finite (NaN for ±inf and NaN).
    let finite =
        binary::kernel(BinaryOp::Equal, &binary::kernel(BinaryOp::Sub, &raw_max, &raw_max)?, &scalar_like(x, 0.0))?;
    let shift = trace::op("select", [&finite, &raw_max, &scalar_like(x, 0.0)], |[finite, raw_max, zero]| {
        kernels::select(finite, raw_max, zero)
    })?;
    let sum = reduce(ReduceOp::Sum, &(x - &shift)?.exp()?, Some(&axes), keepdims)?;
    let shift = if keepdims {
        shift
    } else {
        let target = sum.shape().clone();
        trace::op("reshape", [&shift], move |[shift]| shift.with_shape(target.clone()))?
    };
    sum.log()? + &shift
}

/// `tf.math.reduce_variance` (population variance, as TF composes it):
/// `mean(square(x − mean(x, keepdims)))`; `op` names it in errors.
pub(crate) fn variance(op: &'static str, x: &Tensor, axes: &[isize], keepdims: bool) -> Result<Tensor> {
    let axes = composed_axes(op, x, axes)?;
    let means = reduce(ReduceOp::Mean, x, Some(&axes), true)?;
    reduce(ReduceOp::Mean, &(x - &means)?.square()?, Some(&axes), keepdims)
}

/// `tf.math.reduce_std`: the square root of [`variance`].
pub(crate) fn std(x: &Tensor, axes: &[isize], keepdims: bool) -> Result<Tensor> {
    variance("std", x, axes, keepdims)?.sqrt()
}

/// `tf.math.argmax` / `argmin` with int32 indices: never recorded (no gradient flows
/// through an index).
pub(crate) fn arg_reduce(op: ArgOp, x: &Tensor, axis: isize) -> Result<Tensor> {
    trace::op(op.name(), [x], move |[x]| kernels::arg_reduce(op, x, axis))
}
