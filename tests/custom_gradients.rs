//! `custom_gradient`, `recompute_grad` and variable reads (`value()` / `read_value()`),
//! against TensorFlow's semantics for each.

use tapeflow::prelude::*;

/// The TF guide's `log1pexp`: `log(1 + e^x)` with the stable gradient `1 − 1/(1 + e^x)`.
fn log1pexp(x: &Tensor) -> Result<Tensor> {
    custom_gradient(&[x], |xs| {
        let e = xs[0].exp()?;
        let value = (&e + 1.0)?.log()?;
        let grad = move |g: &Tensor| -> Result<Vec<Option<Tensor>>> {
            let s = (1.0 - (1.0 / (&e + 1.0)?)?)?;
            Ok(vec![Some((g * &s)?)])
        };
        Ok((value, grad))
    })
}

#[test]
fn custom_gradient_replaces_the_gradient_of_tensors_and_variables() -> Result<()> {
    // The plain composition overflows at x = 100 (inf / inf); the custom one stays finite.
    let x = constant([0.0, 100.0]);
    let tape = GradientTape::new();
    tape.watch(&x);
    let y = tape.record(|| log1pexp(&x))?;
    assert_eq!(y.to_vec::<f32>()?[0], 2f32.ln());
    let g = tape.gradient(&y, &x)?.unwrap().to_vec::<f32>()?;
    assert_eq!(g, vec![0.5, 1.0]);

    let plain_tape = GradientTape::new();
    plain_tape.watch(&x);
    let plain = plain_tape.record(|| (x.exp()? + 1.0)?.log())?;
    assert!(plain_tape.gradient(&plain, &x)?.unwrap().to_vec::<f32>()?[1].is_nan());
    Ok(())
}

#[test]
fn custom_gradient_ops_are_not_recorded_but_its_gradient_function_is() -> Result<()> {
    // Second order through a custom gradient: the gradient function's ops are recorded on
    // the outer tape while the inner one computes its gradient (d/dx of 1 − 1/(1 + e^x) is
    // sigmoid'(x) = s(1 − s)).
    // As in TensorFlow, the value function's own ops (e^x here) are not recorded, so a
    // gradient function meant to be differentiated again computes from its inputs.
    let from_input = |x: &Tensor| {
        custom_gradient(&[x], |xs| {
            let x = xs[0].clone();
            let value = (x.exp()? + 1.0)?.log()?;
            let grad = move |g: &Tensor| -> Result<Vec<Option<Tensor>>> { Ok(vec![Some((g * x.sigmoid()?)?)]) };
            Ok((value, grad))
        })
    };
    let x = Variable::new(0.5);
    let outer = GradientTape::new();
    let g = outer.record(|| -> Result<Tensor> {
        let inner = GradientTape::new();
        let y = inner.record(|| from_input(&x.read()))?;
        Ok(inner.gradient(&y, &x)?.unwrap())
    })?;
    let s = 1.0 / (1.0 + (-0.5f32).exp());
    assert!((g.to_scalar::<f32>()? - s).abs() < 1e-6);
    let gg = outer.gradient(&g, &x)?.unwrap().to_scalar::<f32>()?;
    assert!((gg - s * (1.0 - s)).abs() < 1e-6, "{gg}");
    Ok(())
}

#[test]
fn custom_gradient_with_several_inputs_and_none() -> Result<()> {
    // A clipped identity on the first input, nothing for the second.
    let (a, b) = (Variable::new([1.0, -2.0]), Variable::new(3.0));
    let tape = GradientTape::new();
    let y = tape.record(|| -> Result<Tensor> {
        let z = custom_gradient(&[&a.read(), &b.read()], |xs| {
            let value = (&xs[0] * &xs[1])?;
            let grad =
                |g: &Tensor| -> Result<Vec<Option<Tensor>>> { Ok(vec![Some(g.clip_by_value(-0.5, 0.5)?), None]) };
            Ok((value, grad))
        })?;
        (z * 10.0)?.sum_all()
    })?;
    let gs = tape.gradients(&[&y], &[&a, &b])?;
    assert_eq!(gs[0].as_ref().unwrap().to_vec::<f32>()?, vec![0.5, 0.5]);
    assert!(gs[1].is_none());
    Ok(())
}

#[test]
fn custom_gradient_returning_its_input_unchanged_is_an_op_of_its_own() -> Result<()> {
    // tf.custom_gradient's "clip gradients" pattern: the identity forward.
    let x = Variable::new([1.0, 2.0]);
    let tape = GradientTape::new();
    let y = tape.record(|| -> Result<Tensor> {
        let id = custom_gradient(&[&x], |xs| {
            let grad = |g: &Tensor| -> Result<Vec<Option<Tensor>>> { Ok(vec![Some((g * 0.0)?)]) };
            Ok((xs[0].clone(), grad))
        })?;
        id.square()?.sum_all()
    })?;
    assert_eq!(tape.gradient(&y, &x)?.unwrap().to_vec::<f32>()?, vec![0.0, 0.0]);
    Ok(())
}

