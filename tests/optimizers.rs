//! Optimizers against Keras' update rules, computed independently in f64 here.
//! (Its own test binary: it installs a process-wide logger to see the None warning.)

use tapeflow::prelude::*;

#[path = "common/warnings.rs"]
mod warnings;

/// The gradients fed to every optimizer test, one row per step.
const GRADS: [[f64; 3]; 4] = [[0.5, -1.0, 2.0], [0.25, 0.0, -3.0], [-0.75, 1.5, 0.125], [1.0, -0.5, 0.0]];
const START: [f64; 3] = [1.0, -2.0, 0.5];

fn grad(step: usize) -> Vec<Option<Tensor>> {
    vec![Some(Tensor::from_vec(GRADS[step].iter().map(|&g| g as f32).collect(), [3]).unwrap())]
}

fn values(var: &Variable) -> Vec<f64> {
    var.value().to_f64_vec()
}

/// |a − b| ≤ 1e-6 · max(1, |b|) elementwise.
fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= 1e-6 * e.abs().max(1.0), "{what}[{i}]: {a} vs expected {e}");
    }
}

/// Runs `steps` steps of `opt` on a fresh variable and the f64 model `rule(w, g, t)` side
/// by side, comparing after every step.
fn check_against<O: Optimizer>(mut opt: O, steps: usize, mut rule: impl FnMut(&mut [f64; 3], &[f64; 3], u64)) {
    let w = Variable::new(Tensor::from_vec(START.iter().map(|&v| v as f32).collect(), [3]).unwrap());
    let mut model = START;
    for (step, g) in GRADS.iter().enumerate().take(steps) {
        opt.apply_gradients(&grad(step), &[&w]).unwrap();
        rule(&mut model, g, step as u64 + 1);
        assert_close(&values(&w), &model, &format!("step {}", step + 1));
    }
    assert_eq!(opt.iterations(), steps as u64);
}

#[test]
fn sgd_without_momentum_is_w_minus_lr_g() {
    // w ← w − lr·g
    check_against(Sgd::new(0.1), 4, |w, g, _| (0..3).for_each(|i| w[i] -= 0.1 * g[i]));
}

#[test]
fn sgd_momentum_follows_the_keras_velocity() {
    // v ← momentum·v − lr·g;  w ← w + v
    let mut v = [0.0f64; 3];
    check_against(Sgd::new(0.1).momentum(0.9), 4, |w, g, _| {
        for i in 0..3 {
            v[i] = 0.9 * v[i] - 0.1 * g[i];
            w[i] += v[i];
        }
    });
}

#[test]
fn sgd_nesterov_looks_ahead_along_the_velocity() {
    // v ← momentum·v − lr·g;  w ← w + momentum·v − lr·g
    let mut v = [0.0f64; 3];
    check_against(Sgd::new(0.05).momentum(0.8).nesterov(true), 4, |w, g, _| {
        for i in 0..3 {
            v[i] = 0.8 * v[i] - 0.05 * g[i];
            w[i] += 0.8 * v[i] - 0.05 * g[i];
        }
    });
}

/// Adam in f64 with the textbook form of the moments and Keras' bias correction.
fn adam_model(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64) -> impl FnMut(&mut [f64; 3], &[f64; 3], u64) {
    let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
    move |w, g, t| {
        let alpha = lr * (1.0 - b2.powi(t as i32)).sqrt() / (1.0 - b1.powi(t as i32));
        for i in 0..3 {
            w[i] -= w[i] * wd * lr; // AdamW's decoupled decay, before the step
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            w[i] -= alpha * m[i] / (v[i].sqrt() + eps);
        }
    }
}

#[test]
fn adam_matches_keras_bias_corrected_steps() {
    check_against(Adam::new(0.01), 4, adam_model(0.01, 0.9, 0.999, 1e-7, 0.0));
    check_against(Adam::new(0.1).beta_1(0.5).beta_2(0.9).epsilon(1e-3), 4, adam_model(0.1, 0.5, 0.9, 1e-3, 0.0));
}

#[test]
fn adamw_decays_the_weights_before_the_adam_step() {
    check_against(AdamW::new(0.01), 4, adam_model(0.01, 0.9, 0.999, 1e-7, 0.004));
    check_against(AdamW::new(0.05).weight_decay(0.1), 4, adam_model(0.05, 0.9, 0.999, 1e-7, 0.1));
}

