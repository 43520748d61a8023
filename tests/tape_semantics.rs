//! GradientTape semantics beyond the seed tutorial (SPEC §3), each checked against the
//! derivative worked out by hand in the comment beside it.

use tapeflow::prelude::*;

fn scalar(t: Option<Tensor>) -> f32 {
    t.expect("a gradient").to_scalar::<f32>().unwrap()
}

fn values(t: Option<Tensor>) -> Vec<f32> {
    t.expect("a gradient").to_vec::<f32>().unwrap()
}

#[test]
fn gradient_inside_the_recording_scope_stops_a_non_persistent_tape() -> Result<()> {
    let x = Variable::new(3.0);
    let tape = GradientTape::new();
    let (g, later) = tape.record(|| -> Result<_> {
        let y = (&x * &x)?;
        let g = tape.gradient(&y, &x)?; // 2x = 6
        let later = (&x * 5.0)?; // the tape no longer records
        Ok((g, later))
    })?;
    assert_eq!(scalar(g), 6.0);
    assert!(tape.gradient(&later, &x).is_err(), "one set of gradients only");
    Ok(())
}

#[test]
fn a_persistent_tape_records_its_own_gradient_computation() -> Result<()> {
    let x = Variable::new(2.0);
    let tape = GradientTape::new().persistent(true);
    let g = tape.record(|| -> Result<Tensor> {
        let y = x.pow(3)?;
        Ok(tape.gradient(&y, &x)?.unwrap()) // 3x² = 12
    })?;
    assert_eq!(g.to_scalar::<f32>()?, 12.0);
    assert_eq!(scalar(tape.gradient(&g, &x)?), 12.0); // 6x = 12
    Ok(())
}

#[test]
fn recording_scopes_can_be_reentered() -> Result<()> {
    let x = Variable::new(2.0);
    let tape = GradientTape::new();
    let y = tape.record(|| &x * &x)?;
    let z = tape.record(|| tape.record(|| &y * 3.0))?; // z = 3x²
    assert_eq!(scalar(tape.gradient(&z, &x)?), 12.0); // 6x
    Ok(())
}

#[test]
fn third_order_through_three_nested_tapes() -> Result<()> {
    let x = Variable::new(2.0);
    let (t1, t2, t3) = (GradientTape::new(), GradientTape::new(), GradientTape::new());
    let d2 = t1.record(|| -> Result<Tensor> {
        let d1 = t2.record(|| -> Result<Tensor> {
            let y = t3.record(|| x.pow(4))?; // x⁴
            Ok(t3.gradient(&y, &x)?.unwrap()) // 4x³
        })?;
        Ok(t2.gradient(&d1, &x)?.unwrap()) // 12x²
    })?;
    assert_eq!(d2.to_scalar::<f32>()?, 48.0);
    assert_eq!(scalar(t1.gradient(&d2, &x)?), 48.0); // 24x
    Ok(())
}

#[test]
fn several_tensors_watched_at_once() -> Result<()> {
    let (a, b) = (constant(2.0), constant(5.0));
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| {
        tape.watch([&a, &b]);
        &a * &b
    })?;
    let g = tape.gradients(&[&y], &[&a, &b])?; // (b, a)
    assert_eq!(scalar(g[0].clone()), 5.0);
    assert_eq!(scalar(g[1].clone()), 2.0);
    Ok(())
}

#[test]
fn watched_variables_in_first_access_order() -> Result<()> {
    let (a, b, frozen) = (Variable::new(1.0), Variable::new(2.0), Variable::builder(3.0).trainable(false).build()?);
    let tape = GradientTape::new();
    tape.record(|| (&b + &a)? * &frozen)?;
    let names: Vec<_> = tape.watched_variables().iter().map(|v| v.handle_id()).collect();
    assert_eq!(names, vec![b.handle_id(), a.handle_id()]);
    Ok(())
}

#[test]
fn targets_are_summed_and_seeds_weight_them() -> Result<()> {
    let x = Variable::new(2.0);
    let tape = GradientTape::new().persistent(true);
    let (y0, y1) = tape.record(|| Ok::<_, Error>((x.pow(2)?, (&x * 3.0)?)))?;
    // d(x² + 3x)/dx = 2x + 3 = 7
    assert_eq!(scalar(tape.gradients(&[&y0, &y1], &[&x])?.remove(0)), 7.0);
    // seeds 10 and 1: 10·2x + 3 = 43
    let opts = GradientOptions::default().output_gradients(vec![constant(10.0), constant(1.0)]);
    assert_eq!(scalar(tape.gradients_with(&[&y0, &y1], &[&x], opts)?.remove(0)), 43.0);
    Ok(())
}

