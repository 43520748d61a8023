//! Fused optimizer updates: one pass over a weight tensor, its gradient and the optimizer's
//! f32 state, producing the new weights.
//!
//! Weights and gradients of float16 are widened to f32 in one slice conversion (F16C), the
//! update runs in f32, and the new weights are rounded to float16 once. The element loops
//! are straight-line f32 arithmetic over zipped slices, compiled once per instruction-set
//! level (kernel entry points of [`crate::isa`]) and vectorized by the compiler at that
//! level (sqrt and division included: both are exactly rounded, so vectorizing them changes
//! no bit, and Rust never fuses a multiply and an add on its own). Each element is computed
//! with the same operations in the same order as Keras writes the update, so every level
//! gives the same bits.
//! Large tensors split over rayon in the fixed chunks of [`crate::parallel`].

use tapeflow_dtype::{Error, Result, Tensor};

use crate::elementwise::{float_storage, float_view};
use crate::isa::{self, Simd, kernel};
use crate::parallel::{CHUNK, PARALLEL_MIN_WORK, for_each_item};

/// Whether an update of `n` weights at `cost` (an add being 1) per weight is worth
/// splitting over rayon. Every element is computed alike in either case, so the result
/// does not depend on the thread count.
fn splits(n: usize, cost: usize) -> bool {
    n.saturating_mul(cost) >= PARALLEL_MIN_WORK
}

/// Hyperparameters of one SGD step (Keras `SGD`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep {
    /// The learning rate.
    pub learning_rate: f32,
    /// The momentum factor; 0 means plain gradient descent (no velocity is kept).
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// Hyperparameters of one Adam step (Keras `Adam`, and `AdamW` with a weight decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// The learning rate (used by the decoupled weight decay).
    pub learning_rate: f32,
    /// The bias-corrected step size `lr · sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ)`.
    pub alpha: f32,
    /// `1 − β₁`.
    pub one_minus_beta_1: f32,
    /// `1 − β₂`.
    pub one_minus_beta_2: f32,
    /// The epsilon added to `sqrt(v)`.
    pub epsilon: f32,
    /// The decoupled weight decay (AdamW); 0 for Adam.
    pub weight_decay: f32,
}

/// Checks that `grad` fits `weights` (float, same dtype and shape) and that every state
/// buffer has one f32 per weight.
fn check<R>(op: &'static str, weights: &Tensor<R>, grad: &Tensor<R>, state: &[usize]) -> Result<()> {
    if !weights.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, shape: weights.shape().clone(), dtype: weights.dtype() });
    }
    if grad.dtype() != weights.dtype() {
        return Err(Error::dtype_mismatch(op, grad, weights));
    }
    if grad.shape() != weights.shape() {
        return Err(Error::shape_mismatch(op, grad, weights, "a gradient must have its variable's shape"));
    }
    if let Some(&len) = state.iter().find(|&&len| len != weights.num_elements()) {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "optimizer state of {len} values for weights of shape {} {}",
                weights.shape(),
                weights.dtype()
            ),
        });
    }
    Ok(())
}

/// One SGD step: the new weights, with `velocity` (one f32 per weight; empty when the
/// momentum is 0) updated in place. Keras' rule:
/// `v = -g·lr + v·momentum; w += v`, or with Nesterov `w += -g·lr + v·momentum`;
/// without momentum `w -= g·lr`.
pub fn sgd<R>(step: SgdStep, weights: &Tensor<R>, grad: &Tensor<R>, velocity: &mut [f32]) -> Result<Tensor<R>> {
    let mut out = weights.clone();
    sgd_in_place(step, &mut out, grad, velocity)?;
    Ok(out)
}

