//! The kernels of the second op catalog against a correctly rounded f64 reference and the
//! scalar reference, at every instruction-set level this CPU has: stated error bounds
//! pinned on dense sweeps, special values, tails and empty slices.

use super::tests::ulps_above;
use super::*;
use crate::grad::constants;
use crate::isa::{Level, supported_levels};
use proptest::prelude::*;

/// The f64 value of each op of this catalog, the worst error the SIMD kernel may show (in
/// f32 ulps; 0: bit-exact against the scalar reference), and the magnitude below which the
/// error counts in that magnitude's ulps (0: relative to the result). `None` for the ops
/// of the first catalog.
pub(super) fn exact_bound_floor(op: UnaryOp, x: f64) -> Option<(f64, f64, f64)> {
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let softplus = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
    let f32_const = |v: f64| f64::from(v as f32);
    Some(match op {
        UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round | UnaryOp::Relu6 | UnaryOp::Softsign => (f64::NAN, 0.0, 0.0),
        UnaryOp::Tan => (x.tan(), BOUND_TAN, 0.0),
        UnaryOp::Asin => (x.asin(), BOUND_ASIN, 0.0),
        UnaryOp::Acos => (x.acos(), BOUND_ACOS, 0.0),
        UnaryOp::Atan => (x.atan(), BOUND_ATAN, 0.0),
        UnaryOp::Sinh => (x.sinh(), BOUND_SINH, 0.0),
        UnaryOp::Cosh => (x.cosh(), BOUND_COSH, 0.0),
        UnaryOp::Asinh => (x.asinh(), BOUND_ASINH, 0.0),
        UnaryOp::Acosh => (x.acosh(), BOUND_ACOSH, 0.0),
        UnaryOp::Atanh => (x.atanh(), BOUND_ATANH, 0.0),
        UnaryOp::Erf => (libm::erf(x), BOUND_ERF, 0.0),
        UnaryOp::Erfc => (libm::erfc(x), BOUND_ERFC, 0.0),
        UnaryOp::LogSigmoid => (-softplus(-x), BOUND_LOG_SIGMOID, 0.0),
        // e^x − 1 as TensorFlow computes it: its error is that of e^x, about 1 in x's
        // neighbourhood of 0, so it counts in ulps of 1 (of scale·alpha for selu).
        UnaryOp::Elu => (if x < 0.0 { x.exp_m1() } else { x }, BOUND_ELU, if x < 0.0 { 1.0 } else { 0.0 }),
        UnaryOp::Selu => {
            let (sa, scale) = (f32_const(constants::SELU_SCALE_ALPHA), f32_const(constants::SELU_SCALE));
            (if x < 0.0 { sa * x.exp_m1() } else { scale * x }, BOUND_ELU, if x < 0.0 { sa } else { 0.0 })
        }
        // x·sigmoid(x): where sigmoid is subnormal (x < −87) its few bits are scaled by
        // |x|, so the error counts in ulps of |x|·2⁻¹²⁶ there.
        UnaryOp::Silu => (x * sigmoid(x), BOUND_SILU, x.abs() * f64::from(f32::MIN_POSITIVE)),
        // 0.5·x·(1 + erf(x/√2)): 1 + erf cancels for x < 0, as in TensorFlow's formula; the
        // error counts in ulps of 0.5·|x|.
        UnaryOp::Gelu => (0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)), BOUND_GELU, 0.5 * x.abs()),
        UnaryOp::GeluTanh => {
            let inner = constants::SQRT_2_OVER_PI * (x + constants::GELU_CUBIC * x * x * x);
            (0.5 * x * (1.0 + inner.tanh()), BOUND_GELU_TANH, 0.5 * x.abs())
        }
        _ => return None,
    })
}

// The stated bounds, in f32 ulps (docs/ops.md quotes them): the worst error measured on
// the sweeps below at the baseline and AVX2 levels, rounded up, plus a margin.
const BOUND_TAN: f64 = 3.0;
const BOUND_ASIN: f64 = 3.0;
const BOUND_ACOS: f64 = 2.0;
const BOUND_ATAN: f64 = 2.5;
const BOUND_SINH: f64 = 2.0;
const BOUND_COSH: f64 = 2.0;
const BOUND_ASINH: f64 = 4.5;
const BOUND_ACOSH: f64 = 3.0;
const BOUND_ATANH: f64 = 2.0;
const BOUND_ERF: f64 = 3.0;
const BOUND_ERFC: f64 = 7.0;
const BOUND_LOG_SIGMOID: f64 = 2.5;
const BOUND_ELU: f64 = 2.0;
const BOUND_SILU: f64 = 4.0;
const BOUND_GELU: f64 = 3.0;
const BOUND_GELU_TANH: f64 = 2.5;
const BOUND_ATAN2: f64 = 3.0;

