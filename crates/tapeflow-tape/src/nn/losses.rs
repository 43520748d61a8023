//! Losses on dense labels: `tf.nn.softmax_cross_entropy_with_logits` (v2) and
//! `tf.nn.sigmoid_cross_entropy_with_logits`, with gradients to the logits and the labels.

use std::sync::Arc;

use tapeflow_dtype::{Error, Result};
use tapeflow_kernels::{self as kernels, BinaryOp, ReduceOp, UnaryOp};

use crate::context::record_batchable;
use crate::forward::sum_of_terms;
use crate::nn::norm::{float_operand, same_dtype};
use crate::ops::{TensorMath, select, stop_gradient};
use crate::runtime::Tensor;
use crate::trace;

/// Logits and labels of a loss: float, one dtype, one shape.
fn check_pair(op: &'static str, logits: &Tensor, labels: &Tensor, min_rank: usize) -> Result<()> {
    float_operand(op, logits)?;
    same_dtype(op, logits, labels)?;
    if logits.dims() != labels.dims() || logits.rank() < min_rank {
        let rank = if min_rank > 0 { format!(" of rank at least {min_rank}") } else { String::new() };
        return Err(Error::shape_mismatch(op, logits, labels, format!("logits and labels must have one shape{rank}")));
    }
    Ok(())
}

/// `tf.nn.softmax_cross_entropy_with_logits(labels, logits)` along the last axis: per
/// example `-sum(labels · log_softmax(logits))`, shape `logits.shape[:-1]`, stable for any
/// logits (the log-softmax subtracts each row's maximum).
///
/// Gradients as TensorFlow's: `d logits = (softmax(logits) − labels) · g` (which assumes
/// each row of labels sums to 1, as TensorFlow's kernel does) and
/// `d labels = −log_softmax(logits) · g`, both written with the differentiable softmax ops.
/// TensorFlow's op returns `softmax − labels` as a second output and differentiates only
/// its softmax again, so the logits' gradient has no gradient with respect to the labels:
/// the labels enter it through `stop_gradient`.
pub fn softmax_cross_entropy(logits: impl TensorMath, labels: impl TensorMath) -> Result<Tensor> {
    let op = "softmax_cross_entropy";
    let (logits, labels) = (logits.to_tensor(), labels.to_tensor());
    check_pair(op, &logits, &labels, 1)?;
    let batch = &logits.dims()[..logits.rank() - 1];
    if batch.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_none_or(|n| n > isize::MAX as usize / 4) {
        return Err(Error::shape_mismatch(
            op,
            &logits,
            &labels,
            "the loss (one value per row) would not fit in memory",
        ));
    }
    let classes = logits.rank() - 1;
    let loss = trace::op(op, [&logits, &labels], move |[logits, labels]| {
        let log_probs = kernels::log_softmax(logits, -1)?;
        let products = kernels::binary(BinaryOp::Mul, labels, &log_probs)?;
        kernels::unary(UnaryOp::Neg, &kernels::reduce(ReduceOp::Sum, &products, &[classes], false)?)
    })?;
    // The transpose of the gradients below: Σ_classes ((softmax − labels)·t_logits −
    // log_softmax·t_labels).
    let jvp = |t: &[Option<Tensor>]| {
        sum_of_terms(t, |i, t| {
            let per_class = if i == 0 {
                logits.softmax(-1)?.sub(stop_gradient(&labels))?.mul(t)?
            } else {
                logits.log_softmax(-1)?.neg()?.mul(t)?
            };
            per_class.sum(&[-1], false)
        })
    };
    record_batchable(&[&logits, &labels], &loss, jvp, || {
        let (logits, labels) = (logits.clone(), labels.clone());
        Arc::new(move |g: &Tensor, needs: &[bool], _batched: bool| {
            // g as a column over the class axis; batched, its seed axis broadcasts in front.
            let column = g.expand_dims(-1)?;
            let d_logits =
                if needs[0] { Some(logits.softmax(-1)?.sub(stop_gradient(&labels))?.mul(&column)?) } else { None };
            let d_labels = if needs[1] { Some(logits.log_softmax(-1)?.neg()?.mul(&column)?) } else { None };
            Ok(vec![d_logits, d_labels])
        })
    });
    Ok(loss)
}

/// `tf.nn.sigmoid_cross_entropy_with_logits(labels, logits)` elementwise, in TensorFlow's
/// stable form `max(x, 0) − x·z + log(1 + exp(−|x|))` (no overflow for large |x|), composed
/// of the differentiable ops as TensorFlow composes it (so its gradients, to the logits and
/// the labels, are TensorFlow's).
pub fn sigmoid_cross_entropy(logits: impl TensorMath, labels: impl TensorMath) -> Result<Tensor> {
    let op = "sigmoid_cross_entropy";
    let (x, z) = (logits.to_tensor(), labels.to_tensor());
    check_pair(op, &x, &z, 0)?;
    let zeros = Tensor::zeros(x.shape().clone(), x.dtype());
    let positive = x.greater_equal(&zeros)?;
    let relu_logits = select(&positive, &x, &zeros)?;
    let neg_abs_logits = select(&positive, x.neg()?, &x)?;
    relu_logits.sub(x.mul(&z)?)?.add(neg_abs_logits.exp()?.log1p()?)
}