#[test]
fn defaults_are_keras_defaults() {
    assert_eq!(Sgd::default().learning_rate(), 0.01);
    assert_eq!(Adam::default().learning_rate(), 0.001);
    assert_eq!(AdamW::default().learning_rate(), 0.001);
    assert_eq!(AdamW::default().weight_decay_rate(), 0.004);
    // Keras' epsilon is 1e-7, and it matters for tiny gradients: at step 1, m = 0.1·g,
    // sqrt(v) = s·g with s = sqrt(0.001), α = lr·s/0.1, so the step is lr·s·g/(s·g + ε).
    let w = Variable::new(0.0);
    Adam::default().apply_gradients(&[Some(constant(1e-6))], &[&w]).unwrap();
    let s = 0.001f64.sqrt();
    let expected = -0.001 * s * 1e-6 / (s * 1e-6 + 1e-7);
    assert!((values(&w)[0] - expected).abs() < 1e-5 * expected.abs(), "{} vs {expected}", values(&w)[0]);
}

#[test]
fn adam_bias_correction_counts_the_optimizer_steps_not_the_variables() {
    // Keras has one `iterations` for all variables: a variable first updated at step 2
    // gets the step-2 correction α = lr·sqrt(1 − β₂²)/(1 − β₁²).
    let (a, b) = (Variable::new(1.0), Variable::new(1.0));
    let mut opt = Adam::new(0.1);
    opt.apply_gradients(&[Some(constant(1.0)), None], &[&a, &b]).unwrap();
    assert_eq!(values(&b), vec![1.0]);
    opt.apply_gradients(&[Some(constant(1.0)), Some(constant(2.0))], &[&a, &b]).unwrap();
    let alpha = 0.1 * (1.0f64 - 0.999f64.powi(2)).sqrt() / (1.0 - 0.9f64.powi(2));
    let (m, v) = (0.1 * 2.0, 0.001 * 4.0);
    let expected = 1.0 - alpha * m / (f64::sqrt(v) + 1e-7);
    assert_close(&values(&b), &[expected], "b after its first update");
    let (m_b, v_b) = opt.moments(&b).unwrap();
    assert_close(&[f64::from(m_b[0]), f64::from(v_b[0])], &[m, v], "b's moments");
}

#[test]
fn float16_variables_update_in_f32_with_f32_state() {
    // Each step: widen w to f32, update, round to float16 once. The model rounds the same way.
    let start: Vec<f16> = START.iter().map(|&v| f16::from_f64(v)).collect();
    let w = Variable::new(Tensor::from_vec(start.clone(), [3]).unwrap());
    let mut opt = Sgd::new(0.1).momentum(0.9);
    let mut model: Vec<f64> = start.iter().map(|v| v.to_f64()).collect();
    let mut velocity = [0.0f64; 3];
    for (step, g) in GRADS.iter().enumerate() {
        let g16: Vec<f16> = g.iter().map(|&v| f16::from_f64(v)).collect();
        opt.apply_gradients(&[Some(Tensor::from_vec(g16, [3]).unwrap())], &[&w]).unwrap();
        for i in 0..3 {
            velocity[i] = 0.9 * velocity[i] - 0.1 * g[i];
            model[i] = f16::from_f64(model[i] + velocity[i]).to_f64();
        }
        assert_eq!(w.dtype(), DType::F16);
        // Rounding of the f32 sum may land one float16 ulp away from the f64 model's.
        for (i, (&a, &e)) in values(&w).iter().zip(&model).enumerate() {
            let ulp = f16::from_f64(e).to_f64().abs().max(1e-3) * 2f64.powi(-10);
            assert!((a - e).abs() <= ulp, "step {step} [{i}]: {a} vs {e}");
        }
    }
    // The state is f32 and tracks the exact velocity, not a float16 rounding of it.
    let kept = opt.velocity(&w).unwrap();
    for (k, v) in kept.iter().zip(velocity) {
        assert!((f64::from(*k) - v).abs() < 1e-6, "{k} vs {v}");
    }
}

