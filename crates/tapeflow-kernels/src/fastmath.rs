//! Vector exp, log, tanh, sin, cos, log1p and expm1, generic over the instruction set.
//!
//! Each function has a lean core for the common range (range reduction, a short
//! polynomial, an exponent rebuilt in the bits) and, where lanes can fall outside it, a
//! complete path with every special value. The complete path computes the in-range lanes
//! with the same core, so an element's bits never depend on its neighbours in the vector.
//! Worst errors against a correctly rounded f64 reference are pinned by the tests in
//! `simd/tests.rs` on every level (exp ≤ 2 ulp, log ≤ 2, tanh ≤ 3, sin/cos ≤ 4, log1p ≤ 3,
//! expm1 ≤ 4). Fused multiply-adds make the levels differ in last bits, never in bounds.
//!
//! The submodules add tan, the inverse trigonometric functions, the hyperbolic functions
//! and their inverses, erf and erfc, built on the same cores; their bounds are pinned in
//! `simd/math_tests.rs`.

mod erf;
mod hyperbolic;
mod poly;
mod trig;

pub(crate) use erf::{erf, erfc};
pub(crate) use hyperbolic::{acosh, asinh, atanh, cosh, sinh};
pub(crate) use trig::{acos, asin, atan, atan2, tan_reduced};

use crate::isa::{F32s, I32s, Mask, Simd};

/// ln 2 split in two, so `n·ln2` subtracts exactly for |n| ≤ 128 (hi has 9 significant bits).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// Inputs for which [`exp_core`] is valid: 2^n stays a normal float.
pub const EXP_MIN: f32 = -87.0;
/// See [`EXP_MIN`].
pub const EXP_MAX: f32 = 88.0;

/// Below this magnitude e^x rounds to exactly 1 in f32 (1 ± x is within half an ulp of 1).
const EXP_IS_ONE: f32 = 1.0 / 67_108_864.0; // 2^-26

/// x = n·ln2 + r with |r| ≤ ln2/2 and n = round(x·log2 e), for |n| ≤ 128.
#[inline(always)]
fn reduce_ln2<S: Simd>(s: S, x: S::F) -> (S::F, S::F) {
    let n = (x * s.splat(std::f32::consts::LOG2_E)).round();
    let r = n.mul_neg_add(s.splat(LN2_HI), x);
    (n, n.mul_neg_add(s.splat(LN2_LO), r))
}

/// e^r for |r| ≤ ln2/2: the degree-7 Taylor polynomial (truncation below 1e-8 relative).
#[inline(always)]
fn exp_poly<S: Simd>(s: S, r: S::F) -> S::F {
    let mut p = s.splat(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul_add(r, s.splat(c));
    }
    p
}

/// 2^n for integer-valued n in [-126, 127], built in the exponent bits.
#[inline(always)]
fn pow2i<S: Simd>(s: S, n: S::I) -> S::F {
    S::F::from_bits((n + s.splat_i(127)).shl(23))
}

/// e^x for x in [EXP_MIN, EXP_MAX].
#[inline(always)]
pub(crate) fn exp_core<S: Simd>(s: S, x: S::F) -> S::F {
    let (n, r) = reduce_ln2(s, x);
    exp_poly(s, r) * pow2i(s, n.round_int())
}

/// e^x for lanes outside the core's range: overflow to +inf, results in the subnormals
/// (2^n applied in two steps, so the product is rounded once), 0 below, NaN kept.
#[inline(always)]
fn exp_far<S: Simd>(s: S, x: S::F) -> S::F {
    let clamped = x.fast_max(s.splat(-104.0)).fast_min(s.splat(89.0));
    let (n, r) = reduce_ln2(s, clamped);
    let n = n.round_int();
    let half = n.shr(1);
    let y = exp_poly(s, r) * pow2i(s, half) * pow2i(s, n - half);
    x.is_nan().select(x, y)
}

/// e^x for any input.
#[inline(always)]
pub(crate) fn exp<S: Simd>(s: S, x: S::F) -> S::F {
    // Lanes whose result is exactly 1 compute e^0 instead: same bits, but no subnormal
    // products (x·log2 e, r·c of a subnormal x), each a microcode assist of about a hundred
    // cycles on x86 when denormals are not flushed; all-subnormal input ran 20× slower.
    let zero = s.zero();
    let x = x.abs().simd_lt(s.splat(EXP_IS_ONE)).select(zero, x);
    let in_range = x.simd_ge(s.splat(EXP_MIN)) & x.simd_le(s.splat(EXP_MAX));
    if in_range.all() {
        exp_core(s, x)
    } else {
        // The core on in-range lanes only (0 elsewhere keeps its arithmetic finite).
        in_range.select(exp_core(s, in_range.select(x, zero)), exp_far(s, x))
    }
}