#[test]
fn wrong_gradients_are_errors_naming_the_op() -> Result<()> {
    let x = Variable::new([1.0, 2.0]);
    type Make = fn(&Tensor) -> Result<Vec<Option<Tensor>>>;
    let bad: [Make; 3] = [
        |g| Ok(vec![Some(g.clone()), None]),     // two gradients for one input
        |g| Ok(vec![Some(g.sum_all()?)]),        // the wrong shape
        |g| Ok(vec![Some(g.cast(DType::F16)?)]), // the wrong dtype
    ];
    for make in bad {
        let tape = GradientTape::new();
        let y = tape.record(|| custom_gradient(&[&x], |xs| Ok((xs[0].square()?, make))))?;
        let err = tape.gradient(&y, &x).unwrap_err();
        assert!(err.to_string().starts_with("custom_gradient:"), "{err}");
    }
    // An Err from the value function itself is returned as is.
    let tape = GradientTape::new();
    let failed = tape.record(|| {
        custom_gradient(&[&x], |xs| {
            let grad = |g: &Tensor| -> Result<Vec<Option<Tensor>>> { Ok(vec![Some(g.clone())]) };
            Ok((xs[0].matmul(&xs[0])?, grad))
        })
    });
    assert!(failed.is_err());
    Ok(())
}

#[test]
fn custom_gradient_in_float16_inside_jacobians_and_forward_mode() -> Result<()> {
    let x = constant([0.5, -1.0, 2.0]);
    // jacobian and batch_jacobian go through the custom rule row by row.
    let tape = GradientTape::new().persistent(true);
    tape.watch(&x);
    let y = tape.record(|| log1pexp(&x))?;
    let jac = tape.jacobian(&y, &x)?.unwrap();
    let sig: Vec<f32> = x.sigmoid()?.to_vec()?;
    let want = [sig[0], 0.0, 0.0, 0.0, sig[1], 0.0, 0.0, 0.0, sig[2]];
    for (got, want) in jac.to_vec::<f32>()?.iter().zip(want) {
        assert!((got - want).abs() < 1e-6);
    }
    let xb = x.reshape([3, 1])?;
    let tape = GradientTape::new();
    tape.watch(&xb);
    let yb = tape.record(|| log1pexp(&xb))?;
    let bj = tape.batch_jacobian(&yb, &xb)?.unwrap();
    assert_eq!(bj.dims(), &[3, 1, 1]);
    for (got, want) in bj.to_vec::<f32>()?.iter().zip(&sig) {
        assert!((got - want).abs() < 1e-6);
    }

    // Forward mode pushes a tangent through the gradient function, transposed.
    let acc = ForwardAccumulator::new().primal(&x, &constant([1.0, 1.0, 1.0]))?;
    let y = acc.record(|| log1pexp(&x))?;
    for (got, want) in acc.jvp(&y)?.unwrap().to_vec::<f32>()?.iter().zip(&sig) {
        assert!((got - want).abs() < 1e-6);
    }

    // Float16.
    let h = Variable::new(constant([0.0, 1.0]).cast(DType::F16)?);
    let tape = GradientTape::new();
    let y = tape.record(|| log1pexp(&h.read())?.sum_all())?;
    let g = tape.gradient(&y, &h)?.unwrap();
    assert_eq!(g.dtype(), DType::F16);
    assert_eq!(g.to_f64_vec()[0], 0.5);
    Ok(())
}

/// The contract's block: three elementwise ops and a variable.
fn block(scale: &Variable) -> impl Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static {
    let scale = scale.clone();
    move |xs: &[Tensor]| (&xs[0].tanh()?.sin()? * &scale)?.tanh()
}

#[test]
fn recompute_grad_gives_the_plain_gradients_bit_for_bit() -> Result<()> {
    let v = Variable::new(Tensor::from_vec((0..256).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), [256])?);
    let scale = Variable::new(1.5);
    let run = |recompute: bool| -> Result<Vec<Vec<f32>>> {
        let tape = GradientTape::new();
        let out = tape.record(|| -> Result<Tensor> {
            let mut h = v.read();
            for _ in 0..4 {
                h = if recompute { recompute_grad(&[&h], block(&scale))? } else { block(&scale)(&[h])? };
            }
            h.square()?.sum_all()
        })?;
        tape.gradients(&[&out], &[&v, &scale])?.into_iter().map(|g| g.unwrap().to_vec::<f32>()).collect()
    };
    let (plain, recomputed) = (run(false)?, run(true)?);
    assert_eq!(plain[0], recomputed[0], "the input's gradient");
    // The variable's four contributions are summed in another grouping (within each block
    // first), so only the value, not each bit, can be the same.
    let (p, r) = (plain[1][0], recomputed[1][0]);
    assert!((p - r).abs() <= 1e-6 * p.abs().max(1.0), "scale: {p} vs {r}");
    Ok(())
}

