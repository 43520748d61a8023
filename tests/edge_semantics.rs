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

// ---- Catalog II: reductions and scans ----

#[test]
fn reduce_min_ties_share_the_gradient_and_empty_min_is_inf() {
    let x = constant([1.0, 3.0, 1.0, 2.0]);
    assert_eq!(grad_of(&x, |x| x.min_all()), vec![0.5, 0.0, 0.5, 0.0]);
    let m = constant([[1.0, 1.0], [0.0, 5.0]]);
    assert_eq!(grad_of(&m, |x| x.min(&[1], false)), vec![0.5, 0.5, 1.0, 0.0]);
    let empty = Tensor::from_vec(Vec::<f32>::new(), [0]).unwrap();
    assert_eq!(empty.min_all().unwrap().to_scalar::<f32>().unwrap(), f32::INFINITY);
}

#[test]
fn reduce_prod_gradient_handles_one_and_two_zeros_as_tensorflow() {
    // One zero: its gradient is the product of the others, every other element's is 0.
    // Two zeros: every gradient is 0. No division, so no NaN.
    let x = constant([[2.0, 0.0, 3.0], [0.0, 0.0, 4.0], [1.0, 2.0, 3.0]]);
    assert_eq!(grad_of(&x, |x| x.prod(&[1], false)), vec![0.0, 6.0, 0.0, 0.0, 0.0, 0.0, 6.0, 3.0, 2.0]);
    // Over several axes at once (moved to the front and flattened, as TF's _ProdGrad).
    let y = constant([[[1.0, 2.0], [3.0, 0.0]], [[5.0, 6.0], [7.0, 8.0]]]);
    assert_eq!(grad_of(&y, |x| x.prod(&[0, 2], false)), vec![60.0, 30.0, 0.0, 168.0, 12.0, 10.0, 0.0, 0.0]);
    let empty = Tensor::from_vec(Vec::<f32>::new(), [2, 0]).unwrap();
    assert_eq!(empty.prod(&[1], false).unwrap().to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
    assert_eq!(constant([3, -2, 5]).prod_all().unwrap().to_scalar::<i32>().unwrap(), -30);
}

#[test]
fn logsumexp_neither_overflows_nor_loses_infinities() {
    let big = constant([1000.0, 1000.0]);
    let y = big.logsumexp(&[0], false).unwrap().to_scalar::<f32>().unwrap();
    assert!((y - (1000.0 + std::f32::consts::LN_2)).abs() < 1e-3, "{y}");
    assert_eq!(grad_of(&big, |x| x.logsumexp(&[0], false)), vec![0.5, 0.5]);
    let inf = f64::INFINITY;
    let lse = |v: [f64; 2]| constant(v).logsumexp(&[0], false).unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(lse([-inf, -inf]), f32::NEG_INFINITY);
    assert_eq!(lse([inf, 1.0]), f32::INFINITY);
    assert!(lse([f64::NAN, 1.0]).is_nan());
    assert!(constant([1, 2]).logsumexp(&[0], false).unwrap_err().to_string().contains("logsumexp"));
}

#[test]
fn variance_and_std_are_population_moments() {
    let x = constant([[1.0, 2.0], [3.0, 4.0]]);
    assert_eq!(x.variance(&[0, 1], false).unwrap().to_scalar::<f32>().unwrap(), 1.25);
    assert_eq!(x.variance(&[0], true).unwrap().to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
    assert_eq!(x.std(&[1], false).unwrap().to_vec::<f32>().unwrap(), vec![0.5, 0.5]);
    // d var / dx = 2 (x − mean) / n
    assert_eq!(grad_of(&x, |x| x.variance(&[0, 1], false)), vec![-0.75, -0.25, 0.25, 0.75]);
    assert!(constant([1, 2]).std(&[0], false).unwrap_err().to_string().contains("std"));
}

#[test]
fn argmax_and_argmin_give_int32_first_indices_and_no_gradient() {
    let x = constant([[1.0, 3.0, 3.0], [f32::NAN as f64, -1.0, -1.0]]);
    assert_eq!(x.argmax(1).unwrap().to_vec::<i32>().unwrap(), vec![1, 1]);
    assert_eq!(x.argmin(-1).unwrap().to_vec::<i32>().unwrap(), vec![0, 1]);
    assert_eq!(x.argmax(0).unwrap().dtype(), DType::I32);
    assert!(Tensor::from_vec(Vec::<f32>::new(), [2, 0]).unwrap().argmax(1).is_err());
    let tape = GradientTape::new();
    let i = tape
        .record(|| {
            tape.watch(&x);
            x.argmax(1)
        })
        .unwrap();
    assert!(tape.gradient(&i, &x).unwrap().is_none());
}

#[test]
fn cumsum_and_cumprod_gradients_are_tensorflows() {
    let x = constant([1.0, 2.0, 3.0]);
    // d sum(cumsum(x)) = the reversed cumsum of ones
    assert_eq!(grad_of(&x, |x| x.cumsum(0, false, false)), vec![3.0, 2.0, 1.0]);
    assert_eq!(grad_of(&x, |x| x.cumsum(0, true, true)), vec![0.0, 1.0, 2.0]);
    // cumprod = [1, 2, 6]: d/dx0 = 1 + 2 + 6, d/dx1 = (2 + 6) / 2, d/dx2 = 6 / 3
    assert_eq!(grad_of(&x, |x| x.cumprod(0, false, false)), vec![9.0, 4.0, 2.0]);
    // TF divides by x with div_no_nan: 0 where x is 0.
    let z = constant([2.0, 0.0, 3.0]);
    assert_eq!(grad_of(&z, |x| x.cumprod(0, false, false)), vec![1.0, 0.0, 0.0]);
}

// ---- The elementwise math of the second catalog ----

#[test]
fn round_is_half_to_even_and_floor_ceil_round_have_no_gradient() {
    let x = constant([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997]);
    assert_eq!(x.round().unwrap().to_vec::<f32>().unwrap(), vec![-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 0.0]);
    assert_eq!(constant([-1.5, 0.5]).floor().unwrap().to_vec::<f32>().unwrap(), vec![-2.0, 0.0]);
    assert_eq!(constant([-1.5, 0.5]).ceil().unwrap().to_vec::<f32>().unwrap(), vec![-1.0, 1.0]);
    // ceil(-0.5) is -0 (C's ceil, TensorFlow's).
    assert!(constant([-0.5]).ceil().unwrap().to_vec::<f32>().unwrap()[0].is_sign_negative());
    assert_eq!(constant([7, -3]).round().unwrap().to_vec::<i32>().unwrap(), vec![7, -3]);
    // TensorFlow's registry returns None for floor, ceil, round and floordiv.
    let tape = GradientTape::new().persistent(true);
    let (f, c, r, d) = tape
        .record(|| {
            tape.watch(&x);
            Ok::<_, Error>((x.floor()?, x.ceil()?, x.round()?, x.floordiv(2.0)?))
        })
        .unwrap();
    for y in [&f, &c, &r, &d] {
        assert!(tape.gradient(y, &x).unwrap().is_none());
    }
    // sign's gradient is zeros (TensorFlow's _SignGrad), not None.
    assert_eq!(grad_of(&x, |x| x.sign()), vec![0.0; 7]);
}

#[test]
fn activation_kinks_follow_tensorflows_gradient_registry() {
    // relu6: 0 at 0 and at 6 (Relu6Grad masks 0 < y < 6).
    let x = constant([-1.0, 0.0, 3.0, 6.0, 7.0]);
    assert_eq!(grad_of(&x, |x| x.relu6()), vec![0.0, 0.0, 1.0, 0.0, 0.0]);
    // leaky_relu: alpha at 0 (x > 0 picks g).
    let x = constant([-1.0, 0.0, 1.0]);
    let g = grad_of(&x, |x| x.leaky_relu(0.2));
    assert_eq!(g, vec![0.2f64 as f32, 0.2f64 as f32, 1.0]);
    // elu: 1 at 0 (EluGrad takes y < 0 for the exponential side).
    assert_eq!(grad_of(&constant([0.0]), |x| x.elu()), vec![1.0]);
    // clip_by_value: the gradient passes at both bounds (minimum's and maximum's ties go
    // to x) and not outside or at NaN.
    let x = constant([-2.0, -1.0, 0.0, 1.0, 2.0, f32::NAN as f64]);
    assert_eq!(grad_of(&x, |x| x.clip_by_value(-1.0, 1.0)), vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    let y = x.clip_by_value(-1.0, 1.0).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(&y[..5], &[-1.0, -1.0, 0.0, 1.0, 1.0]);
    assert!(y[5].is_nan());
    // min > max: min everywhere (the composition minimum then maximum), no gradient.
    let inverted = constant([0.0, 5.0]);
    assert_eq!(inverted.clip_by_value(2.0, 1.0).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 2.0]);
    assert_eq!(grad_of(&inverted, |x| x.clip_by_value(2.0, 1.0)), vec![0.0, 0.0]);
}

#[test]
fn floordiv_and_floormod_round_toward_negative_infinity() {
    let a = constant([7, -7, 7, -7, i32::MIN]);
    let b = constant([2, 2, -2, -2, -1]);
    assert_eq!(a.floordiv(&b).unwrap().to_vec::<i32>().unwrap(), vec![3, -4, -4, 3, i32::MIN]);
    assert_eq!(a.floormod(&b).unwrap().to_vec::<i32>().unwrap(), vec![1, 1, -1, -1, 0]);
    let (x, y) = (constant([7.5, -7.5, 7.5]), constant([2.0, 2.0, -2.0]));
    assert_eq!(x.floordiv(&y).unwrap().to_vec::<f32>().unwrap(), vec![3.0, -4.0, -4.0]);
    assert_eq!(x.floormod(&y).unwrap().to_vec::<f32>().unwrap(), vec![1.5, 0.5, -0.5]);
    // int32 division by zero is an Err naming the op, as in TensorFlow.
    for r in [a.floordiv(0), a.floormod(0)] {
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("floor") && msg.contains("int32"), "{msg}");
    }
    // The gradient of floormod: 1 and −floor(a/b).
    let tape = GradientTape::new();
    let z = tape
        .record(|| {
            tape.watch([&x, &y]);
            x.floormod(&y)
        })
        .unwrap();
    let g = tape.gradients(&[&z], &[&x, &y]).unwrap();
    assert_eq!(g[0].clone().unwrap().to_vec::<f32>().unwrap(), vec![1.0, 1.0, 1.0]);
    assert_eq!(g[1].clone().unwrap().to_vec::<f32>().unwrap(), vec![-3.0, 4.0, 4.0]);
}

#[test]
fn atan2_takes_the_quadrant_from_both_signs() {
    use std::f32::consts::{FRAC_PI_2, PI};
    let y = constant([1.0, 1.0, -1.0, -1.0, 0.0, -0.0, 0.0]);
    let x = constant([1.0, -1.0, -1.0, 1.0, -1.0, -1.0, 0.0]);
    let got = y.atan2(&x).unwrap().to_vec::<f32>().unwrap();
    let want = [PI / 4.0, 3.0 * PI / 4.0, -3.0 * PI / 4.0, -PI / 4.0, PI, -PI, 0.0];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 2e-7, "{got:?}");
    }
    assert!((constant(1.0).atan2(0.0).unwrap().to_scalar::<f32>().unwrap() - FRAC_PI_2).abs() < 1e-7);
    assert!(constant([1]).atan2(1).is_err());
}

/// The values behind the catalog-II contract's reduction and scan lines (the lines
/// themselves run in `tests/api_contract.rs`).
#[test]
fn argmax_argmin_cumsum_cumprod_give_the_contracts_values() -> Result<()> {
    let r = Tensor::from_vec(vec![3.0f32, 1.0, 2.0, 4.0, 5.0, 0.5], [2, 3])?;
    assert_eq!(r.argmax(1)?.to_vec::<i32>()?, vec![0, 1]); // int32 indices; ties: first index
    assert_eq!(r.argmin(0)?.to_vec::<i32>()?, vec![0, 0, 1]);
    assert_eq!(r.cumsum(1, false, false)?.to_vec::<f32>()?, vec![3.0, 4.0, 6.0, 4.0, 9.0, 9.5]);
    assert_eq!(r.cumprod(0, true, true)?.to_vec::<f32>()?, vec![4.0, 5.0, 0.5, 1.0, 1.0, 1.0]);
    Ok(())
}