/// ln x for positive normal finite x, plus `e_adjust` (an integer) times ln 2: x = m·2^e with
/// m in [√½, √2), ln m = f − f²/2 + f³·P(f) for f = m − 1 (a degree-8 minimax P, the
/// classic single-precision one).
#[inline(always)]
fn log_core<S: Simd>(s: S, x: S::F, e_adjust: S::F) -> S::F {
    let bits = x.to_bits();
    let mut e = (bits.shr(23) - s.splat_i(127)).to_f32() + e_adjust;
    let mut m = S::F::from_bits((bits & s.splat_i(0x007F_FFFF)) | s.splat_i(0x3F80_0000));
    let one = s.splat(1.0);
    let big = m.simd_gt(s.splat(std::f32::consts::SQRT_2));
    m = big.select(m * s.splat(0.5), m);
    e = big.select(e + one, e);
    let f = m - one;
    let z = f * f;
    let mut p = s.splat(7.037_683_6e-2);
    for c in [
        -1.151_461e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_4e-1,
        -2.499_999_4e-1,
        3.333_333e-1,
    ] {
        p = p.mul_add(f, s.splat(c));
    }
    let mut y = p * f * z;
    y = e.mul_add(s.splat(LN2_LO), y);
    y = z.mul_neg_add(s.splat(0.5), y);
    let r = f + y;
    e.mul_add(s.splat(LN2_HI), r)
}

/// ln x for any input: subnormals scaled by 2^23 first; ln 0 = −inf, ln of a negative
/// number or NaN is NaN, ln inf = inf.
#[inline(always)]
pub(crate) fn log<S: Simd>(s: S, x: S::F) -> S::F {
    let zero = s.zero();
    let tiny = s.splat(f32::MIN_POSITIVE);
    let inf = s.splat(f32::INFINITY);
    let normal = x.simd_ge(tiny) & x.simd_lt(inf);
    if normal.all() {
        return log_core(s, x, zero);
    }
    let subnormal = x.simd_lt(tiny) & x.simd_gt(zero);
    let scaled = subnormal.select(x * s.splat(8_388_608.0), x);
    let y = log_core(s, scaled, subnormal.select(s.splat(-23.0), zero));
    let y = x.simd_eq(zero).select(-inf, y);
    let y = x.simd_eq(inf).select(inf, y);
    (x.simd_lt(zero) | x.is_nan()).select(s.splat(f32::NAN), y)
}

/// tanh x: an odd polynomial below |x| = 0.625, where 1 − 2/(e^{2|x|} + 1) would cancel;
/// that formula above (|x| clamped at 10; tanh rounds to 1 from 9.01 on). NaN passes through.
#[inline(always)]
pub(crate) fn tanh<S: Simd>(s: S, x: S::F) -> S::F {
    let a = x.abs();
    let is_small = a.simd_lt(s.splat(0.625));
    // Compute only the branch the lanes need; mixed vectors compute both.
    let y = if is_small.all() {
        tanh_small(s, x)
    } else if is_small.any() {
        is_small.select(tanh_small(s, x), tanh_large(s, x, a))
    } else {
        tanh_large(s, x, a)
    };
    x.is_nan().select(x, y)
}

/// The odd polynomial of tanh for |x| < 0.625.
#[inline(always)]
fn tanh_small<S: Simd>(s: S, x: S::F) -> S::F {
    let z = x * x;
    let mut p = s.splat(-5.704_988_7e-3);
    for c in [2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1] {
        p = p.mul_add(z, s.splat(c));
    }
    (p * z).mul_add(x, x)
}

/// 1 − 2/(e^{2|x|} + 1) with x's sign, for |x| ≥ 0.625 (clamped at 10, where it rounds to 1;
/// at 9 it is still 1 − 1 ulp).
#[inline(always)]
fn tanh_large<S: Simd>(s: S, x: S::F, a: S::F) -> S::F {
    let one = s.splat(1.0);
    let e = exp_core(s, a.fast_min(s.splat(10.0)) * s.splat(2.0));
    let large = one - s.splat(2.0) / (e + one);
    large.copysign(x)
}

/// π/4 in three parts (8, 11 and 24 significant bits): `j·π/4` subtracts exactly in the
/// first two steps for the octant counts j of |x| ≤ 8192.
const PI4_A: f32 = 0.785_156_25;
const PI4_B: f32 = 2.418_756_5e-4;
const PI4_C: f32 = 3.774_895e-8;