/// Runs `op` at `level` over `data`.
fn run(level: Level, op: UnaryOp, data: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    unary_f32(level, op, data, &mut out);
    out
}

/// `n` evenly spaced points of [lo, hi].
fn sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    (0..n).map(|i| lo + (hi - lo) * (i as f32 / (n - 1) as f32)).collect()
}

/// The worst error of `op` over `data` at `level`, asserting the stated bound.
fn worst_error(level: Level, op: UnaryOp, data: &[f32]) -> (f64, f32) {
    let out = run(level, op, data);
    let mut worst = (0.0f64, 0.0f32);
    for (&x, &y) in data.iter().zip(&out) {
        let (exact, bound, floor) = exact_bound_floor(op, f64::from(x)).unwrap();
        let e = ulps_above(y, exact, floor);
        assert!(e <= bound, "{op:?}({x}) = {y} at {level:?}, exact {exact}: {e} ulp > {bound}");
        if e > worst.0 {
            worst = (e, x);
        }
    }
    worst
}

/// Dense sweeps (100 001 points each) over each function's range and its hard regions
/// (near zeros, poles, the range switches of the kernels).
#[test]
fn catalog2_ulp_bounds_hold_on_dense_sweeps() {
    let sweeps: [(UnaryOp, f32, f32); 30] = [
        (UnaryOp::Tan, -256.0, 256.0),
        (UnaryOp::Tan, -1.6, 1.6),
        (UnaryOp::Asin, -1.0, 1.0),
        (UnaryOp::Asin, 0.45, 0.55),
        (UnaryOp::Acos, -1.0, 1.0),
        (UnaryOp::Acos, 0.99, 1.0),
        (UnaryOp::Atan, -100.0, 100.0),
        (UnaryOp::Atan, -3.0, 3.0),
        (UnaryOp::Sinh, -90.0, 90.0),
        (UnaryOp::Sinh, -1.5, 1.5),
        (UnaryOp::Cosh, -90.0, 90.0),
        (UnaryOp::Cosh, -2.0, 2.0),
        (UnaryOp::Asinh, -5000.0, 5000.0),
        (UnaryOp::Asinh, -3.0, 3.0),
        (UnaryOp::Acosh, 1.0, 5000.0),
        (UnaryOp::Acosh, 1.0, 3.0),
        (UnaryOp::Atanh, -1.0, 1.0),
        (UnaryOp::Atanh, 0.4, 0.6),
        (UnaryOp::Erf, -5.0, 5.0),
        (UnaryOp::Erf, 1.3, 1.7),
        (UnaryOp::Erfc, -5.0, 11.0),
        (UnaryOp::Erfc, 0.3, 0.7),
        (UnaryOp::LogSigmoid, -30.0, 100.0),
        (UnaryOp::Elu, -20.0, 5.0),
        (UnaryOp::Selu, -20.0, 5.0),
        (UnaryOp::Silu, -100.0, 30.0),
        (UnaryOp::Gelu, -10.0, 10.0),
        (UnaryOp::Gelu, -2.0, 2.0),
        (UnaryOp::GeluTanh, -10.0, 10.0),
        (UnaryOp::GeluTanh, -2.0, 2.0),
    ];
    for (op, lo, hi) in sweeps {
        let data = sweep(lo, hi, 100_001);
        for level in supported_levels() {
            let (e, x) = worst_error(level, op, &data);
            println!("{op:?} on [{lo}, {hi}] at {}: worst {e:.2} ulp at {x}", level.isa());
        }
    }
}

/// Every f32 of a few binades, bit by bit: sweeps of evenly spaced points skip most of
/// them near 0, where the odd polynomials must hold relative to tiny results.
#[test]
fn catalog2_ulp_bounds_hold_near_zero_bit_by_bit() {
    let ops = [
        UnaryOp::Tan,
        UnaryOp::Asin,
        UnaryOp::Acos,
        UnaryOp::Atan,
        UnaryOp::Sinh,
        UnaryOp::Asinh,
        UnaryOp::Atanh,
        UnaryOp::Erf,
        UnaryOp::Erfc,
        UnaryOp::Silu,
        UnaryOp::Gelu,
        UnaryOp::GeluTanh,
        UnaryOp::Elu,
    ];
    // Every 1021st f32 from 2^-30 to 2 (a quarter million per sign).
    let start = (2.0f32).powi(-30).to_bits();
    let data: Vec<f32> =
        (start..2.0f32.to_bits()).step_by(1021).flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)]).collect();
    for level in supported_levels() {
        for op in ops {
            let (e, x) = worst_error(level, op, &data);
            println!("{op:?} near 0 at {}: worst {e:.2} ulp at {x}", level.isa());
        }
    }
}

