//! Gathers and scatters: `gather`, `gather_nd`, `scatter_nd`, `unsorted_segment_sum`,
//! `one_hot`.
//!
//! Two adjoint pairs carry every gradient, each rule the other op of its pair (so every
//! order differentiates): a gather along an axis and a segment sum along it (the gradient of
//! `gather` is the dense segment sum of `g` into zeros, where TensorFlow hands back
//! `IndexedSlices`; that of `unsorted_segment_sum` gathers `g`, negative ids giving zeros,
//! as TensorFlow's `_GatherDropNegatives`), and `gather_nd` with `scatter_nd`. Indices get
//! no gradient.

use std::sync::Arc;

use tapeflow_dtype::{Result, Shape};
use tapeflow_kernels as kernels;

use crate::context::record_batchable;
use crate::forward::tangent_at;
use crate::runtime::Tensor;
use crate::trace;

/// `params` gathered by `indices` along `axis`; with `zero_negative`, a negative index
/// gives a zero row instead of an `Err`. The gradient sums `g`'s rows into the rows they
/// came from.
pub(crate) fn gather_axis(params: &Tensor, indices: &Tensor, axis: usize, zero_negative: bool) -> Result<Tensor> {
    // Fallible: an index out of range is an `Err` found in the values.
    let y = trace::op_fallible("gather", [params, indices], move |[params, indices]| {
        if zero_negative {
            kernels::gather_or_zero(params, indices, axis as isize)
        } else {
            kernels::gather(params, indices, axis as isize)
        }
    })?;
    // Linear in params: the tangent gathered by the same indices (indices have none).
    let jvp = |t: &[Option<Tensor>]| gather_axis(tangent_at(t, 0)?, indices, axis, zero_negative);
    record_batchable(&[params, indices], &y, jvp, || {
        let (indices, rows) = (indices.clone(), params.dims()[axis]);
        Arc::new(move |g: &Tensor, needs: &[bool], batched: bool| {
            // Batched, every axis of g sits one further out behind the seed axis.
            let along = axis + usize::from(batched);
            let grad = if needs[0] { Some(segment_sum_axis(g, &indices, along, rows)?) } else { None };
            Ok(vec![grad, None])
        })
    });
    Ok(y)
}

/// `data`'s slices along the axes `axis..axis + ids.rank` summed into `segments` rows by
/// `ids` (negatives dropped). The gradient gathers `g` by the same ids.
pub(crate) fn segment_sum_axis(data: &Tensor, ids: &Tensor, axis: usize, segments: usize) -> Result<Tensor> {
    // Fallible: an id ≥ `segments` is an `Err` found in the values.
    let y = trace::op_fallible("unsorted_segment_sum", [data, ids], move |[data, ids]| {
        kernels::segment_sum(data, ids, axis, segments)
    })?;
    let jvp = |t: &[Option<Tensor>]| segment_sum_axis(tangent_at(t, 0)?, ids, axis, segments);
    record_batchable(&[data, ids], &y, jvp, || {
        let ids = ids.clone();
        Arc::new(move |g: &Tensor, needs: &[bool], batched: bool| {
            let along = axis + usize::from(batched);
            let grad = if needs[0] { Some(gather_axis(g, &ids, along, true)?) } else { None };
            Ok(vec![grad, None])
        })
    });
    Ok(y)
}

/// [`kernels::gather_nd_lead`]: the gradient scatters `g` back into zeros.
pub(crate) fn gather_nd_lead(params: &Tensor, indices: &Tensor, lead: usize) -> Result<Tensor> {
    let y = trace::op_fallible("gather_nd", [params, indices], move |[params, indices]| {
        kernels::gather_nd_lead(params, indices, lead)
    })?;
    let jvp = |t: &[Option<Tensor>]| gather_nd_lead(tangent_at(t, 0)?, indices, lead);
    record_batchable(&[params, indices], &y, jvp, || {
        let (indices, tail) = (indices.clone(), Shape::new(&params.dims()[lead..]));
        Arc::new(move |g: &Tensor, needs: &[bool], batched: bool| {
            let lead = lead + usize::from(batched);
            let grad = if needs[0] { Some(scatter_nd_lead(&indices, g, lead, &tail)?) } else { None };
            Ok(vec![grad, None])
        })
    });
    Ok(y)
}

/// [`kernels::scatter_nd_lead`]: the gradient of the updates gathers `g` at the indices.
pub(crate) fn scatter_nd_lead(indices: &Tensor, updates: &Tensor, lead: usize, shape: &Shape) -> Result<Tensor> {
    let out = shape.clone();
    let y = trace::op_fallible("scatter_nd", [indices, updates], move |[indices, updates]| {
        kernels::scatter_nd_lead(indices, updates, lead, &out)
    })?;
    let jvp = |t: &[Option<Tensor>]| scatter_nd_lead(indices, tangent_at(t, 1)?, lead, shape);
    record_batchable(&[indices, updates], &y, jvp, || {
        let indices = indices.clone();
        Arc::new(move |g: &Tensor, needs: &[bool], batched: bool| {
            let lead = lead + usize::from(batched);
            let grad = if needs[1] { Some(gather_nd_lead(g, &indices, lead)?) } else { None };
            Ok(vec![None, grad])
        })
    });
    Ok(y)
}

/// `tf.gather(params, indices, axis)`.
pub(crate) fn gather(params: &Tensor, indices: &Tensor, axis: isize) -> Result<Tensor> {
    match params.shape().resolve_axis(axis) {
        Some(a) => gather_axis(params, indices, a, false),
        // The kernel names the op, the axis and the shape.
        None => trace::op_fallible("gather", [params, indices], move |[params, indices]| {
            kernels::gather(params, indices, axis)
        }),
    }
}
