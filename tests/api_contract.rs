//! The snippet of the API contract (docs/API.md), verbatim: it must compile and every
//! assertion in it must hold.

use tapeflow::prelude::*; // Tensor, Variable, GradientTape, DType, Shape, Error, Result,
// UnconnectedGradients, GradientOptions, constant, stop_gradient, f16

fn tour() -> Result<()> {
    // Tensors: constant() maps Rust literals like TensorFlow maps Python ones.
    let c = constant(3.0); // float32 scalar
    let i = constant(30); // int32 scalar
    let v = constant([1.0, 2.0, 3.0]); // float32, shape (3,)
    let m = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2])?;
    let h = Tensor::from_vec(vec![f16::from_f32(1.5); 4], [4])?; // float16
    let z = Tensor::zeros([2, 3], DType::F32);
    assert_eq!(c.dtype(), DType::F32);
    assert_eq!(i.dtype(), DType::I32);
    assert_eq!(m.dims(), &[2, 2]);
    assert_eq!(v.to_vec::<f32>()?, vec![1.0, 2.0, 3.0]);
    assert_eq!(c.to_scalar::<f32>()?, 3.0);
    let _ = (h.cast(DType::F32)?, z);
    assert!(Tensor::from_vec(vec![1.0f32; 5], [2, 2]).is_err()); // bad input is an Err

    // Math: methods on Tensor and on Variable (a variable read is recorded as an access).
    // Every tensor argument of an op accepts a Tensor, a Variable or a Rust scalar, by
    // reference or by value. Rust scalars adopt the other operand's dtype, as TF converts
    // Python numbers: on a float32 x, x.pow(3) is float32; on an int32 x, x * 2.5 is an Err.
    // std::ops operators (+ - * / and unary -) work between Tensor, &Tensor and &Variable,
    // with a Rust scalar on either side, and with Result<Tensor> on either side of a tensor
    // operand (Rust's orphan rule forbids Result<Tensor> beside a scalar or another Result);
    // they return Result<Tensor>, so expressions chain with one `?`.
    let y = (m.matmul(&m)? * 2.0 + &m)?;
    let wv = Variable::new(Tensor::zeros([2, 2], DType::F32));
    let _ = (m.matmul(&wv)?, (&wv * &m)?, (2.0 - &wv)?, -&m);
    let s = y.sum_all()?; // also: sum(axes, keepdims), mean, max
    let _ = (s, v.pow(2.0)?, v.exp()?, m.transpose(&[1, 0])?, m.reshape([4])?);

    // Variables
    let x = Variable::new(20.0); // float32, trainable, named "Variable:0"
    println!("{x}"); // <Variable 'Variable:0' shape=() dtype=float32, value=20.0>
    let xi = Variable::new(30); // int32
    let xf = Variable::with_dtype(30, DType::F32)?; // like tf.Variable(30, dtype=tf.float32)
    let frozen = Variable::builder(5.0).trainable(false).name("frozen").build()?;
    assert!(!frozen.trainable());
    let _ = (xi, xf);

    // The `with tf.GradientTape() as tape:` block is a closure passed to record().
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2.0))?; // record() returns what the closure returns
    let dy_dx: Option<Tensor> = tape.gradient(&y, &x)?;
    assert_eq!(dy_dx.unwrap().to_scalar::<f32>()?, 40.0);
    assert!(tape.gradient(&y, &x).is_err()); // non-persistent: one set of gradients only

    // Watching a constant, options as builder methods.
    let tape = GradientTape::new().persistent(true).watch_accessed_variables(false);
    let y = tape.record(|| {
        tape.watch(&c);
        c.pow(2.0)
    })?;
    assert_eq!(tape.gradient(&y, &c)?.unwrap().to_scalar::<f32>()?, 6.0);
    assert!(tape.gradient(&y, &x)?.is_none()); // x was never accessed on this tape

    // Several targets and sources; targets are summed, one result per source.
    let (x0, x1) = (Variable::new(5.0), Variable::new(10.0));
    let tape = GradientTape::new().persistent(true);
    let (y0, y1) = tape.record(|| Ok::<_, Error>((x0.pow(2.0)?, x1.pow(2.0)?)))?;
    let gs: Vec<Option<Tensor>> = tape.gradients(&[&y0, &y1], &[&x0, &x1])?;
    assert_eq!(gs.len(), 2);

    // Options: output gradients (VJP seeds) and unconnected gradients as zeros.
    let opts = GradientOptions::default().output_gradients(vec![constant(2.0)]).unconnected(UnconnectedGradients::Zero);
    let g = tape.gradient_with(&y0, &x1, opts)?; // zeros of x1's shape, not None
    assert_eq!(g.unwrap().to_scalar::<f32>()?, 0.0);

    // Higher order: nest tapes; the inner gradient is recorded by the outer tape.
    let (a, b) = (Variable::new(2.0), Variable::new(3.0));
    let outer = GradientTape::new();
    let dy_da = outer.record(|| {
        let inner = GradientTape::new();
        let y = inner.record(|| a.pow(2.0)? * b.pow(3.0)?)?;
        inner.gradient(&y, &a).map(Option::unwrap)
    })?;
    assert_eq!(outer.gradient(&dy_da, &b)?.unwrap().to_scalar::<f32>()?, 108.0);

    // Jacobians.
    let w = Variable::new([1.0, 2.0]);
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| w.pow(2.0))?;
    let j = tape.jacobian(&y, &w)?.unwrap(); // shape (2, 2): [[2, 0], [0, 4]]
    assert_eq!(j.dims(), &[2, 2]);
    let xb = Variable::new(Tensor::from_vec(vec![1.0f32; 6], [3, 2])?);
    let yb = tape.record(|| xb.tanh())?;
    assert_eq!(tape.batch_jacobian(&yb, &xb)?.unwrap().dims(), &[3, 2, 2]);

    // Pausing, resetting, inspecting.
    let tape = GradientTape::new();
    let y = tape.record(|| tape.stop_recording(|| x.pow(2.0)))?;
    assert!(tape.gradient(&y, &x)?.is_none());
    let _ = (tape.watched_variables(), stop_gradient(&c));

    // Training: variables are updated in place.
    x.assign_sub(&(constant(0.1) * &dy_da)?)?;
    Ok(())
}

