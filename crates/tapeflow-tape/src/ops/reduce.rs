//! Reductions: sum, mean, max over axes.

use smallvec::SmallVec;
use tapeflow_dtype::{Result, Shape};
use tapeflow_kernels::{self as kernels, BinaryOp, ReduceOp};

use crate::context::{Rule, record};
use crate::ops::{scalar_like, shape};
use crate::runtime::Tensor;

/// `op` over `axes` (`None` = all), recorded with its derivative.
pub(crate) fn reduce(op: ReduceOp, x: &Tensor, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
    let axes = kernels::resolve_axes(op.name(), x, axes)?;
    let y = kernels::reduce(op, x, &axes, keepdims)?;
    record(&[x], &y, || Rule::Reduce { op, x: x.clone(), y: y.clone(), axes: SmallVec::from_slice(&axes) });
    Ok(y)
}

pub(crate) fn derivative(op: ReduceOp, x: &Tensor, y: &Tensor, axes: &[usize], g: &Tensor) -> Result<Tensor> {
    // The reduced axes back as length 1, then stretched over x's shape.
    let kept = kept_dims(x, axes);
    let spread = shape::broadcast_to(&shape::reshape(g, &kept)?, x.shape())?;
    spread_derivative(op, x, y, axes, &kept, spread)
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
        // d max = 1 / (number of maxima) at each maximum: ties share the gradient. The
        // indicator is piecewise constant, so it is computed unrecorded.
        ReduceOp::Max => {
            let y_kept = y.with_shape(kept.iter().map(|&d| d as usize).collect::<Vec<_>>())?;
            let hits = kernels::binary(BinaryOp::Equal, x, &y_kept)?;
            let count = kernels::reduce(ReduceOp::Sum, &hits, axes, true)?;
            let share = kernels::binary(BinaryOp::Div, &hits, &count)?;
            share * spread
        }
    }
}
