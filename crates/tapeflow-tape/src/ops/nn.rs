//! softmax, log_softmax and sparse softmax cross-entropy.

use std::sync::Arc;

use tapeflow_dtype::{DType, Result};
use tapeflow_kernels as kernels;

use crate::context::{self, record_batchable};
use crate::forward::tangent_at;
use crate::ops::TensorMath;
use crate::runtime::Tensor;
use crate::trace;

/// `axis` of an op's tensor as an axis of its gradient, which has a leading seed axis when
/// `batched` (a negative axis counts from the end and still names the same axis).
fn gradient_axis(axis: isize, batched: bool) -> isize {
    if batched && axis >= 0 { axis + 1 } else { axis }
}

/// `tf.nn.softmax`: dx = (g - sum(g·y, axis)) · y. Batched (g with a leading seed axis), y
/// broadcasts over the seeds: the same expression for each.
pub(crate) fn softmax(x: &Tensor, axis: isize) -> Result<Tensor> {
    let y = trace::op("softmax", [x], move |[x]| kernels::softmax(x, axis))?;
    // dy = y · (t − Σ_axis t·y)
    let jvp = |t: &[Option<Tensor>]| {
        let t = tangent_at(t, 0)?;
        (t - (t * &y)?.sum(&[axis], true)?)? * &y
    };
    record_batchable(&[x], &y, jvp, || {
        let y = y.clone();
        Arc::new(move |g: &Tensor, _: &[bool], batched: bool| {
            let dot = (g * &y)?.sum(&[gradient_axis(axis, batched)], true)?;
            Ok(vec![Some(((g - dot)? * &y)?)])
        })
    });
    Ok(y)
}

/// `tf.nn.log_softmax`: dx = g - exp(y) · sum(g, axis) (batched as softmax).
pub(crate) fn log_softmax(x: &Tensor, axis: isize) -> Result<Tensor> {
    let y = trace::op("log_softmax", [x], move |[x]| kernels::log_softmax(x, axis))?;
    // dy = t − Σ_axis softmax(x)·t, softmax(x) = e^y
    let jvp = |t: &[Option<Tensor>]| {
        let t = tangent_at(t, 0)?;
        t - (y.exp()? * t)?.sum(&[axis], true)?
    };
    record_batchable(&[x], &y, jvp, || {
        let y = y.clone();
        Arc::new(move |g: &Tensor, _: &[bool], batched: bool| {
            let total = g.sum(&[gradient_axis(axis, batched)], true)?;
            Ok(vec![Some((g - (y.exp()? * total)?)?)])
        })
    });
    Ok(y)
}

/// `tf.nn.sparse_softmax_cross_entropy_with_logits`:
/// d logits = (softmax(logits) - one_hot(labels)) · g[:, None]; labels get no gradient.
/// The softmax comes from the forward pass (as TensorFlow's op returns it beside the loss);
/// while a tape records the gradient (higher order), it is recomputed as a recorded op so
/// that the gradient can be differentiated again.
pub(crate) fn sparse_softmax_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    // Fallible (here and in the gradient): a label out of range is an `Err` found in the
    // values.
    if !context::records_on_this_thread() {
        // Nothing can record it: the softmax would be computed for nobody.
        return cross_entropy_loss(logits, labels);
    }
    // One pass for the loss and the probabilities its gradient reads; it checks the labels.
    let (loss, probs) =
        trace::op_pair_fallible("sparse_softmax_cross_entropy", [logits, labels], |[logits, labels]| {
            kernels::sparse_softmax_cross_entropy_with_probs(logits, labels)
        })?;
    // d loss = Σ_classes (softmax(logits) − one_hot(labels)) · t, with the softmax recorded
    // so that the tangent differentiates again.
    let jvp = |t: &[Option<Tensor>]| {
        let one_hot = one_hot(logits, labels)?;
        ((softmax(logits, -1)? - one_hot)? * tangent_at(t, 0)?)?.sum(&[-1], false)
    };
    record_batchable(&[logits, labels], &loss, jvp, || {
        let (logits, labels) = (logits.clone(), labels.clone());
        Arc::new(move |g: &Tensor, needs: &[bool], batched: bool| {
            if !needs[0] {
                return Ok(vec![None, None]);
            }
            let recording = context::records_on_this_thread();
            if !recording && probs.dtype() == DType::F32 && g.dtype() == DType::F32 && g.dims() == &logits.dims()[..1] {
                // One fused pass, the same bits as the composition below.
                let grad = trace::op_fallible(
                    "sparse_softmax_cross_entropy_grad",
                    [&probs, &labels, g],
                    |[probs, labels, g]| kernels::sparse_softmax_cross_entropy_grad(probs, labels, g),
                )?;
                return Ok(vec![Some(grad), None]);
            }
            let one_hot = one_hot(&logits, &labels)?;
            let probs = if recording { softmax(&logits, -1)? } else { probs.clone() };
            // g as a column per example; batched ([R, N]) as R columns, which broadcast
            // (probs - one_hot) over the seeds.
            let column = if batched {
                g.reshape([g.dims().first().copied().unwrap_or(1) as isize, -1, 1])?
            } else {
                g.reshape([-1, 1])?
            };
            Ok(vec![Some(((probs - one_hot)? * column)?), None])
        })
    });
    Ok(loss)
}

/// The kernel's per-example losses, captured while a function traces.
fn cross_entropy_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    trace::op_fallible("sparse_softmax_cross_entropy", [logits, labels], |[logits, labels]| {
        kernels::sparse_softmax_cross_entropy(logits, labels)
    })
}

/// One-hot rows of `labels` against `logits` (not recorded: labels get no gradient),
/// captured while a function traces.
fn one_hot(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    trace::op_fallible("one_hot", [logits, labels], |[logits, labels]| kernels::one_hot(logits, labels))
}