#[test]
fn non_scalar_targets_differentiate_their_sum() -> Result<()> {
    let x = Variable::new([1.0, 2.0, 3.0]);
    let tape = GradientTape::new();
    let y = tape.record(|| x.exp())?;
    let g = values(tape.gradient(&y, &x)?);
    let want: Vec<f32> = [1.0f32, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    assert_eq!(g, want);
    Ok(())
}

#[test]
fn unconnected_sources_give_none_or_zeros() -> Result<()> {
    let (x, w) = (Variable::new(1.0), Variable::new([1.0, 2.0]));
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| {
        let _ = w.read();
        &x * 2.0
    })?;
    assert!(tape.gradient(&y, &w)?.is_none());
    let g = tape.gradient_with(&y, &w, GradientOptions::default().unconnected(UnconnectedGradients::Zero))?;
    assert_eq!(values(g), vec![0.0, 0.0]);
    Ok(())
}

#[test]
fn stop_gradient_and_stop_recording_cut_the_path() -> Result<()> {
    let x = Variable::new(3.0);
    let tape = GradientTape::new().persistent(true);
    let (y, z) = tape.record(|| -> Result<_> {
        let y = (&x * stop_gradient(&x))?; // treated as c·x with c = x
        let z = tape.stop_recording(|| x.pow(2))?;
        Ok((y, z))
    })?;
    assert_eq!(scalar(tape.gradient(&y, &x)?), 3.0);
    assert!(tape.gradient(&z, &x)?.is_none());
    Ok(())
}

#[test]
fn reset_forgets_what_was_recorded() -> Result<()> {
    let x = Variable::new(3.0);
    let tape = GradientTape::new();
    let z = tape.record(|| -> Result<Tensor> {
        let _discarded = x.pow(2)?;
        tape.reset();
        &x * 4.0
    })?;
    assert_eq!(scalar(tape.gradient(&z, &x)?), 4.0);
    Ok(())
}

#[test]
fn broadcast_operands_get_gradients_of_their_own_shape() -> Result<()> {
    let a = Variable::new(Tensor::ones([2, 3], DType::F32));
    let b = Variable::new([1.0, 2.0, 3.0]);
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| &a * &b)?;
    // d sum(a·b) / db_j = Σ_i a_ij = 2
    assert_eq!(values(tape.gradient(&y, &b)?), vec![2.0, 2.0, 2.0]);
    let ga = tape.gradient(&y, &a)?.unwrap();
    assert_eq!(ga.dims(), &[2, 3]);
    assert_eq!(ga.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    Ok(())
}

#[test]
fn matmul_gradients_match_the_closed_form() -> Result<()> {
    // y = sum(A·B): dA = 1·Bᵀ (row sums of B), dB = Aᵀ·1 (column sums of A)
    let a = Variable::new([[1.0, 2.0], [3.0, 4.0]]);
    let b = Variable::new([[5.0, 6.0], [7.0, 8.0]]);
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| a.matmul(&b))?;
    assert_eq!(values(tape.gradient(&y, &a)?), vec![11.0, 15.0, 11.0, 15.0]);
    assert_eq!(values(tape.gradient(&y, &b)?), vec![4.0, 4.0, 6.0, 6.0]);
    Ok(())
}

#[test]
fn jacobian_of_a_linear_map_is_the_matrix() -> Result<()> {
    let w = constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let x = Variable::new([[1.0], [1.0], [1.0]]);
    let tape = GradientTape::new();
    let y = tape.record(|| w.matmul(&x))?; // (2, 1)
    let j = tape.jacobian(&y, &x)?.unwrap();
    assert_eq!(j.dims(), &[2, 1, 3, 1]);
    assert_eq!(j.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    Ok(())
}

#[test]
fn jacobian_rows_bounded_in_flight_give_the_same_result() -> Result<()> {
    let x = Variable::new([1.0, 2.0, 3.0, 4.0, 5.0]);
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| x.pow(2))?;
    let all = tape.jacobian(&y, &x)?.unwrap().to_vec::<f32>()?;
    let bounded = tape.jacobian_with(&y, &x, JacobianOptions::default().parallel_iterations(2))?.unwrap();
    assert_eq!(bounded.to_vec::<f32>()?, all);
    // diag(2x)
    for i in 0..5 {
        for k in 0..5 {
            assert_eq!(all[i * 5 + k], if i == k { 2.0 * (i + 1) as f32 } else { 0.0 });
        }
    }
    Ok(())
}