/// [`sgd`] that replaces `weights` by the new weights, overwriting its storage when no
/// other tensor shares it (see [`Tensor::unique_slice_mut`]). On `Err` nothing changed.
pub fn sgd_in_place<R>(step: SgdStep, weights: &mut Tensor<R>, grad: &Tensor<R>, velocity: &mut [f32]) -> Result<()> {
    let state: &[usize] = if step.momentum == 0.0 { &[] } else { &[velocity.len()] };
    check("apply_gradients", weights, grad, state)?;
    let g = float_view(grad).unwrap_or_default();
    let SgdStep { learning_rate: lr, momentum, .. } = step;
    let level = isa::current();
    update_weights(weights, |w| {
        let parallel = splits(w.len(), 1);
        if momentum == 0.0 {
            let rule = |w: &mut [f32], g: &[f32]| sgd_run(level, w, g, lr);
            if parallel {
                for_each_item(w.chunks_mut(CHUNK).zip(g.chunks(CHUNK)).collect(), |_, (w, g)| rule(w, g));
            } else {
                rule(w, &g);
            }
        } else {
            let rule = |w: &mut [f32], g: &[f32], velocity: &mut [f32]| {
                momentum_run(level, w, g, velocity, step);
            };
            if parallel {
                let chunks = w.chunks_mut(CHUNK).zip(g.chunks(CHUNK)).zip(velocity.chunks_mut(CHUNK));
                for_each_item(chunks.collect(), |_, ((w, g), v)| rule(w, g, v));
            } else {
                rule(w, &g, velocity);
            }
        }
    })
}

/// One Adam (or AdamW) step: the new weights, with the first and second moments `m` and
/// `v` (one f32 per weight each) updated in place. Keras' rule, in this order:
/// `w -= w·wd·lr` (AdamW only), `m += (g − m)(1 − β₁)`, `v += (g² − v)(1 − β₂)`,
/// `w -= m·α / (sqrt(v) + ε)`.
pub fn adam<R>(
    step: AdamStep,
    weights: &Tensor<R>,
    grad: &Tensor<R>,
    m: &mut [f32],
    v: &mut [f32],
) -> Result<Tensor<R>> {
    let mut out = weights.clone();
    adam_in_place(step, &mut out, grad, m, v)?;
    Ok(out)
}

/// [`adam`] that replaces `weights` by the new weights, overwriting its storage when no
/// other tensor shares it (see [`Tensor::unique_slice_mut`]). On `Err` nothing changed.
pub fn adam_in_place<R>(
    step: AdamStep,
    weights: &mut Tensor<R>,
    grad: &Tensor<R>,
    m: &mut [f32],
    v: &mut [f32],
) -> Result<()> {
    check("apply_gradients", weights, grad, &[m.len(), v.len()])?;
    let g = float_view(grad).unwrap_or_default();
    let level = isa::current();
    update_weights(weights, |w| {
        let rule = |w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| adam_run(level, w, g, m, v, step);
        if splits(w.len(), 4) {
            let chunks = w.chunks_mut(CHUNK).zip(g.chunks(CHUNK)).zip(m.chunks_mut(CHUNK).zip(v.chunks_mut(CHUNK)));
            for_each_item(chunks.collect(), |_, ((w, g), (m, v))| rule(w, g, m, v));
        } else {
            rule(w, &g, m, v);
        }
    })
}

kernel! {
    /// Plain gradient descent over one run: `w -= g·lr`.
    fn sgd_run<'a>(w: &'a mut [f32], g: &'a [f32], lr: f32) => sgd_body;
}

#[inline(always)]
fn sgd_body<S: Simd>(_: S, w: &mut [f32], g: &[f32], lr: f32) {
    for (w, &g) in w.iter_mut().zip(g) {
        *w -= g * lr;
    }
}

kernel! {
    /// SGD with momentum (Nesterov or not) over one run.
    fn momentum_run<'a>(w: &'a mut [f32], g: &'a [f32], velocity: &'a mut [f32], step: SgdStep) => momentum_body;
}

#[inline(always)]
fn momentum_body<S: Simd>(_: S, w: &mut [f32], g: &[f32], velocity: &mut [f32], step: SgdStep) {
    let SgdStep { learning_rate: lr, momentum, nesterov } = step;
    for ((w, &g), v) in w.iter_mut().zip(g).zip(velocity) {
        *v = -g * lr + *v * momentum;
        *w = if nesterov { *w + (-g * lr + *v * momentum) } else { *w + *v };
    }
}

kernel! {
    /// Adam (AdamW) over one run.
    fn adam_run<'a>(w: &'a mut [f32], g: &'a [f32], m: &'a mut [f32], v: &'a mut [f32], step: AdamStep) => adam_body;
}

