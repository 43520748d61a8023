//! Vector sinh, cosh, asinh, acosh and atanh. Worst errors against a correctly rounded f64
//! reference are pinned by `simd/math_tests.rs` on every level.

use super::poly::odd;
use super::{exp_poly, log, log1p, pow2i, reduce_ln2};
use crate::isa::{F32s, I32s, Mask, Simd};

/// Above this, e^a/2 overflows (sinh and cosh are infinite from 89.415985 on).
const HALF_EXP_LIMIT: f32 = 89.5;

/// e^a / 2 for 0 ≤ a (clamped at [`HALF_EXP_LIMIT`], where it is +inf): the exp core with
/// the halving folded into the power of two, applied in two steps so that 2^(n−1) for
/// n = 129 (e^89.4/2 is still finite) does not overflow before the product.
#[inline(always)]
fn half_exp<S: Simd>(s: S, a: S::F) -> S::F {
    let (n, r) = reduce_ln2(s, a.fast_min(s.splat(HALF_EXP_LIMIT)));
    let n = n.round_int() - s.splat_i(1);
    let first = n.shr(1);
    exp_poly(s, r) * pow2i(s, first) * pow2i(s, n - first)
}

/// sinh x = x + x³·P(x²) for |x| < 1 (relative error of the fit 5.2e-11).
const SINH: [f32; 4] = [0.16666667, 0.00833335, 1.983616e-4, 2.8169513e-6];

/// sinh x: the odd polynomial below |x| = 1, where e^|x|/2 − e^−|x|/2 would cancel; that
/// difference above, as h − 1/(4h) with h = e^|x|/2 (one exp, one division).
#[inline(always)]
pub(crate) fn sinh<S: Simd>(s: S, x: S::F) -> S::F {
    let small = x.abs().simd_lt(s.splat(1.0));
    let y = if small.all() {
        odd(s, x, x * x, &SINH)
    } else if small.any() {
        small.select(odd(s, x, x * x, &SINH), sinh_far(s, x))
    } else {
        sinh_far(s, x)
    };
    x.is_nan().select(x, y)
}

/// sinh x for |x| ≥ 1.
#[inline(always)]
fn sinh_far<S: Simd>(s: S, x: S::F) -> S::F {
    let h = half_exp(s, x.abs());
    (h - s.splat(0.25) / h).copysign(x)
}

/// cosh x = h + 1/(4h) with h = e^|x|/2 (no cancellation anywhere).
#[inline(always)]
pub(crate) fn cosh<S: Simd>(s: S, x: S::F) -> S::F {
    let h = half_exp(s, x.abs());
    let y = h + s.splat(0.25) / h;
    x.is_nan().select(x, y)
}

/// asinh x = x + x³·P(x²) for |x| < ½ (relative error of the fit 1.2e-9).
const ASINH: [f32; 5] = [-0.16666643, 0.074986525, -0.044384517, 0.02816912, -0.013237521];

/// Above this, √(x² + 1) is x to f32 precision: log(2x) is used (x² would overflow later).
const HUGE: f32 = 4096.0;

/// asinh x: the odd polynomial below ½; log(|x| + √(x² + 1)) up to 4096; log|x| + ln 2
/// above; x's sign on the result.
#[inline(always)]
pub(crate) fn asinh<S: Simd>(s: S, x: S::F) -> S::F {
    let small = x.abs().simd_lt(s.splat(0.5));
    let y = if small.all() {
        odd(s, x, x * x, &ASINH)
    } else if small.any() {
        small.select(odd(s, x, x * x, &ASINH), asinh_far(s, x))
    } else {
        asinh_far(s, x)
    };
    x.is_nan().select(x, y)
}

/// asinh x for |x| ≥ ½.
#[inline(always)]
fn asinh_far<S: Simd>(s: S, x: S::F) -> S::F {
    let a = x.abs();
    let huge = a.simd_gt(s.splat(HUGE));
    let arg = huge.select(a, a + a.mul_add(a, s.splat(1.0)).sqrt());
    let y = log(s, arg) + huge.select(s.splat(std::f32::consts::LN_2), s.zero());
    y.copysign(x)
}

/// acosh x = log1p(t + √(t·(t + 2))) with t = x − 1 (exact for x in [1, 2], so no
/// cancellation near 1); log1p(x − 1) + ln 2 above 4096; NaN below 1.
#[inline(always)]
pub(crate) fn acosh<S: Simd>(s: S, x: S::F) -> S::F {
    let one = s.splat(1.0);
    let t = x - one;
    let huge = x.simd_gt(s.splat(HUGE));
    let u = huge.select(t, t + (t * (t + s.splat(2.0))).sqrt());
    let y = log1p(s, u) + huge.select(s.splat(std::f32::consts::LN_2), s.zero());
    (x.simd_lt(one) | x.is_nan()).select(s.splat(f32::NAN), y)
}

/// atanh x = x + x³·P(x²) for |x| < ½ (relative error of the fit 1.4e-9).
const ATANH: [f32; 6] = [0.33333302, 0.20002519, 0.14222762, 0.11823729, 0.051358283, 0.17669113];

/// atanh x for ½ ≤ |x| = a.
#[inline(always)]
fn atanh_far<S: Simd>(s: S, x: S::F, a: S::F) -> S::F {
    (log1p(s, (a + a) / (s.splat(1.0) - a)) * s.splat(0.5)).copysign(x)
}

/// atanh x: the odd polynomial below ½; ½·log1p(2|x|/(1 − |x|)) above (1 − |x| is exact
/// there); ±inf at ±1, NaN beyond.
#[inline(always)]
pub(crate) fn atanh<S: Simd>(s: S, x: S::F) -> S::F {
    let a = x.abs();
    let small = a.simd_lt(s.splat(0.5));
    // Only the side the lanes need; mixed vectors compute both.
    let y = if small.all() {
        odd(s, x, x * x, &ATANH)
    } else if small.any() {
        small.select(odd(s, x, x * x, &ATANH), atanh_far(s, x, a))
    } else {
        atanh_far(s, x, a)
    };
    (x.is_nan() | a.simd_gt(s.splat(1.0))).select(s.splat(f32::NAN), y)
}
