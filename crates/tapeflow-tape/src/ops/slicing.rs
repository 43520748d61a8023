//! Strided views and pads: `slice`, `strided_slice`, `reverse`, `pad`.
//!
//! The first three take a view ([`SlicePlan`]) of their input; constant padding puts its
//! input into the view of a larger tensor. The two are each other's adjoint, so one pair of
//! differentiable ops carries all four: the gradient of a view is the upstream gradient put
//! back into zeros (TensorFlow's `StridedSliceGrad`, the pad of `Slice`'s gradient), and the
//! gradient of a put is the view of the upstream gradient (`Pad`'s gradient is a slice).
//! Mirror padding gathers along each padded axis, so its gradient folds the mirrored parts
//! back by segment sums, as TensorFlow's `MirrorPadGrad`.

use std::sync::Arc;

use tapeflow_dtype::{Error, Result};
use tapeflow_kernels::{self as kernels, PadMode, SlicePlan};

use crate::context::record_batchable;
use crate::forward::tangent_at;
use crate::ops::gather;
use crate::runtime::Tensor;
use crate::trace;

/// The view `plan` of `x`; the gradient puts `g` back into zeros of `x`'s shape.
pub(crate) fn take(op: &'static str, x: &Tensor, plan: &SlicePlan) -> Result<Tensor> {
    let view = plan.clone();
    let y = trace::op(op, [x], move |[x]| kernels::take(op, x, &view))?;
    // Linear: the same view of the tangent.
    record_batchable(
        &[x],
        &y,
        |t| take(op, tangent_at(t, 0)?, plan),
        || {
            let plan = plan.clone();
            Arc::new(move |g: &Tensor, _: &[bool], batched: bool| {
                // Batched, g carries the seed axis in front: the plan takes it whole.
                let plan = if batched { plan.with_leading_axis(g.dims()[0]) } else { plan.clone() };
                Ok(vec![Some(put(op, g, &plan, 0.0)?)])
            })
        },
    );
    Ok(y)
}

/// `x` at the view `plan` of a tensor filled with `fill` elsewhere; the gradient is the
/// view of `g`.
pub(crate) fn put(op: &'static str, x: &Tensor, plan: &SlicePlan, fill: f64) -> Result<Tensor> {
    let view = plan.clone();
    let y = trace::op(op, [x], move |[x]| kernels::put(op, x, &view, fill))?;
    // Affine (the fill is a constant): the tangent put into zeros.
    record_batchable(
        &[x],
        &y,
        |t| put(op, tangent_at(t, 0)?, plan, 0.0),
        || {
            let plan = plan.clone();
            Arc::new(move |g: &Tensor, _: &[bool], batched: bool| {
                let plan = if batched { plan.with_leading_axis(g.dims()[0]) } else { plan.clone() };
                Ok(vec![Some(take(op, g, &plan)?)])
            })
        },
    );
    Ok(y)
}

/// `tf.slice(x, begin, size)`.
pub(crate) fn slice(x: &Tensor, begin: &[usize], size: &[isize]) -> Result<Tensor> {
    take("slice", x, &SlicePlan::slice(x, begin, size)?)
}

/// `tf.strided_slice(x, begin, end, strides)` without masks.
pub(crate) fn strided_slice(x: &Tensor, begin: &[isize], end: &[isize], strides: &[isize]) -> Result<Tensor> {
    take("strided_slice", x, &SlicePlan::strided(x, begin, end, strides)?)
}

/// `tf.reverse(x, axes)`; the gradient is `g` reversed the same way.
pub(crate) fn reverse(x: &Tensor, axes: &[isize]) -> Result<Tensor> {
    take("reverse", x, &SlicePlan::reverse(x, axes)?)
}

/// `tf.pad(x, paddings, mode)`.
pub(crate) fn pad(x: &Tensor, paddings: &[[usize; 2]], mode: PadMode) -> Result<Tensor> {
    const OP: &str = "pad";
    let plan = SlicePlan::interior(OP, x, paddings)?;
    let reflect = match mode {
        PadMode::Constant(value) => return put(OP, x, &plan, value),
        PadMode::Reflect => true,
        PadMode::Symmetric => false,
    };
    // Every axis's limits are checked on x before anything runs.
    for (axis, &padding) in paddings.iter().enumerate() {
        kernels::mirror_fits(OP, x, axis, padding, reflect)?;
    }
    if plan.source_dims().contains(&0) {
        // No elements to mirror (and an index map of an empty tensor's other axes could
        // be longer than any allocation).
        return put(OP, x, &plan, 0.0);
    }
    let mut y = x.clone();
    for (axis, &padding) in paddings.iter().enumerate() {
        if padding == [0, 0] {
            continue;
        }
        let map = kernels::mirror_index(OP, x, axis, padding, reflect)?;
        let too_long =
            || Error::InvalidArgument { op: OP, reason: format!("axis {axis} of {} is too long", x.shape()) };
        let map =
            map.into_iter().map(i32::try_from).collect::<std::result::Result<Vec<i32>, _>>().map_err(|_| too_long())?;
        let len = map.len();
        let indices = Tensor::from_vec(map, [len])?;
        y = gather::gather_axis(&y, &indices, axis, false)?;
    }
    if y.id() == x.id() {
        // No padding at all: still a recorded op, as TensorFlow's pad is one.
        y = put(OP, x, &plan, 0.0)?;
    }
    Ok(y)
}