#[test]
fn api_contract_snippet_runs() {
    tour().expect("the API.md snippet returns Ok");
}

/// The masks part of `shared/api/catalog2.md` (bool, comparisons, logical ops, `select`,
/// classification, `any` / `all`), line for line.
fn catalog2_masks() -> Result<()> {
    let a = constant([1.0, 2.0, 3.0]);
    let b = constant([3.0, 2.0, 1.0]);
    let m = a.greater(&b)?; // tf.math.greater
    assert_eq!(m.dtype(), DType::Bool);
    assert_eq!(m.to_vec::<bool>()?, vec![false, false, true]);
    assert_eq!(format!("{m}"), "Tensor([False False  True], shape=(3,), dtype=bool)");
    let _ = (a.equal(&b)?, a.not_equal(2.0)?, a.less(&b)?, a.less_equal(&b)?, a.greater_equal(&b)?);
    let _ = (m.logical_and(&a.less(3.0)?)?, m.logical_or(&m)?, m.logical_xor(&m)?, m.logical_not()?);
    let _ = (a.is_nan()?, a.is_finite()?, a.is_inf()?, m.cast(DType::F32)?);
    assert_eq!(constant([true, false]).dtype(), DType::Bool);
    assert_eq!(Tensor::from_vec(vec![true, false], [2])?.dims(), &[2]);
    assert!(a.logical_and(&m).is_err()); // logical ops take bool only

    let x = Variable::new([1.0, 2.0, 3.0]);
    let tape = GradientTape::new();
    let y = tape.record(|| select(&m, &x, 0.0))?; // [0, 0, 3]
    assert_eq!(tape.gradient(&y, &x)?.unwrap().to_vec::<f32>()?, vec![0.0, 0.0, 1.0]);
    assert_eq!(y.to_vec::<f32>()?, vec![0.0, 0.0, 3.0]);
    let _ = (m.any(&[0], false)?, m.all(&[0], false)?);
    Ok(())
}

#[test]
fn catalog2_masks_snippet_runs() {
    catalog2_masks().expect("the catalog2.md masks lines return Ok");
}
