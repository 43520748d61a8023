//! Edge semantics pinned against TensorFlow 2.21 (see docs/ops.md for the list).

use tapeflow::prelude::*;

/// d sum(f(x)) / dx for a watched constant x.
fn grad_of(x: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Vec<f32> {
    let tape = GradientTape::new();
    let y = tape
        .record(|| {
            tape.watch(x);
            f(x)
        })
        .unwrap();
    tape.gradient(&y, x).unwrap().expect("connected").to_vec::<f32>().unwrap()
}

#[test]
fn relu_and_abs_have_zero_derivative_at_zero() {
    let x = constant([-1.0, 0.0, 2.0]);
    assert_eq!(grad_of(&x, |x| x.relu()), vec![0.0, 0.0, 1.0]);
    assert_eq!(grad_of(&x, |x| x.abs()), vec![-1.0, 0.0, 1.0]);
}

#[test]
fn relu_propagates_nan_and_its_derivative_there_is_zero() {
    let x = constant([f32::NAN as f64, -0.0]);
    let y = x.relu().unwrap().to_vec::<f32>().unwrap();
    assert!(y[0].is_nan());
    assert_eq!(y[1], 0.0);
    assert_eq!(grad_of(&x, |x| x.relu()), vec![0.0, 0.0]);
}

#[test]
fn reduce_max_ties_share_the_gradient() {
    let x = constant([1.0, 3.0, 3.0, 2.0]);
    assert_eq!(grad_of(&x, |x| x.max_all()), vec![0.0, 0.5, 0.5, 0.0]);
    let m = constant([[1.0, 1.0], [0.0, 5.0]]);
    assert_eq!(grad_of(&m, |x| x.max(&[1], false)), vec![0.5, 0.5, 0.0, 1.0]);
}

#[test]
fn maximum_and_minimum_ties_go_to_the_first_argument() {
    let a = constant([1.0, 2.0]);
    let b = constant([1.0, 2.0]);
    let tape = GradientTape::new().persistent(true);
    let (hi, lo) = tape
        .record(|| {
            tape.watch([&a, &b]);
            Ok::<_, Error>((a.maximum(&b)?, a.minimum(&b)?))
        })
        .unwrap();
    for y in [&hi, &lo] {
        let g = tape.gradients(&[y], &[&a, &b]).unwrap();
        assert_eq!(g[0].clone().unwrap().to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
        assert_eq!(g[1].clone().unwrap().to_vec::<f32>().unwrap(), vec![0.0, 0.0]);
    }
}

#[test]
fn nan_propagates_through_max_like_ops() {
    let x = constant([1.0, f64::NAN, 3.0]);
    assert!(x.max_all().unwrap().to_scalar::<f32>().unwrap().is_nan());
    let m = x.maximum(0.0).unwrap().to_vec::<f32>().unwrap();
    assert!(m[1].is_nan());
    let m = constant(0.0).maximum(&x).unwrap().to_vec::<f32>().unwrap();
    assert!(m[1].is_nan());
    assert!(x.minimum(10.0).unwrap().to_vec::<f32>().unwrap()[1].is_nan());
}

#[test]
fn log_of_zero_and_sqrt_derivative_at_zero_are_infinite() {
    assert_eq!(constant(0.0).log().unwrap().to_scalar::<f32>().unwrap(), f32::NEG_INFINITY);
    assert_eq!(grad_of(&constant([0.0]), |x| x.sqrt()), vec![f32::INFINITY]);
}

#[test]
fn reductions_of_empty_tensors() {
    let e = Tensor::zeros([0], DType::F32);
    assert_eq!(e.sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    assert!(e.mean_all().unwrap().to_scalar::<f32>().unwrap().is_nan());
    assert_eq!(e.max_all().unwrap().to_scalar::<f32>().unwrap(), f32::NEG_INFINITY);
    let ei = Tensor::zeros([0, 2], DType::I32);
    assert_eq!(ei.max(&[0], false).unwrap().to_vec::<i32>().unwrap(), vec![i32::MIN, i32::MIN]);
    assert_eq!(ei.sum(&[0], false).unwrap().to_vec::<i32>().unwrap(), vec![0, 0]);
}

#[test]
fn int32_arithmetic_wraps_and_truncates() {
    let big = constant([i32::MAX, i32::MIN, 7, -7]);
    assert_eq!((&big + 1).unwrap().to_vec::<i32>().unwrap()[0], i32::MIN);
    assert_eq!((&big - 1).unwrap().to_vec::<i32>().unwrap()[1], i32::MAX);
    assert_eq!((&big / 2).unwrap().to_vec::<i32>().unwrap()[2..], [3, -3]);
    assert_eq!((&big / -1).unwrap().to_vec::<i32>().unwrap()[1], i32::MIN);
    assert_eq!((&big * 2).unwrap().to_vec::<i32>().unwrap()[0], -2);
}

#[test]
fn float_to_int_cast_truncates_and_gives_min_for_nan_and_out_of_range() {
    let x = constant([2.7, -2.7, f64::NAN, 1e10, -1e10, f64::INFINITY]);
    assert_eq!(
        x.cast(DType::I32).unwrap().to_vec::<i32>().unwrap(),
        vec![2, -2, i32::MIN, i32::MIN, i32::MIN, i32::MIN]
    );
    let h = x.cast(DType::F16).unwrap().cast(DType::I32).unwrap();
    assert_eq!(h.to_vec::<i32>().unwrap()[..3], [2, -2, i32::MIN]);
}