#[test]
fn recompute_grad_runs_the_block_again_only_in_the_backward_pass() -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = Arc::new(AtomicUsize::new(0));
    let x = Variable::new([0.5, 1.0]);
    let counted = {
        let runs = Arc::clone(&runs);
        move |xs: &[Tensor]| -> Result<Tensor> {
            runs.fetch_add(1, Ordering::SeqCst);
            xs[0].exp()?.sin()
        }
    };
    let tape = GradientTape::new();
    let y = tape.record(|| recompute_grad(&[&x], counted)?.sum_all())?;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let g = tape.gradient(&y, &x)?.unwrap().to_vec::<f32>()?;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let want: Vec<f32> = [0.5f32, 1.0].iter().map(|&x| x.exp().cos() * x.exp()).collect();
    for (g, w) in g.iter().zip(want) {
        assert!((g - w).abs() < 1e-6);
    }
    // Outside any tape the block simply runs.
    let plain = recompute_grad(&[&x], |xs: &[Tensor]| xs[0].exp())?;
    assert_eq!(plain.to_vec::<f32>()?, x.exp()?.to_vec::<f32>()?);
    Ok(())
}

#[test]
fn recompute_grad_differentiates_twice_and_in_forward_mode() -> Result<()> {
    let x = Variable::new(0.7);
    let outer = GradientTape::new();
    let g = outer.record(|| -> Result<Tensor> {
        let inner = GradientTape::new();
        let y = inner.record(|| recompute_grad(&[&x], |xs: &[Tensor]| xs[0].sin()))?;
        Ok(inner.gradient(&y, &x)?.unwrap())
    })?;
    assert!((g.to_scalar::<f32>()? - 0.7f32.cos()).abs() < 1e-6);
    assert!((outer.gradient(&g, &x)?.unwrap().to_scalar::<f32>()? + 0.7f32.sin()).abs() < 1e-6);

    let acc = ForwardAccumulator::new().primal(&x, &constant(2.0))?;
    let y = acc.record(|| recompute_grad(&[&x], |xs: &[Tensor]| xs[0].sin()))?;
    assert!((acc.jvp(&y)?.unwrap().to_scalar::<f32>()? - 2.0 * 0.7f32.cos()).abs() < 1e-6);
    Ok(())
}

#[test]
fn value_and_read_value_are_recorded_reads() -> Result<()> {
    let z = Variable::new(3.0);
    let tape = GradientTape::new().persistent(true);
    let (a, b, c) = tape.record(|| -> Result<(Tensor, Tensor, Tensor)> {
        Ok((z.value().pow(2.0)?, z.read_value().pow(2.0)?, z.unrecorded_value().pow(2.0)?))
    })?;
    assert_eq!(tape.gradient(&a, &z)?.unwrap().to_scalar::<f32>()?, 6.0);
    assert_eq!(tape.gradient(&b, &z)?.unwrap().to_scalar::<f32>()?, 6.0);
    assert!(tape.gradient(&c, &z)?.is_none(), "an unrecorded snapshot is not a read");
    Ok(())
}

#[test]
fn hostile_blocks_and_primals_are_errors_that_change_nothing() -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let w = Variable::new([1.0, 2.0]);
    // A block that fails: the Err comes back, the variable is as it was.
    let tape = GradientTape::new();
    let failed = tape.record(|| recompute_grad(&[&w], |xs: &[Tensor]| xs[0].matmul(&xs[0])));
    assert!(matches!(failed, Err(Error::ShapeMismatch { op: "matmul", .. })), "{failed:?}");
    assert_eq!(w.unrecorded_value().to_vec::<f32>()?, vec![1.0, 2.0]);

    // A block that gives another shape when run again: an Err naming recompute_grad, from
    // `gradient`, not a panic.
    let again = Arc::new(AtomicBool::new(false));
    let shifty = {
        let again = Arc::clone(&again);
        move |xs: &[Tensor]| -> Result<Tensor> {
            if again.swap(true, Ordering::SeqCst) { xs[0].sum_all() } else { xs[0].exp() }
        }
    };
    let tape = GradientTape::new();
    let y = tape.record(|| recompute_grad(&[&w], shifty))?;
    let err = tape.gradient(&y, &w).unwrap_err();
    assert!(err.to_string().starts_with("recompute_grad:"), "{err}");

    // An op that fails under an accumulator returns its Err and leaves no tangent.
    let acc = ForwardAccumulator::new().primal(&w, &constant([1.0, 1.0]))?;
    assert!(acc.record(|| w.matmul(&w)).is_err());
    let x = constant([1.0, 2.0]);
    let shapes = [constant([1.0]), constant([[1.0, 1.0]]), constant([1.0, 1.0]).cast(DType::F16)?];
    for tangent in &shapes {
        let err = ForwardAccumulator::new().primal(&x, tangent).err().expect("a tangent that does not fit");
        assert!(err.to_string().starts_with("ForwardAccumulator.primal:"), "{err}");
    }
    Ok(())
}