#[test]
fn special_values_follow_tensorflow() {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let cases: &[(UnaryOp, f32, f32)] = &[
        (UnaryOp::Floor, -0.5, -1.0),
        (UnaryOp::Floor, -0.0, -0.0),
        (UnaryOp::Floor, 2.5, 2.0),
        (UnaryOp::Floor, -inf, -inf),
        (UnaryOp::Floor, 16_777_215.0, 16_777_215.0),
        (UnaryOp::Ceil, -0.5, -0.0),
        (UnaryOp::Ceil, 0.2, 1.0),
        (UnaryOp::Ceil, inf, inf),
        (UnaryOp::Round, 2.5, 2.0),
        (UnaryOp::Round, -2.5, -2.0),
        (UnaryOp::Round, 3.5, 4.0),
        (UnaryOp::Round, -0.5, -0.0),
        (UnaryOp::Round, 0.49999997, 0.0),
        (UnaryOp::Tan, inf, nan),
        (UnaryOp::Tan, -0.0, -0.0),
        (UnaryOp::Asin, 1.0, std::f32::consts::FRAC_PI_2),
        (UnaryOp::Asin, -1.0, -std::f32::consts::FRAC_PI_2),
        (UnaryOp::Asin, 1.0000001, nan),
        (UnaryOp::Acos, 1.0, 0.0),
        (UnaryOp::Acos, -1.0, std::f32::consts::PI),
        (UnaryOp::Acos, -2.0, nan),
        (UnaryOp::Atan, inf, std::f32::consts::FRAC_PI_2),
        (UnaryOp::Atan, -inf, -std::f32::consts::FRAC_PI_2),
        (UnaryOp::Sinh, -inf, -inf),
        (UnaryOp::Sinh, 89.5, inf),
        (UnaryOp::Sinh, -0.0, -0.0),
        (UnaryOp::Cosh, -inf, inf),
        (UnaryOp::Cosh, 0.0, 1.0),
        (UnaryOp::Asinh, -inf, -inf),
        (UnaryOp::Acosh, 1.0, 0.0),
        (UnaryOp::Acosh, 0.5, nan),
        (UnaryOp::Acosh, -3.0, nan),
        (UnaryOp::Acosh, inf, inf),
        (UnaryOp::Atanh, 1.0, inf),
        (UnaryOp::Atanh, -1.0, -inf),
        (UnaryOp::Atanh, 1.5, nan),
        (UnaryOp::Erf, inf, 1.0),
        (UnaryOp::Erf, -inf, -1.0),
        (UnaryOp::Erf, -0.0, -0.0),
        (UnaryOp::Erfc, inf, 0.0),
        (UnaryOp::Erfc, -inf, 2.0),
        (UnaryOp::Erfc, 0.0, 1.0),
        (UnaryOp::LogSigmoid, -inf, -inf),
        (UnaryOp::LogSigmoid, inf, -0.0),
        (UnaryOp::Softsign, inf, nan),
        (UnaryOp::Softsign, -1.0, -0.5),
        (UnaryOp::Elu, -inf, -1.0),
        (UnaryOp::Elu, -0.0, -0.0),
        (UnaryOp::Elu, inf, inf),
        (UnaryOp::Relu6, nan, nan),
        (UnaryOp::Relu6, inf, 6.0),
        (UnaryOp::Relu6, -0.0, 0.0),
        (UnaryOp::Relu6, 6.0, 6.0),
        (UnaryOp::Silu, inf, inf),
        (UnaryOp::Silu, -inf, nan),
        (UnaryOp::Gelu, inf, inf),
        (UnaryOp::Gelu, -inf, nan),
        (UnaryOp::GeluTanh, 1e30, 1e30),
        (UnaryOp::GeluTanh, -1e30, -0.0),
    ];
    for level in supported_levels() {
        for &(op, x, want) in cases {
            for len in [1usize, 16, 19] {
                for (k, &y) in run(level, op, &vec![x; len]).iter().enumerate() {
                    let same = y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan());
                    assert!(same, "{op:?}({x}) = {y} (want {want}) at {level:?}, element {k} of {len}");
                }
            }
            // NaN passes through every op.
            assert!(run(level, op, &[nan])[0].is_nan(), "{op:?}(NaN) at {level:?}");
        }
        // Near overflow: finite and within the bounds.
        for (op, x) in
            [(UnaryOp::Sinh, 89.4f32), (UnaryOp::Cosh, -89.4), (UnaryOp::Asinh, f32::MAX), (UnaryOp::Acosh, f32::MAX)]
        {
            let y = run(level, op, &[x])[0];
            let (exact, bound, floor) = exact_bound_floor(op, f64::from(x)).unwrap();
            assert!(y.is_finite() && ulps_above(y, exact, floor) <= bound, "{op:?}({x}) = {y} at {level:?}");
        }
    }
}

