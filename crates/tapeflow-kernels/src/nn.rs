//! Neural-network ops: softmax, log_softmax, sparse softmax cross-entropy, one-hot.

use tapeflow_dtype::{DType, Error, Result, Shape, Tensor};

use crate::elementwise::{float_storage, float_view};
use crate::layout::split_at_axis;

fn float_only<R>(op: &'static str, x: &Tensor<R>) -> Result<()> {
    if x.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType { op, shape: x.shape().clone(), dtype: x.dtype() })
    }
}

/// Applies `f(lane, out)` to every 1-D lane of `x` along `axis` (max-subtracted inputs
/// are the caller's business).
fn along_axis<R>(op: &'static str, x: &Tensor<R>, axis: isize, f: impl Fn(&[f32], &mut [f32])) -> Result<Tensor<R>> {
    float_only(op, x)?;
    let resolved = x.shape().resolve_axis(axis).ok_or_else(|| Error::InvalidAxis {
        op,
        axis,
        shape: x.shape().clone(),
        dtype: x.dtype(),
    })?;
    let (outer, len, inner) = split_at_axis(x.dims(), resolved);
    // No elements, no lanes: `outer` or `inner` may still be huge ([2^62, 0, 3]).
    let (outer, len, inner) = if x.num_elements() == 0 { (0, 0, 0) } else { (outer, len, inner) };
    let src = float_view(x).unwrap_or_default();
    let storage = float_storage(x.dtype(), x.num_elements(), |dst| {
        let mut lane = vec![0.0f32; len];
        let mut out = vec![0.0f32; len];
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| (o * len + j) * inner + i;
                lane.iter_mut().enumerate().for_each(|(j, v)| *v = src[at(j)]);
                f(&lane, &mut out);
                out.iter().enumerate().for_each(|(j, &v)| dst[at(j)] = v);
            }
        }
    });
    Tensor::from_storage(storage, x.shape().clone())
}

/// max and log(sum(exp(x - max))) of one lane, in f64 for accuracy.
fn lane_log_sum_exp(lane: &[f32]) -> (f64, f64) {
    let max = lane.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m || v.is_nan() { v } else { m });
    let max = f64::from(max);
    let sum: f64 = lane.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    (max, sum.ln())
}

/// `tf.nn.softmax(x, axis)`.
pub fn softmax<R>(x: &Tensor<R>, axis: isize) -> Result<Tensor<R>> {
    along_axis("softmax", x, axis, |lane, out| {
        let (max, lse) = lane_log_sum_exp(lane);
        out.iter_mut().zip(lane).for_each(|(o, &v)| *o = (f64::from(v) - max - lse).exp() as f32);
    })
}

/// `tf.nn.log_softmax(x, axis)`.
pub fn log_softmax<R>(x: &Tensor<R>, axis: isize) -> Result<Tensor<R>> {
    along_axis("log_softmax", x, axis, |lane, out| {
        let (max, lse) = lane_log_sum_exp(lane);
        out.iter_mut().zip(lane).for_each(|(o, &v)| *o = (f64::from(v) - max - lse) as f32);
    })
}

/// Checks `labels` (int32, shape `[N]`) against `logits` (float, `[N, C]`).
fn check_labels<R>(op: &'static str, logits: &Tensor<R>, labels: &Tensor<R>) -> Result<Vec<usize>> {
    float_only(op, logits)?;
    let shapes_ok = logits.rank() == 2 && labels.rank() == 1 && labels.dims()[0] == logits.dims()[0];
    if labels.dtype() != DType::I32 || !shapes_ok {
        return Err(Error::shape_mismatch(op, logits, labels, "logits must be [N, C] float and labels [N] int32"));
    }
    let classes = logits.dims()[1];
    labels
        .as_slice::<i32>()?
        .iter()
        .map(|&l| {
            usize::try_from(l).ok().filter(|&l| l < classes).ok_or_else(|| Error::InvalidValue {
                op,
                shape: labels.shape().clone(),
                dtype: labels.dtype(),
                reason: format!("label {l} is outside the valid range [0, {classes})"),
            })
        })
        .collect()
}

/// `tf.nn.sparse_softmax_cross_entropy_with_logits`: per-example losses `[N]`,
/// `logsumexp(logits[i]) - logits[i, labels[i]]`. A label outside `[0, C)` is an `Err`.
pub fn sparse_softmax_cross_entropy<R>(logits: &Tensor<R>, labels: &Tensor<R>) -> Result<Tensor<R>> {
    let op = "sparse_softmax_cross_entropy";
    let labels = check_labels(op, logits, labels)?;
    let (n, classes) = (logits.dims()[0], logits.dims()[1]);
    let src = float_view(logits).unwrap_or_default();
    let storage = float_storage(logits.dtype(), n, |dst| {
        for (i, (d, &label)) in dst.iter_mut().zip(&labels).enumerate() {
            let lane = &src[i * classes..(i + 1) * classes];
            let (max, lse) = lane_log_sum_exp(lane);
            *d = (max + lse - f64::from(lane[label])) as f32;
        }
    });
    Tensor::from_storage(storage, [n])
}

/// One-hot rows `[N, C]` of `dtype` for int32 `labels` `[N]` against `logits` `[N, C]`.
pub fn one_hot<R>(logits: &Tensor<R>, labels: &Tensor<R>) -> Result<Tensor<R>> {
    let labels_idx = check_labels("one_hot", logits, labels)?;
    let (n, classes) = (logits.dims()[0], logits.dims()[1]);
    let storage = float_storage(logits.dtype(), n * classes, |dst| {
        dst.fill(0.0);
        labels_idx.iter().enumerate().for_each(|(i, &l)| dst[i * classes + l] = 1.0);
    });
    Tensor::from_storage(storage, Shape::from([n, classes]))
}

#[cfg(test)]
mod tests {
    use super::*;
    type T = Tensor<()>;

    #[test]
    fn softmax_rows_sum_to_one() {
        let x = T::from_vec(vec![1.0f32, 2.0, 3.0, 1000.0, 1000.0, 1000.0], [2, 3]).unwrap();
        let s = softmax(&x, -1).unwrap().to_vec::<f32>().unwrap();
        assert!((s[0] + s[1] + s[2] - 1.0).abs() < 1e-6);
        assert!((s[3] - 1.0 / 3.0).abs() < 1e-6);
        let l = log_softmax(&x, 0).unwrap().to_vec::<f32>().unwrap();
        assert!(l.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn cross_entropy_refuses_labels_out_of_range() {
        let logits = T::from_vec(vec![0.0f32; 6], [2, 3]).unwrap();
        let ok = T::from_vec(vec![0i32, 2], [2]).unwrap();
        let loss = sparse_softmax_cross_entropy(&logits, &ok).unwrap().to_vec::<f32>().unwrap();
        assert!((loss[0] - 3f32.ln()).abs() < 1e-6);
        let bad = T::from_vec(vec![0i32, 3], [2]).unwrap();
        assert!(sparse_softmax_cross_entropy(&logits, &bad).is_err());
        let neg = T::from_vec(vec![-1i32, 0], [2]).unwrap();
        assert!(sparse_softmax_cross_entropy(&logits, &neg).is_err());
    }
}