#[inline(always)]
fn adam_body<S: Simd>(_: S, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: AdamStep) {
    let AdamStep { learning_rate: lr, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, weight_decay } = step;
    for ((w, &g), (m, v)) in w.iter_mut().zip(g).zip(m.iter_mut().zip(v)) {
        let w0 = if weight_decay == 0.0 { *w } else { *w - *w * weight_decay * lr };
        *m += (g - *m) * one_minus_beta_1;
        *v += (g * g - *v) * one_minus_beta_2;
        *w = w0 - (*m * alpha) / (v.sqrt() + epsilon);
    }
}

/// Runs `update` over the weights as f32: in place when `weights` is f32 and nothing else
/// shares its storage (no new buffer, no write-allocate pass over one); otherwise on an f32
/// copy (widened from float16), rounded once into a new tensor that replaces `weights`.
/// Either way every element goes through the same arithmetic.
fn update_weights<R>(weights: &mut Tensor<R>, update: impl FnOnce(&mut [f32])) -> Result<()> {
    if let Some(w) = weights.unique_slice_mut::<f32>() {
        update(w);
        return Ok(());
    }
    let storage = {
        let current = float_view(weights).unwrap_or_default();
        float_storage(weights.dtype(), weights.num_elements(), |out| {
            out.copy_from_slice(&current);
            update(out);
        })
    };
    *weights = Tensor::from_storage(storage, weights.shape().clone())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    type T = Tensor<()>;

    #[test]
    fn sgd_with_momentum_matches_the_keras_formula() {
        // velocity = 0.9·0.5 − 2·0.1 = 0.25; w = 1 + 0.25
        let w = T::from_vec(vec![1.0f32, -1.0], [2]).unwrap();
        let g = T::from_vec(vec![2.0f32, 0.0], [2]).unwrap();
        let mut velocity = vec![0.5f32, 0.5];
        let step = SgdStep { learning_rate: 0.1, momentum: 0.9, nesterov: false };
        let out = sgd(step, &w, &g, &mut velocity).unwrap();
        assert!((velocity[0] - 0.25).abs() < 1e-6 && (velocity[1] - 0.45).abs() < 1e-6);
        let out = out.to_vec::<f32>().unwrap();
        assert!((out[0] - 1.25).abs() < 1e-6 && (out[1] + 0.55).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn adam_first_step_moves_by_the_learning_rate() {
        // At t = 1 with zero moments, m·α / sqrt(v) = lr·sign(g) (up to ε).
        let lr = 0.01f32;
        let alpha = lr * (1.0f32 - 0.999).sqrt() / (1.0 - 0.9);
        let step = AdamStep {
            learning_rate: lr,
            alpha,
            one_minus_beta_1: 0.1,
            one_minus_beta_2: 0.001,
            epsilon: 1e-7,
            weight_decay: 0.0,
        };
        let n = 37; // a length that is no multiple of any vector width
        let w = T::from_vec(vec![f16::from_f32(1.0); n], [n]).unwrap();
        let g = T::from_vec((0..n).map(|i| f16::from_f32(i as f32 - 18.5)).collect(), [n]).unwrap();
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let out = adam(step, &w, &g, &mut m, &mut v).unwrap().to_vec::<f16>().unwrap();
        for (i, o) in out.iter().enumerate() {
            let expected = 1.0 - lr * (i as f32 - 18.5).signum();
            assert!((o.to_f32() - expected).abs() <= 1e-3, "{i}: {o} vs {expected}");
        }
    }

    #[test]
    fn every_level_gives_the_same_bits() {
        // Keras' operations in Keras' order, no fused multiply-adds: vectorizing at any
        // level changes no bit. Lengths cover the vector tails.
        for n in [0usize, 1, 15, 16, 17, 100, 1000] {
            let w = T::from_vec((0..n).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<f32>>(), [n]).unwrap();
            let g = T::from_vec((0..n).map(|i| (i as f32 * 0.11).cos()).collect::<Vec<f32>>(), [n]).unwrap();
            let adam_step = AdamStep {
                learning_rate: 0.01,
                alpha: 0.02,
                one_minus_beta_1: 0.1,
                one_minus_beta_2: 0.001,
                epsilon: 1e-7,
                weight_decay: 0.004,
            };
            let run = |level: isa::Isa| {
                isa::with_isa(level, || {
                    let (mut m, mut v, mut vel) = (vec![0.5f32; n], vec![0.25f32; n], vec![0.1f32; n]);
                    let a = adam(adam_step, &w, &g, &mut m, &mut v).unwrap().to_vec::<f32>().unwrap();
                    let step = SgdStep { learning_rate: 0.1, momentum: 0.9, nesterov: true };
                    let s = sgd(step, &w, &g, &mut vel).unwrap().to_vec::<f32>().unwrap();
                    let step = SgdStep { learning_rate: 0.1, momentum: 0.0, nesterov: false };
                    let p = sgd(step, &w, &g, &mut []).unwrap().to_vec::<f32>().unwrap();
                    [a, m, v, s, vel, p].map(|x| x.iter().map(|v| v.to_bits()).collect::<Vec<u32>>())
                })
            };
            let baseline = run(isa::Isa::Baseline);
            for level in isa::supported_levels() {
                assert_eq!(run(level.isa()), baseline, "{level:?}, n = {n}");
            }
        }
    }

    #[test]
    fn split_updates_equal_inline_updates_bit_for_bit() {
        // 300 000 weights take the rayon path; the same weights in pieces of 1000 run inline.
        let n: usize = 300_000;
        let w: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
        let g: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 1999) as f32 / 500.0 - 2.0).collect();
        let adam_step = AdamStep {
            learning_rate: 0.01,
            alpha: 0.02,
            one_minus_beta_1: 0.1,
            one_minus_beta_2: 0.001,
            epsilon: 1e-7,
            weight_decay: 0.004,
        };
        let sgd_step = SgdStep { learning_rate: 0.1, momentum: 0.9, nesterov: true };
        type Update<'a> = &'a dyn Fn(&T, &T, &mut [f32], &mut [f32]) -> T;
        let whole = |f: Update<'_>, w: &[f32], g: &[f32]| {
            let (mut s1, mut s2) = (vec![0.5f32; w.len()], vec![0.25f32; w.len()]);
            let out = f(&T::from_slice(w, [w.len()]).unwrap(), &T::from_slice(g, [g.len()]).unwrap(), &mut s1, &mut s2);
            (out.to_vec::<f32>().unwrap(), s1, s2)
        };
        let adam_fn = |w: &T, g: &T, m: &mut [f32], v: &mut [f32]| adam(adam_step, w, g, m, v).unwrap();
        let sgd_fn = |w: &T, g: &T, v: &mut [f32], _: &mut [f32]| sgd(sgd_step, w, g, v).unwrap();
        for f in [&adam_fn as Update<'_>, &sgd_fn] {
            let big = whole(f, &w, &g);
            let mut pieces = (Vec::new(), Vec::new(), Vec::new());
            for (wc, gc) in w.chunks(1000).zip(g.chunks(1000)) {
                let (o, s1, s2) = whole(f, wc, gc);
                pieces.0.extend(o);
                pieces.1.extend(s1);
                pieces.2.extend(s2);
            }
            assert!(big == pieces, "split and inline updates differ");
        }
    }

    #[test]
    fn bad_operands_are_errors() {
        let w = T::from_vec(vec![1.0f32; 4], [2, 2]).unwrap();
        let step = SgdStep { learning_rate: 0.1, momentum: 0.0, nesterov: false };
        let g = T::from_vec(vec![1.0f32; 4], [4]).unwrap();
        let msg = sgd(step, &w, &g, &mut []).unwrap_err().to_string();
        assert!(msg.contains("apply_gradients") && msg.contains("(4,)") && msg.contains("(2, 2)"), "{msg}");
        let g = T::from_vec(vec![f16::ONE; 4], [2, 2]).unwrap();
        let msg = sgd(step, &w, &g, &mut []).unwrap_err().to_string();
        assert!(msg.contains("float16") && msg.contains("float32"), "{msg}");
        let wi = T::from_vec(vec![1i32; 4], [2, 2]).unwrap();
        assert!(sgd(step, &wi, &wi, &mut []).is_err());
        let momentum = SgdStep { momentum: 0.9, ..step };
        assert!(sgd(momentum, &w, &w, &mut [0.0; 3]).is_err());
    }
}