#[test]
fn float16_adam_converges_like_float32() {
    let w16 = Variable::new(Tensor::from_vec(vec![f16::from_f32(2.0); 5], [5]).unwrap());
    let w32 = Variable::new(Tensor::from_vec(vec![2.0f32; 5], [5]).unwrap());
    let (mut o16, mut o32) = (Adam::new(0.05), Adam::new(0.05));
    for _ in 0..200 {
        for (w, opt) in [(&w16, &mut o16), (&w32, &mut o32)] {
            let tape = GradientTape::new();
            let loss = tape.record(|| (w - 0.5)?.square()?.sum_all()).unwrap();
            let grads = tape.gradients(&[&loss], &[w]).unwrap();
            opt.apply_gradients(&grads, &[w]).unwrap();
        }
    }
    for (a, b) in values(&w16).iter().zip(values(&w32)) {
        assert!((a - 0.5).abs() < 0.02 && (b - 0.5).abs() < 0.02, "{a} {b}");
    }
}

#[test]
fn a_none_gradient_skips_its_variable_with_a_warning() {
    warnings::capture();
    let a = Variable::builder(1.0).name("a").build().unwrap();
    let b = Variable::builder(1.0).name("skipped").build().unwrap();
    let mut opt = Sgd::new(0.5);
    opt.apply_gradients(&[Some(constant(1.0)), None], &[&a, &b]).unwrap();
    assert_eq!(values(&a), vec![0.5]);
    assert_eq!(values(&b), vec![1.0]);
    assert_eq!(opt.iterations(), 1);
    let lines = warnings::lines();
    assert!(
        lines.iter().any(|l| l == "Gradients do not exist for variables ['skipped:0'] when minimizing the loss."),
        "{lines:?}"
    );
}

#[test]
fn all_none_is_an_error_and_empty_lists_do_nothing() {
    let a = Variable::new(1.0);
    let mut opt = Adam::default();
    let err = opt.apply_gradients(&[None], &[&a]).unwrap_err().to_string();
    assert!(err.contains("apply_gradients") && err.contains("No gradients provided"), "{err}");
    opt.apply_gradients(&[], &[] as &[&Variable]).unwrap();
    assert_eq!(opt.iterations(), 0);
    assert_eq!(values(&a), vec![1.0]);
}

#[test]
fn gradients_from_a_tape_train_a_linear_fit() {
    // Fit y = 3x − 1 with Adam through the tape: the Keras training loop, line by line.
    let x = Tensor::from_vec(vec![-1.0f32, 0.0, 1.0, 2.0], [4, 1]).unwrap();
    let y = Tensor::from_vec(vec![-4.0f32, -1.0, 2.0, 5.0], [4, 1]).unwrap();
    let w = Variable::new(Tensor::zeros([1, 1], DType::F32));
    let b = Variable::new(Tensor::zeros([1], DType::F32));
    let mut opt = Adam::new(0.1);
    let mut first_loss = None;
    let mut loss_value = f32::NAN;
    for _ in 0..300 {
        let tape = GradientTape::new();
        let loss = tape.record(|| (x.matmul(&w)? + &b - &y)?.square()?.mean_all()).unwrap();
        loss_value = loss.to_scalar::<f32>().unwrap();
        first_loss.get_or_insert(loss_value);
        let grads = tape.gradients(&[&loss], &[&w, &b]).unwrap();
        opt.apply_gradients(&grads, &[&w, &b]).unwrap();
    }
    assert!(loss_value < 1e-3 * first_loss.unwrap(), "loss {loss_value} from {first_loss:?}");
    assert!((values(&w)[0] - 3.0).abs() < 0.05 && (values(&b)[0] + 1.0).abs() < 0.05);
}