/// atan2's quadrants and C's rules at zeros and infinities.
#[test]
fn atan2_quadrants_zeros_and_infinities() {
    use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI};
    let inf = f32::INFINITY;
    let cases: &[(f32, f32, f32)] = &[
        (0.0, 0.0, 0.0),
        (-0.0, 0.0, -0.0),
        (0.0, -0.0, PI),
        (-0.0, -0.0, -PI),
        (0.0, -1.0, PI),
        (-0.0, -1.0, -PI),
        (1.0, 0.0, FRAC_PI_2),
        (-1.0, -0.0, -FRAC_PI_2),
        (inf, inf, FRAC_PI_4),
        (-inf, inf, -FRAC_PI_4),
        (inf, -inf, 3.0 * FRAC_PI_4),
        (-inf, -inf, -3.0 * FRAC_PI_4),
        (2.0, inf, 0.0),
        (-2.0, -inf, -PI),
        (inf, -5.0, FRAC_PI_2),
        (1.0, 1.0, FRAC_PI_4),
        (-1.0, -1.0, -3.0 * FRAC_PI_4),
    ];
    for level in supported_levels() {
        for &(y, x, want) in cases {
            let mut out = [0.0f32; 1];
            binary_f32(level, BinaryOp::Atan2, Operand::Splat(y), Operand::Run(&[x]), &mut out);
            assert!(ulps_above(out[0], f64::from(want), 0.0) <= 1.0, "atan2({y}, {x}) = {} at {level:?}", out[0]);
            assert_eq!(out[0].is_sign_negative(), want.is_sign_negative(), "atan2({y}, {x}) sign at {level:?}");
        }
        let mut out = [0.0f32; 2];
        binary_f32(level, BinaryOp::Atan2, Operand::Run(&[f32::NAN, 1.0]), Operand::Run(&[1.0, f32::NAN]), &mut out);
        assert!(out[0].is_nan() && out[1].is_nan());
    }
}

/// atan2 over a grid of points around the circle and along both axes, against f64.
#[test]
fn atan2_holds_its_bound_around_the_circle() {
    let (mut ys, mut xs) = (Vec::new(), Vec::new());
    for i in 0..40_000 {
        let angle = f64::from(i) * std::f64::consts::TAU / 40_000.0 - std::f64::consts::PI;
        for r in [1e-30, 0.3, 1.0, 7.0, 1e20] {
            ys.push((r * angle.sin()) as f32);
            xs.push((r * angle.cos()) as f32);
        }
    }
    for level in supported_levels() {
        let mut out = vec![0.0f32; ys.len()];
        binary_f32(level, BinaryOp::Atan2, Operand::Run(&ys), Operand::Run(&xs), &mut out);
        let mut worst = 0.0f64;
        for ((&y, &x), &z) in ys.iter().zip(&xs).zip(&out) {
            let e = ulps_above(z, f64::from(y).atan2(f64::from(x)), 0.0);
            assert!(e <= BOUND_ATAN2, "atan2({y}, {x}) = {z} at {level:?}: {e} ulp");
            worst = worst.max(e);
        }
        println!("Atan2 around the circle at {}: worst {worst:.2} ulp", level.isa());
    }
}