/// sin x (or cos x when `cos`), for |x| up to the callers' limit: |x| = j·π/4 + r with j
/// even and |r| ≤ π/4, then the sine or cosine polynomial of r by the quadrant j/2.
#[inline(always)]
pub(crate) fn sin_cos<S: Simd>(s: S, x: S::F, cos: bool) -> S::F {
    let a = x.abs();
    let j = (a * s.splat(4.0 / std::f32::consts::PI)).trunc_int();
    // Round the octant up to even: j·π/4 is then the nearest multiple of π/2 below or above.
    let j = (j + s.splat_i(1)) & s.splat_i(!1);
    let y = j.to_f32();
    let r = y.mul_neg_add(s.splat(PI4_A), a);
    let r = y.mul_neg_add(s.splat(PI4_B), r);
    let r = y.mul_neg_add(s.splat(PI4_C), r);
    let z = r * r;
    let sin_r = {
        let p = s.splat(-1.951_529_6e-4).mul_add(z, s.splat(8.332_161e-3)).mul_add(z, s.splat(-1.666_665_5e-1));
        (p * z).mul_add(r, r)
    };
    let cos_r = {
        let p = s.splat(2.443_315_7e-5).mul_add(z, s.splat(-1.388_731_6e-3)).mul_add(z, s.splat(4.166_664_6e-2));
        z.mul_neg_add(s.splat(0.5), p * (z * z)) + s.splat(1.0)
    };
    // Quadrant q = j/2: sin(q·π/2 + r) is sin r, cos r, −sin r, −cos r for q mod 4 = 0..3;
    // cos(q·π/2 + r) is cos r, −sin r, −cos r, sin r.
    let two = s.splat_i(2);
    let four = s.splat_i(4);
    let odd_quadrant = (j & two).simd_eq(two);
    if cos {
        let y = odd_quadrant.select(sin_r, cos_r);
        let negate = ((j + two) & four).simd_eq(four);
        negate.select(-y, y)
    } else {
        let y = odd_quadrant.select(cos_r, sin_r);
        let y = (j & four).simd_eq(four).select(-y, y);
        // sin is odd: the sign of x (−0 included) goes onto the result.
        let negative_x = x.to_bits().shr(31).simd_eq(s.splat_i(-1));
        negative_x.select(-y, y)
    }
}

/// ln(1 + x): ln u for u = 1 + x, corrected by (x − (u − 1))/u, the part of x that the
/// rounding of u lost (exact for tiny x: u = 1 gives x itself).
#[inline(always)]
pub(crate) fn log1p<S: Simd>(s: S, x: S::F) -> S::F {
    let one = s.splat(1.0);
    let u = x + one;
    let y = log(s, u) + (x - (u - one)) / u;
    let inf = s.splat(f32::INFINITY);
    let y = x.simd_eq(inf).select(inf, y);
    u.simd_eq(s.zero()).select(-inf, y)
}

/// e^r − 1 for |r| ≤ ln2/2: r + r²·(1/2 + r/6 + … + r⁶/8!), the Taylor polynomial (the
/// first omitted term is below 1e-9 relative).
#[inline(always)]
fn expm1_poly<S: Simd>(s: S, r: S::F) -> S::F {
    let mut p = s.splat(1.0 / 40320.0);
    for c in [1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5] {
        p = p.mul_add(r, s.splat(c));
    }
    (p * r).mul_add(r, r)
}

/// e^x − 1: its Taylor polynomial for |x| ≤ ln2/2; else x = n·ln2 + r and
/// 2^n·expm1(r) + (2^n − 1) (n clamped by clamping x to [−30, 80], where the result is −1
/// or e^x alike); e^x itself above 80.
#[inline(always)]
pub(crate) fn expm1<S: Simd>(s: S, x: S::F) -> S::F {
    let one = s.splat(1.0);
    let small = x.abs().simd_le(s.splat(std::f32::consts::LN_2 * 0.5));
    let near = expm1_poly(s, x);
    if small.all() {
        return near;
    }
    let clamped = x.fast_max(s.splat(-30.0)).fast_min(s.splat(80.0));
    let (n, r) = reduce_ln2(s, clamped);
    let scale = pow2i(s, n.round_int());
    let far = scale.mul_add(expm1_poly(s, r), scale - one);
    let y = small.select(near, far);
    let y = x.simd_gt(s.splat(80.0)).select(exp(s, x), y);
    x.is_nan().select(x, y)
}