#[test]
fn bad_calls_are_errors_that_change_nothing() {
    let good = Variable::new(Tensor::from_vec(vec![1.0f32, 2.0], [2]).unwrap());
    let other = Variable::new(Tensor::from_vec(vec![1.0f32; 4], [2, 2]).unwrap());
    let g_good = Some(Tensor::from_vec(vec![1.0f32, 1.0], [2]).unwrap());
    let mut opt = Sgd::new(0.1).momentum(0.9);

    // The first pair is fine, the second wrong: nothing may move, not even the first.
    let wrong_shape = Some(Tensor::from_vec(vec![1.0f32; 4], [4]).unwrap());
    let err = opt.apply_gradients(&[g_good.clone(), wrong_shape], &[&good, &other]).unwrap_err().to_string();
    assert!(err.contains("apply_gradients") && err.contains("(4,)") && err.contains("(2, 2)"), "{err}");
    assert!(err.contains("float32"), "{err}");

    let wrong_dtype = Some(Tensor::from_vec(vec![f16::ONE; 4], [2, 2]).unwrap());
    let err = opt.apply_gradients(&[g_good.clone(), wrong_dtype], &[&good, &other]).unwrap_err().to_string();
    assert!(err.contains("apply_gradients") && err.contains("float16") && err.contains("float32"), "{err}");

    let err = opt.apply_gradients(std::slice::from_ref(&g_good), &[&good, &other]).unwrap_err().to_string();
    assert!(err.contains("apply_gradients") && err.contains("1 gradients for 2 variables"), "{err}");

    let int_var = Variable::new(Tensor::from_vec(vec![1i32, 2], [2]).unwrap());
    let int_grad = Some(Tensor::from_vec(vec![1i32, 1], [2]).unwrap());
    let err = opt.apply_gradients(&[g_good.clone(), int_grad], &[&good, &int_var]).unwrap_err().to_string();
    assert!(err.contains("apply_gradients") && err.contains("int32") && err.contains("(2,)"), "{err}");

    assert_eq!(values(&good), vec![1.0, 2.0]);
    assert_eq!(values(&other), vec![1.0; 4]);
    assert_eq!(values(&int_var), vec![1.0, 2.0]);
    assert!(opt.velocity(&good).is_none(), "no state is created by a refused call");
    assert_eq!(opt.iterations(), 0);

    let mut bad_momentum = Sgd::new(0.1).momentum(1.5);
    let err = bad_momentum.apply_gradients(&[g_good], &[&good]).unwrap_err().to_string();
    assert!(err.contains("momentum") && err.contains("1.5"), "{err}");
    assert_eq!(values(&good), vec![1.0, 2.0]);
}

#[test]
fn optimizers_are_send_sync_and_object_safe() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Sgd>();
    send_sync::<Adam>();
    send_sync::<AdamW>();
    // A boxed optimizer works through `apply`, Keras' other spelling.
    let w = Variable::new(1.0);
    let mut opts: Vec<Box<dyn Optimizer>> = vec![Box::new(Sgd::new(0.5)), Box::new(Adam::new(0.5))];
    for opt in &mut opts {
        opt.apply(&[Some(constant(1.0))], &[&w]).unwrap();
        assert_eq!(opt.iterations(), 1);
    }
    // 1 − 0.5 (SGD), then Adam's first step moves by lr·sign(g) (up to ε's 3e-6 relative).
    assert!(values(&w)[0].abs() < 1e-5, "{}", values(&w)[0]);
}

/// The address of the variable's current buffer (the clone that reads it is dropped at once).
fn buffer_address(var: &Variable) -> usize {
    var.value().as_slice::<f32>().unwrap().as_ptr() as usize
}

#[test]
fn updates_overwrite_unshared_weights_and_never_a_value_someone_holds() {
    updates_in_place_with(Sgd::new(0.1));
    updates_in_place_with(Sgd::new(0.1).momentum(0.9));
    updates_in_place_with(Adam::new(0.01));
}

fn updates_in_place_with<O: Optimizer>(mut opt: O) {
    let w = Variable::new(Tensor::from_vec(vec![0.5f32; 64 * 32], [64, 32]).unwrap());
    // Small enough that tanh(x·w) stays off its saturation (tanh(13) is exactly 1 in f32,
    // where the gradient, and so the update, would be exactly zero).
    let x = Tensor::from_vec((0..8 * 64).map(|i| (i % 7) as f32 / 70.0).collect::<Vec<f32>>(), [8, 64]).unwrap();
    {
        for step in 0..3 {
            // A training step: once backward has run, nothing but the variable holds its
            // value, so the update writes into the same buffer.
            let before = buffer_address(&w);
            let tape = GradientTape::new();
            let loss = tape.record(|| x.matmul(&w)?.tanh()?.sum_all()).unwrap();
            let grads = tape.gradients(&[&loss], &[&w]).unwrap();
            opt.apply_gradients(&grads, &[&w]).unwrap();
            assert_eq!(buffer_address(&w), before, "step {step}: updated in place");

            // A value read before the update keeps its elements: the update goes to a
            // new buffer instead.
            let held = w.value();
            let snapshot = held.to_vec::<f32>().unwrap();
            opt.apply_gradients(&grads, &[&w]).unwrap();
            assert!(held.to_vec::<f32>().unwrap() == snapshot, "step {step}: a held value never changes");
            assert!(w.value().to_vec::<f32>().unwrap() != snapshot, "step {step}: the variable moved");
            assert_ne!(buffer_address(&w), held.as_slice::<f32>().unwrap().as_ptr() as usize);
        }
    }
}