/// floormod's vector fmod is exact: bit for bit the scalar reference, including quotients
/// that round up to an integer, huge quotients (the scalar fallback), subnormals, zeros
/// and infinities.
#[test]
fn floormod_is_exact_on_hard_operands() {
    let mut a = Vec::new();
    let mut b = Vec::new();
    let specials = [0.0f32, -0.0, 1e-40, -3e-39, 1e-30, 1.0, -1.0, 3.0, 1e10, 3.4e38, f32::INFINITY, f32::NAN];
    for &p in &specials {
        for &q in &specials {
            a.push(p);
            b.push(q);
            a.push(-p);
            b.push(q * 0.7);
        }
    }
    // x just below a multiple of y: the quotient rounds up to the integer.
    for k in 1..2000u32 {
        let y = 0.1f32 * k as f32 + 0.013;
        let x = f32::from_bits((y * (k as f32 * 3.0)).to_bits() - 1);
        a.extend([x, -x, x, x * 1e6]);
        b.extend([y, y, -y, y]);
    }
    for level in supported_levels() {
        let mut out = vec![0.0f32; a.len()];
        binary_f32(level, BinaryOp::FloorMod, Operand::Run(&a), Operand::Run(&b), &mut out);
        for i in 0..a.len() {
            let want = reference::binary_f32(BinaryOp::FloorMod, a[i], b[i]);
            assert!(
                out[i].to_bits() == want.to_bits() || (out[i].is_nan() && want.is_nan()),
                "floormod({}, {}) = {} at {level:?}, reference {want}",
                a[i],
                b[i],
                out[i]
            );
        }
    }
}

/// The attribute kernels against the reference, bit for bit, at every length class.
#[test]
fn leaky_relu_clip_and_mask_grads_match_the_reference() {
    let base = [-2.5f32, -0.0, 0.0, 0.5, 6.0, 7.0, -1e30, f32::NAN, f32::INFINITY, -f32::INFINITY, 1e-40, 3.0];
    let rules = [MaskGrad::Relu6, MaskGrad::LeakyRelu(0.2), MaskGrad::LeakyRelu(-1.5), MaskGrad::Clip(-1.0, 0.5)];
    for level in supported_levels() {
        for len in [0usize, 1, 15, 16, 17, 33, 100] {
            let x: Vec<f32> = (0..len).map(|i| base[i % base.len()] * (1.0 + i as f32 / 64.0)).collect();
            let g: Vec<f32> = (0..len).map(|i| [1.5f32, -0.25, f32::INFINITY, 2.0][i % 4]).collect();
            let mut out = vec![0.0f32; len];
            for alpha in [0.2f32, 1.5, -0.3] {
                leaky_relu_f32(level, alpha, &x, &mut out);
                for (o, &v) in out.iter().zip(&x) {
                    let want = reference::leaky_relu_f32(v, alpha);
                    assert!(o.to_bits() == want.to_bits() || (o.is_nan() && want.is_nan()), "leaky_relu({v})");
                }
            }
            for (lo, hi) in [(-1.0f32, 1.0), (0.0, 0.5), (2.0, -2.0), (-f32::INFINITY, 0.0)] {
                clip_f32(level, lo, hi, &x, &mut out);
                for (o, &v) in out.iter().zip(&x) {
                    let want = reference::clip_f32(v, lo, hi);
                    assert!(o.to_bits() == want.to_bits() || (o.is_nan() && want.is_nan()), "clip({v}, {lo}, {hi})");
                }
            }
            for rule in rules {
                mask_grad_f32(level, rule, &x, &g, &mut out);
                for ((o, &v), &d) in out.iter().zip(&x).zip(&g) {
                    let want = reference::mask_grad_f32(rule, v, d);
                    assert!(o.to_bits() == want.to_bits() || (o.is_nan() && want.is_nan()), "{rule:?}({v}, {d})");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// atan2 within its bound on random operands of every magnitude (tails included).
    #[test]
    fn atan2_matches_f64_within_its_bound(
        y in prop::collection::vec(prop_oneof![-10.0f32..10.0, -1e30f32..1e30, -1e-30f32..1e-30], 0..70),
        x in prop::collection::vec(prop_oneof![-10.0f32..10.0, -1e30f32..1e30, -1e-30f32..1e-30], 70),
    ) {
        let x = &x[..y.len()];
        for level in supported_levels() {
            let mut out = vec![0.0f32; y.len()];
            binary_f32(level, BinaryOp::Atan2, Operand::Run(&y), Operand::Run(x), &mut out);
            for i in 0..y.len() {
                let e = ulps_above(out[i], f64::from(y[i]).atan2(f64::from(x[i])), 0.0);
                prop_assert!(e <= BOUND_ATAN2, "atan2({}, {}) = {} at {level:?}: {e} ulp", y[i], x[i], out[i]);
            }
        }
    }
}
