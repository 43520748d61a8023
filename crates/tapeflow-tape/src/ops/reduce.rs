//! Reductions: sum, mean, max over axes.

use std::sync::Arc;

use tapeflow_dtype::Result;
use tapeflow_kernels::{self as kernels, BinaryOp, ReduceOp};

use crate::context::record_custom;
use crate::ops::{scalar_like, shape};
use crate::runtime::Tensor;

/// `op` over `axes` (`None` = all), recorded with its derivative.
pub(crate) fn reduce(op: ReduceOp, x: &Tensor, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
    let axes = kernels::resolve_axes(op.name(), x, axes)?;
    let y = kernels::reduce(op, x, &axes, keepdims)?;
    record_custom(&[x], &y, || {
        let (x, y) = (x.clone(), y.clone());
        Arc::new(move |g: &Tensor, _: &[bool]| Ok(vec![Some(derivative(op, &x, &y, &axes, g)?)]))
    });
    Ok(y)
}

fn derivative(op: ReduceOp, x: &Tensor, y: &Tensor, axes: &[usize], g: &Tensor) -> Result<Tensor> {
    // The reduced axes back as length 1, then stretched over x's shape.
    let kept: Vec<isize> =
        x.dims().iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d as isize }).collect();
    let spread = shape::broadcast_to(&shape::reshape(g, &kept)?, x.shape())?;
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
