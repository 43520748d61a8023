//! Scans: cumsum and cumprod along an axis, with TensorFlow's gradients (`_CumsumGrad`,
//! `_CumprodGrad`), and the product of the other elements that reduce prod's gradient
//! (`_ProdGrad`) builds from two exclusive cumprods.

use std::sync::Arc;

use tapeflow_dtype::Result;
use tapeflow_kernels::{self as kernels, BinaryOp, ScanOp};

use crate::context::record_batchable;
use crate::forward::tangent_at;
use crate::ops::{binary, scalar_like, shape};
use crate::runtime::Tensor;
use crate::trace;

/// `tf.math.cumsum` / `tf.math.cumprod` of `x` along `axis`, recorded with its gradient.
pub(crate) fn scan(op: ScanOp, x: &Tensor, axis: isize, exclusive: bool, reverse: bool) -> Result<Tensor> {
    let y = trace::op(op.name(), [x], move |[x]| kernels::scan(op, x, axis, exclusive, reverse))?;
    // The kernel accepted the axis, so it resolves.
    let axis = x.shape().resolve_axis(axis).unwrap_or(0);
    // d cumsum(x) = cumsum(t). d cumprod(x) = y · cumsum(t / x) in the same direction: the
    // transpose of the backward rule below, with its same division (0 where x is 0).
    let jvp = |t: &[Option<Tensor>]| {
        let t = tangent_at(t, 0)?;
        match op {
            ScanOp::Sum => scan(ScanOp::Sum, t, axis as isize, exclusive, reverse),
            ScanOp::Prod => &y * scan(ScanOp::Sum, &div_no_nan(t, x)?, axis as isize, exclusive, reverse)?,
        }
    };
    record_batchable(&[x], &y, jvp, || {
        let saved = (op == ScanOp::Prod).then(|| (x.clone(), y.clone()));
        Arc::new(move |g: &Tensor, _needs: &[bool], batched: bool| {
            // Batched, g carries the seed axis in front: the scan axis moves by one.
            let axis = (axis + usize::from(batched)) as isize;
            let grad = match &saved {
                // d cumsum: the cumsum of g the other way round.
                None => scan(ScanOp::Sum, g, axis, exclusive, !reverse)?,
                // d cumprod: cumsum(y·g) the other way round, divided by x (0 where x is 0,
                // as TF's div_no_nan).
                Some((x, y)) => div_no_nan(&scan(ScanOp::Sum, &(y * g)?, axis, exclusive, !reverse)?, x)?,
            };
            Ok(vec![Some(grad)])
        })
    });
    Ok(y)
}

/// `a / b` where `b ≠ 0`, else 0 (`tf.math.divide_no_nan`), differentiable in both: its
/// gradients are TF's (`g / b` and `g · (−a / b) / b` where `b ≠ 0`, 0 elsewhere). `b`'s
/// shape is `a`'s, or `a`'s without a leading seed axis.
pub(crate) fn div_no_nan(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let zero = scalar_like(b, 0.0);
    // Piecewise constant in b: computed unrecorded.
    let is_zero = binary::kernel(BinaryOp::Equal, b, &zero)?;
    let safe_b = binary::select(&is_zero, &scalar_like(b, 1.0), b)?;
    binary::select(&is_zero, &zero, &(a / &safe_b)?)
}

/// For each element of `x`, the product of the other elements of its slice over `axes`
/// (sorted, unique), as TensorFlow's `_ProdGrad` computes it: the reduced axes moved to
/// the front and flattened into one, `cumprod(exclusive) · cumprod(exclusive, reverse)`
/// along it, and moved back. With one zero in a slice the zero's entry is the product of
/// the others and every other entry is 0; with two zeros all are 0. Differentiable.
pub(crate) fn product_of_others(x: &Tensor, axes: &[usize]) -> Result<Tensor> {
    if x.num_elements() == 0 {
        return Ok(Tensor::zeros(x.shape().clone(), x.dtype()));
    }
    let dims = x.dims();
    let other: Vec<usize> = (0..x.rank()).filter(|a| !axes.contains(a)).collect();
    let perm: Vec<usize> = axes.iter().chain(&other).copied().collect();
    let reduced: usize = axes.iter().map(|&a| dims[a]).product();
    let kept: usize = other.iter().map(|&a| dims[a]).product();
    let moved = perm.iter().enumerate().any(|(i, &p)| i != p);
    let permuted = if moved { shape::transpose(x, &perm)? } else { x.clone() };
    let flat = shape::reshape(&permuted, &[reduced as isize, kept as isize])?;
    let left = scan(ScanOp::Prod, &flat, 0, true, false)?;
    let right = scan(ScanOp::Prod, &flat, 0, true, true)?;
    let others = shape::reshape(&(left * right)?, &shape::signed(permuted.shape()))?;
    if !moved {
        return Ok(others);
    }
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    shape::transpose(&others, &inverse)
}
