//! Neural-network ops: softmax, log_softmax, sparse softmax cross-entropy, one-hot.

use tapeflow_dtype::{DType, Error, Result, Shape, Tensor};

use crate::elementwise::{BinaryOp, UnaryOp, float_storage, float_view};
use crate::isa::{self, Level, Simd, kernel};
use crate::layout::split_at_axis;
use crate::simd::{self, Operand};

fn float_only<R>(op: &'static str, x: &Tensor<R>) -> Result<()> {
    if x.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType { op, shape: x.shape().clone(), dtype: x.dtype() })
    }
}

/// Applies `f(lane, out, scratch)` to every 1-D lane of `x` along `axis`; `scratch` is a
/// lane-sized buffer for `f`'s intermediate values.
fn along_axis<R>(
    op: &'static str,
    x: &Tensor<R>,
    axis: isize,
    f: impl Fn(&[f32], &mut [f32], &mut [f32]),
) -> Result<Tensor<R>> {
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
        let mut scratch = vec![0.0f32; len];
        if inner == 1 {
            // Lanes along the last axis are contiguous: no gathering.
            for (lane, out) in src.chunks_exact(len.max(1)).zip(dst.chunks_exact_mut(len.max(1))).take(outer) {
                f(lane, out, &mut scratch);
            }
            return;
        }
        let mut lane = vec![0.0f32; len];
        let mut out = vec![0.0f32; len];
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| (o * len + j) * inner + i;
                lane.iter_mut().enumerate().for_each(|(j, v)| *v = src[at(j)]);
                f(&lane, &mut out, &mut scratch);
                out.iter().enumerate().for_each(|(j, &v)| dst[at(j)] = v);
            }
        }
    });
    Tensor::from_storage(storage, x.shape().clone())
}

/// Of one lane: `shifted = x - max(x)`, `exps = exp(shifted)`, and the sum of `exps`
/// (returned) — with the SIMD kernels: exp within 2 ulp, the sum in vector partial sums.
/// NaN and infinities propagate as in `log(sum(exp(x)))`.
fn shifted_exps(level: Level, lane: &[f32], shifted: &mut [f32], exps: &mut [f32]) -> f32 {
    if lane.len() <= 16 {
        return shifted_exps_short(level, lane, shifted, exps);
    }
    let max = simd::max_f32(level, lane);
    simd::binary_f32(level, BinaryOp::Sub, Operand::Run(lane), Operand::Splat(max), shifted);
    simd::unary_f32(level, UnaryOp::Exp, shifted, exps);
    simd::sum_f32(level, exps)
}

/// [`shifted_exps`] of a lane of at most 16 elements (a classifier's logits) in one vector:
/// the same exp kernel, one call, without the maximum's and the sum's vector passes.
fn shifted_exps_short(level: Level, lane: &[f32], shifted: &mut [f32], exps: &mut [f32]) -> f32 {
    let n = lane.len();
    // NaN anywhere makes the maximum NaN, as in `simd::max_f32`.
    let max =
        if lane.iter().any(|v| v.is_nan()) { f32::NAN } else { lane.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) };
    shifted[..n].iter_mut().zip(lane).for_each(|(s, &v)| *s = v - max);
    simd::unary_f32(level, UnaryOp::Exp, &shifted[..n], &mut exps[..n]);
    exps[..n].iter().sum()
}

/// `tf.nn.softmax(x, axis)`: `exp(x - max) / sum(exp(x - max))`.
pub fn softmax<R>(x: &Tensor<R>, axis: isize) -> Result<Tensor<R>> {
    let level = isa::current();
    along_axis("softmax", x, axis, |lane, out, scratch| {
        let sum = shifted_exps(level, lane, scratch, out);
        simd::div_by_f32(level, out, sum);
    })
}