#[test]
fn hessian_by_jacobian_of_a_gradient_in_nested_tapes() -> Result<()> {
    let x = Variable::new([1.0, 2.0]);
    let outer = GradientTape::new();
    let g = outer.record(|| -> Result<Tensor> {
        let inner = GradientTape::new();
        let y = inner.record(|| x.pow(3)?.sum_all())?; // Σ x³
        Ok(inner.gradient(&y, &x)?.unwrap()) // 3x²
    })?;
    let h = outer.jacobian(&g, &x)?.unwrap(); // diag(6x)
    assert_eq!(h.to_vec::<f32>()?, vec![6.0, 0.0, 0.0, 12.0]);
    Ok(())
}

#[test]
fn batch_jacobian_keeps_examples_apart() -> Result<()> {
    let x = Variable::new([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2))?;
    let j = tape.batch_jacobian(&y, &x)?.unwrap();
    assert_eq!(j.dims(), &[3, 2, 2]);
    // per example diag(2x)
    assert_eq!(j.to_vec::<f32>()?, vec![2.0, 0.0, 0.0, 4.0, 6.0, 0.0, 0.0, 8.0, 10.0, 0.0, 0.0, 12.0]);
    Ok(())
}

#[test]
fn float16_gradients_stay_float16() -> Result<()> {
    let x = Variable::new(Tensor::from_vec(vec![f16::from_f32(1.5), f16::from_f32(-2.0)], [2])?);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2))?;
    let g = tape.gradient(&y, &x)?.unwrap();
    assert_eq!(g.dtype(), DType::F16);
    assert_eq!(g.to_vec::<f16>()?, vec![f16::from_f32(3.0), f16::from_f32(-4.0)]);
    Ok(())
}

#[test]
fn cast_passes_gradients_between_float_dtypes_only() -> Result<()> {
    let x = Variable::new([1.5, 2.5]);
    let tape = GradientTape::new().persistent(true);
    let (h, i) = tape.record(|| Ok::<_, Error>((x.cast(DType::F16)?.square()?, x.cast(DType::I32)?)))?;
    // d (x as f16)² / dx = 2x, cast back to float32
    let g = tape.gradient(&h, &x)?.unwrap();
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(g.to_vec::<f32>()?, vec![3.0, 5.0]);
    assert_eq!(i.to_vec::<i32>()?, vec![1, 2]);
    assert!(tape.gradient(&i, &x)?.is_none());
    Ok(())
}

#[test]
fn variable_handles_share_one_value() -> Result<()> {
    let v = Variable::new(1.0);
    let alias = v.clone();
    alias.assign(5.0)?;
    assert_eq!(v.value().to_scalar::<f32>()?, 5.0);
    assert_eq!(Variable::builder(1.0).name("w").build()?.name(), "w:0");
    Ok(())
}

#[test]
fn values_and_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tensor>();
    assert_send_sync::<Variable>();
    assert_send_sync::<GradientTape>();
    assert_send_sync::<Error>();
}

#[test]
fn concat_takes_references_and_splits_the_gradient() -> Result<()> {
    let (a, b) = (Variable::new([1.0, 2.0]), Variable::new([3.0]));
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| concat(&[&a, &b], 0)?.pow(2))?;
    assert_eq!(y.to_vec::<f32>()?, vec![1.0, 4.0, 9.0]);
    assert_eq!(values(tape.gradient(&y, &a)?), vec![2.0, 4.0]); // 2x
    assert_eq!(values(tape.gradient(&y, &b)?), vec![6.0]);
    Ok(())
}

#[test]
fn a_source_listed_twice_gets_the_full_gradient_twice() -> Result<()> {
    let x = Variable::new(2.0);
    let tape = GradientTape::new();
    let y = tape.record(|| (x.pow(2)? + (&x * 3.0)?)? + x.exp()?)?; // x² + 3x + eˣ
    let g = tape.gradients(&[&y], &[&x, &x])?;
    let want = 2.0 * 2.0 + 3.0 + 2f32.exp(); // 2x + 3 + eˣ
    assert!((scalar(g[0].clone()) - want).abs() < 1e-5);
    assert_eq!(scalar(g[0].clone()).to_bits(), scalar(g[1].clone()).to_bits());
    Ok(())
}
