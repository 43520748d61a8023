//! Every expected result of the seed tutorial (SPEC §5, produced by TensorFlow 2.21),
//! checked both as a value and as the text TensorFlow prints.

use tapeflow::prelude::*;

fn printed(gradient: Option<Tensor>) -> String {
    gradient.map_or_else(|| "None".into(), |g| g.to_string())
}

#[test]
fn a_float_literal_variable_prints_like_tensorflow() {
    let x = Variable::new(20.0);
    assert_eq!(x.to_string(), "<Variable 'Variable:0' shape=() dtype=float32, value=20.0>");
}

#[test]
fn square_at_twenty_has_gradient_exactly_forty() -> Result<()> {
    let x = Variable::new(20.0);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2.0))?;
    let g = tape.gradient(&y, &x)?.expect("connected");
    // d(x²)/dx = 2x = 40, exactly (not 40.000004)
    assert_eq!(g.to_scalar::<f32>()?, 40.0);
    assert_eq!(g.to_string(), "Tensor(40.0, shape=(), dtype=float32)");
    Ok(())
}

#[test]
fn int32_variable_computes_but_has_no_gradient() -> Result<()> {
    let x = Variable::new(30);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    assert_eq!(y.to_string(), "Tensor(27000, shape=(), dtype=int32)");
    assert_eq!(y.to_scalar::<i32>()?, 27000);
    assert!(tape.gradient(&y, &x)?.is_none());
    Ok(())
}

#[test]
fn the_same_value_as_float32_differentiates() -> Result<()> {
    let x = Variable::with_dtype(30, DType::F32)?;
    assert_eq!(x.to_string(), "<Variable 'Variable:0' shape=() dtype=float32, value=30.0>");
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    // d(x³)/dx = 3x² = 2700
    let g = tape.gradient(&y, &x)?.expect("connected");
    assert_eq!(g.to_scalar::<f32>()?, 2700.0);
    assert_eq!(g.to_string(), "Tensor(2700.0, shape=(), dtype=float32)");
    Ok(())
}

#[test]
fn vector_cube_and_its_elementwise_gradient() -> Result<()> {
    let x = Variable::new([1.0, 2.0, 3.0]);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    assert_eq!(y.to_vec::<f32>()?, vec![1.0, 8.0, 27.0]);
    assert_eq!(y.to_string(), "Tensor([ 1.  8. 27.], shape=(3,), dtype=float32)");
    let g = tape.gradient(&y, &x)?.expect("connected");
    // 3x² = [3, 12, 27]
    assert_eq!(g.to_vec::<f32>()?, vec![3.0, 12.0, 27.0]);
    assert_eq!(g.to_string(), "Tensor([ 3. 12. 27.], shape=(3,), dtype=float32)");
    Ok(())
}

#[test]
fn constants_need_an_explicit_watch() -> Result<()> {
    let x = constant(3.0);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2))?;
    assert_eq!(printed(tape.gradient(&y, &x)?), "None");

    let tape = GradientTape::new();
    let y = tape.record(|| {
        tape.watch(&x);
        x.pow(2)
    })?;
    assert_eq!(printed(tape.gradient(&y, &x)?), "Tensor(6.0, shape=(), dtype=float32)");
    Ok(())
}

#[test]
fn non_trainable_variables_are_watched_only_on_request() -> Result<()> {
    let x = Variable::builder(5.0).trainable(false).build()?;
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    assert!(tape.gradient(&y, &x)?.is_none());

    let tape = GradientTape::new();
    let y = tape.record(|| {
        tape.watch(&x);
        x.pow(3)
    })?;
    // 3x² = 75
    assert_eq!(printed(tape.gradient(&y, &x)?), "Tensor(75.0, shape=(), dtype=float32)");
    Ok(())
}

#[test]
fn watch_accessed_variables_false_needs_a_watch() -> Result<()> {
    let x0 = Variable::new(5.0);
    let tape = GradientTape::new().watch_accessed_variables(false);
    let y = tape.record(|| x0.pow(2))?;
    assert!(tape.gradient(&y, &x0)?.is_none());

    let tape = GradientTape::new().watch_accessed_variables(false);
    let y = tape.record(|| {
        tape.watch(&x0);
        x0.pow(2)
    })?;
    assert_eq!(printed(tape.gradient(&y, &x0)?), "Tensor(10.0, shape=(), dtype=float32)");
    Ok(())
}

#[test]
fn a_non_persistent_tape_refuses_a_second_gradient() -> Result<()> {
    let x = Variable::new(3.0);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2))?;
    assert!(tape.gradient(&y, &x)?.is_some());
    let err = tape.gradient(&y, &x).unwrap_err();
    assert_eq!(
        err.to_string(),
        "A non-persistent GradientTape can only be used to compute one set of gradients (or jacobians)"
    );
    // jacobian counts as the one set too
    assert!(tape.jacobian(&y, &x).is_err());
    Ok(())
}

#[test]
fn a_persistent_tape_computes_several_gradients() -> Result<()> {
    let (x0, x1) = (Variable::new(5.0), Variable::new(10.0));
    let tape = GradientTape::new().persistent(true);
    let (y0, y1) = tape.record(|| Ok::<_, Error>((x0.pow(2)?, x1.pow(2)?)))?;
    assert_eq!(printed(tape.gradient(&y0, &x0)?), "Tensor(10.0, shape=(), dtype=float32)");
    assert_eq!(printed(tape.gradient(&y1, &x1)?), "Tensor(20.0, shape=(), dtype=float32)");
    Ok(())
}

#[test]
fn nested_tapes_give_the_mixed_second_derivative() -> Result<()> {
    let (x, z) = (Variable::new(2.0), Variable::new(3.0));
    let outer = GradientTape::new();
    let dy_dx = outer.record(|| {
        let inner = GradientTape::new();
        let y = inner.record(|| x.pow(2)? * z.pow(3)?)?; // y = x² z³
        inner.gradient(&y, &x).map(Option::unwrap) // dy/dx = 2x z³ = 108
    })?;
    assert_eq!(dy_dx.to_scalar::<f32>()?, 108.0);
    // d/dz (2x z³) = 6x z² = 108
    assert_eq!(printed(outer.gradient(&dy_dx, &z)?), "Tensor(108.0, shape=(), dtype=float32)");
    Ok(())
}