/// `tf.nn.log_softmax(x, axis)`: `(x - max) - log(sum(exp(x - max)))`.
pub fn log_softmax<R>(x: &Tensor<R>, axis: isize) -> Result<Tensor<R>> {
    let level = isa::current();
    along_axis("log_softmax", x, axis, |lane, out, scratch| {
        let log_sum = shifted_exps(level, lane, out, scratch).ln();
        out.iter_mut().for_each(|v| *v -= log_sum);
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
    sparse_softmax_cross_entropy_with_probs(logits, labels).map(|(loss, _)| loss)
}

/// [`sparse_softmax_cross_entropy`] and, from the same pass, `softmax(logits)` `[N, C]`
/// (bit for bit what [`softmax`] gives): the gradient's main term, which TensorFlow's op
/// also returns beside the loss.
pub fn sparse_softmax_cross_entropy_with_probs<R>(
    logits: &Tensor<R>,
    labels: &Tensor<R>,
) -> Result<(Tensor<R>, Tensor<R>)> {
    let op = "sparse_softmax_cross_entropy";
    let labels = check_labels(op, logits, labels)?;
    let (n, classes) = (logits.dims()[0], logits.dims()[1]);
    let src = float_view(logits).unwrap_or_default();
    let mut probs = vec![0.0f32; n * classes];
    let level = isa::current();
    let storage = float_storage(logits.dtype(), n, |dst| {
        if (1..=16).contains(&classes) {
            short_rows_cross_entropy(level, &src, classes, &labels, dst, &mut probs);
            return;
        }
        let mut shifted = vec![0.0f32; classes];
        for (i, (d, &label)) in dst.iter_mut().zip(&labels).enumerate() {
            let lane = &src[i * classes..(i + 1) * classes];
            let row = &mut probs[i * classes..(i + 1) * classes];
            // log(sum(exp(x))) - x[label] = log(sum(exp(x - max))) - (x[label] - max)
            let sum = shifted_exps(level, lane, &mut shifted, row);
            *d = sum.ln() - shifted[label];
            simd::div_by_f32(level, row, sum);
        }
    });
    let probs = float_storage(logits.dtype(), n * classes, |dst| dst.copy_from_slice(&probs));
    Ok((Tensor::from_storage(storage, [n])?, Tensor::from_storage(probs, logits.shape().clone())?))
}

/// The cross-entropy of rows of at most 16 classes (a classifier's logits), batched: the
/// row maxima and shifted logits first, then one exp pass over all rows with the slice
/// kernel, then the per-row sums, logs and divisions. Bit for bit what the per-row
/// [`shifted_exps_short`] path computes (the same subtraction, the same exp per element,
/// the same left-to-right sum), without a one-vector exp call per row.
fn short_rows_cross_entropy(
    level: Level,
    src: &[f32],
    classes: usize,
    labels: &[usize],
    loss: &mut [f32],
    probs: &mut [f32],
) {
    let mut shifted = vec![0.0f32; src.len()];
    for (lane, out) in src.chunks_exact(classes).zip(shifted.chunks_exact_mut(classes)) {
        // NaN anywhere makes the maximum NaN, as in `shifted_exps_short`.
        let max = if lane.iter().any(|v| v.is_nan()) {
            f32::NAN
        } else {
            lane.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
        };
        out.iter_mut().zip(lane).for_each(|(o, &v)| *o = v - max);
    }
    simd::unary_f32(level, UnaryOp::Exp, &shifted, probs);
    for (i, (row, &label)) in probs.chunks_exact_mut(classes).zip(labels).enumerate() {
        let sum: f32 = row.iter().sum();
        loss[i] = sum.ln() - shifted[i * classes + label];
        simd::div_by_f32(level, row, sum);
    }
}

/// The gradient of [`sparse_softmax_cross_entropy`] with respect to the logits, from the
/// forward pass's `probs` (`softmax(logits)`, `[N, C]`) and the upstream gradient `g`
/// (`[N]`): `(probs - one_hot(labels)) · g[:, None]` in one pass, bit for bit what those
/// two float32 ops give. float32 only (float16 rounds between the two ops; callers
/// compose them); labels are checked as in the forward op.
pub fn sparse_softmax_cross_entropy_grad<R>(probs: &Tensor<R>, labels: &Tensor<R>, g: &Tensor<R>) -> Result<Tensor<R>> {
    let op = "sparse_softmax_cross_entropy_grad";
    let labels = check_labels(op, probs, labels)?;
    let (n, classes) = (probs.dims()[0], probs.dims()[1]);
    if probs.dtype() != DType::F32 {
        return Err(Error::UnsupportedDType { op, shape: probs.shape().clone(), dtype: probs.dtype() });
    }
    if g.dtype() != DType::F32 {
        return Err(Error::dtype_mismatch(op, probs, g));
    }
    if g.dims() != [n] {
        return Err(Error::shape_mismatch(op, probs, g, "the upstream gradient must be [N]"));
    }
    let (p, g) = (probs.as_slice::<f32>()?, g.as_slice::<f32>()?);
    let level = isa::current();
    let storage = tapeflow_dtype::Storage::for_overwrite::<f32>(n * classes, |out| {
        cross_entropy_grad_rows(level, out, p, &labels, g, classes.max(1))
    });
    Tensor::from_storage(storage, probs.shape().clone())
}

kernel! {
    /// The rows of [`sparse_softmax_cross_entropy_grad`], compiled per level (the compiler
    /// vectorizes the row loop; subtraction and product are exactly rounded, so every level
    /// gives the same bits).
    fn cross_entropy_grad_rows<'a>(out: &'a mut [f32], p: &'a [f32], labels: &'a [usize], g: &'a [f32], classes: usize) => cross_entropy_grad_body;
}

#[inline(always)]
fn cross_entropy_grad_body<S: Simd>(_: S, out: &mut [f32], p: &[f32], labels: &[usize], g: &[f32], classes: usize) {
    for (((out, p), &label), &g) in out.chunks_exact_mut(classes).zip(p.chunks_exact(classes)).zip(labels).zip(g) {
        for (j, (o, &p)) in out.iter_mut().zip(p).enumerate() {
            *o = (p - if j == label { 1.0 } else { 0.0 }) * g;
        }
    }
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

    /// Short lanes (one vector) and long lanes (the slice kernels) against an f64
    /// reference, with NaN, infinities and all-(-inf) lanes.
    #[test]
    fn softmax_lanes_of_every_length_match_an_f64_reference() {
        for len in 1..=40usize {
            for special in [None, Some(f32::NAN), Some(f32::INFINITY), Some(f32::NEG_INFINITY)] {
                let mut lane: Vec<f32> = (0..len).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
                if let Some(v) = special {
                    lane[len / 2] = v;
                }
                let x = T::from_vec(lane.clone(), [1, len]).unwrap();
                let got = softmax(&x, -1).unwrap().to_vec::<f32>().unwrap();
                let got_log = log_softmax(&x, -1).unwrap().to_vec::<f32>().unwrap();
                let max = lane
                    .iter()
                    .map(|&v| f64::from(v))
                    .fold(f64::NEG_INFINITY, |m, v| if v.is_nan() || m.is_nan() { f64::NAN } else { m.max(v) });
                let sum: f64 = lane.iter().map(|&v| (f64::from(v) - max).exp()).sum();
                for (k, &v) in lane.iter().enumerate() {
                    let want = (f64::from(v) - max).exp() / sum;
                    let want_log = (f64::from(v) - max) - sum.ln();
                    for (g, w) in [(got[k], want), (got_log[k], want_log)] {
                        if w.is_nan() {
                            assert!(g.is_nan(), "len {len}, {special:?}: element {k} is {g}, want NaN");
                        } else if w.is_infinite() {
                            assert_eq!(f64::from(g), w, "len {len}, {special:?}: element {k}");
                        } else {
                            assert!(
                                (f64::from(g) - w).abs() <= 2e-6 * (1.0 + w.abs()),
                                "len {len}, {special:?}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The cross-entropy's batched short-row path (≤ 16 classes) and its per-row path give
    /// the loss `-log_softmax[label]` and the probabilities `softmax` bit for bit, with
    /// NaN, infinities and ties; and the fused gradient equals `(probs - one_hot) · g`.
    #[test]
    fn cross_entropy_matches_softmax_bit_for_bit_and_its_fused_gradient() {
        let bits = |v: Vec<f32>| v.iter().map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() }).collect::<Vec<_>>();
        for classes in 1..=20usize {
            let n = 37;
            let mut values: Vec<f32> = (0..n * classes).map(|k| ((k * 7919) % 23) as f32 * 0.75 - 8.0).collect();
            let len = values.len();
            values[3 % len] = f32::NAN;
            values[(5 * classes + 1) % len] = f32::INFINITY;
            values[(9 * classes) % len] = f32::NEG_INFINITY;
            values[(11 * classes)..(12 * classes)].fill(f32::NEG_INFINITY);
            let logits = T::from_vec(values, [n, classes]).unwrap();
            let label_of = |i: usize| (i * 5 + 2) % classes;
            let labels = T::from_vec((0..n).map(|i| label_of(i) as i32).collect::<Vec<_>>(), [n]).unwrap();
            let (loss, probs) = sparse_softmax_cross_entropy_with_probs(&logits, &labels).unwrap();
            assert_eq!(
                bits(probs.to_vec().unwrap()),
                bits(softmax(&logits, -1).unwrap().to_vec().unwrap()),
                "{classes}"
            );
            let log_p = log_softmax(&logits, -1).unwrap().to_vec::<f32>().unwrap();
            // ln(sum) - shifted[label] against -(shifted[label] - ln(sum)): equal values
            // (only the sign of a zero may differ).
            for (i, l) in loss.to_vec::<f32>().unwrap().into_iter().enumerate() {
                let want = -log_p[i * classes + label_of(i)];
                assert!(l == want || (l.is_nan() && want.is_nan()), "{classes} classes, row {i}: {l} vs {want}");
            }

            let g = T::from_vec((0..n).map(|i| i as f32 / 7.0 - 2.0).collect::<Vec<f32>>(), [n]).unwrap();
            let fused = sparse_softmax_cross_entropy_grad(&probs, &labels, &g).unwrap();
            let composed = crate::binary(
                BinaryOp::Mul,
                &crate::binary(BinaryOp::Sub, &probs, &one_hot(&logits, &labels).unwrap()).unwrap(),
                &crate::reshape(&g, &[-1, 1]).unwrap(),
            )
            .unwrap();
            assert_eq!(bits(fused.to_vec().unwrap()), bits(composed.to_vec().unwrap()), "{classes} classes: gradient");
        }
        let probs = T::from_vec(vec![0.5f32; 6], [3, 2]).unwrap();
        let labels = T::from_vec(vec![0i32, 1, 1], [3]).unwrap();
        let err = sparse_softmax_cross_entropy_grad(&probs, &labels, &T::from_vec(vec![1.0f32; 2], [2]).unwrap());
        assert!(err.unwrap_err().to_string().contains("sparse_softmax_cross_entropy_grad"));
        let wide = T::from_vec(vec![1.0f32; 3], [3]).unwrap().to_dtype(DType::F16);
        assert!(sparse_softmax_cross_entropy_grad(&probs, &labels, &wide).is_err());
        let half = probs.to_dtype(DType::F16);
        let msg = sparse_softmax_cross_entropy_grad(&half, &labels, &wide).unwrap_err().to_string();
        assert!(msg.contains("sparse_softmax_cross_entropy_grad") && msg.contains("float16"), "{msg}");
        let bad = T::from_vec(vec![0i32, 2, 1], [3]).unwrap();
        assert!(sparse_softmax_cross_entropy_grad(&probs, &bad, &T::from_vec(vec![1.0f32; 3], [3]).unwrap()).is_err());
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
