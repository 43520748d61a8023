//! Lean vector forms of exp, log and tanh for the common range of inputs.
//!
//! `wide`'s own functions handle every special value in every lane, which costs a dozen
//! extra selects per call. These versions compute only the core (range reduction, a short
//! polynomial, an exponent rebuild) and are used when every lane of a vector is inside
//! their range — checked with one compare per vector; otherwise the caller falls back to
//! `wide`'s complete version. Worst errors against a correctly rounded f64 reference are
//! pinned by the tests in `simd.rs` (exp ≤ 2 ulp, log ≤ 2 ulp, tanh ≤ 3 ulp).

use bytemuck::cast;
use wide::{f32x16, i32x16};

/// ln 2 split in two, so `n·ln2` subtracts exactly for |n| ≤ 128 (hi has 9 significant bits).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// Inputs for which [`exp_core`] is valid: 2^n stays a normal float.
pub const EXP_MIN: f32 = -87.0;
/// See [`EXP_MIN`].
pub const EXP_MAX: f32 = 88.0;

/// e^x for x in [EXP_MIN, EXP_MAX]: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-7
/// Taylor polynomial (truncation below 1e-8 relative), times 2^n built in the exponent bits.
#[inline]
pub fn exp_core(x: f32x16) -> f32x16 {
    let n = (x * f32x16::splat(std::f32::consts::LOG2_E)).round();
    let r = n.mul_neg_add(f32x16::splat(LN2_HI), x);
    let r = n.mul_neg_add(f32x16::splat(LN2_LO), r);
    let mut p = f32x16::splat(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul_add(r, f32x16::splat(c));
    }
    let scale: f32x16 = cast((n.round_int() + i32x16::splat(127)) << 23);
    p * scale
}

/// Below this magnitude e^x rounds to exactly 1 in f32 (1 ± x is within half an ulp of 1).
const EXP_IS_ONE: f32 = 1.0 / 67_108_864.0; // 2^-26

/// e^x for any input: the lean core for lanes in range, `wide`'s exp for the others
/// (overflow, underflow into subnormals, NaN). Each lane's result depends on that lane
/// alone, never on its neighbours in the vector, so an element's bits do not depend on
/// where it sits in its tensor.
#[inline]
pub fn exp(x: f32x16) -> f32x16 {
    // Lanes whose result is exactly 1 compute e^0 instead: same bits, but no subnormal
    // products (x·log2 e, r·c of a subnormal x), each a microcode assist of about a hundred
    // cycles on x86 when denormals are not flushed; all-subnormal input ran 20× slower.
    let x = x.abs().simd_lt(f32x16::splat(EXP_IS_ONE)).select(f32x16::ZERO, x);
    let in_range = x.simd_ge(f32x16::splat(EXP_MIN)) & x.simd_le(f32x16::splat(EXP_MAX));
    if in_range.all() {
        exp_core(x)
    } else {
        // The core on in-range lanes only (0 elsewhere keeps its arithmetic finite).
        in_range.select(exp_core(in_range.select(x, f32x16::ZERO)), x.exp())
    }
}

/// ln x for positive normal finite x: x = m·2^e with m in [√½, √2), ln m = f − f²/2 + f³·P(f)
/// for f = m − 1 (a degree-8 minimax P, the classic single-precision one).
#[inline]
fn log_core(x: f32x16) -> f32x16 {
    let bits: i32x16 = cast(x);
    let exponent: i32x16 = (bits >> 23) - i32x16::splat(127);
    let mut e = exponent.round_float();
    let mut m: f32x16 = cast((bits & i32x16::splat(0x007F_FFFF)) | i32x16::splat(0x3F80_0000));
    let big = m.simd_gt(f32x16::splat(std::f32::consts::SQRT_2));
    m = big.select(m * f32x16::splat(0.5), m);
    e = big.select(e + f32x16::ONE, e);
    let f = m - f32x16::ONE;
    let z = f * f;
    let mut p = f32x16::splat(7.037_683_6e-2);
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
        p = p.mul_add(f, f32x16::splat(c));
    }
    let mut y = p * f * z;
    y = e.mul_add(f32x16::splat(LN2_LO), y);
    y = z.mul_neg_add(f32x16::splat(0.5), y);
    let r = f + y;
    e.mul_add(f32x16::splat(LN2_HI), r)
}

/// ln x for any input: the lean core when every lane is positive, normal and finite.
#[inline]
pub fn log(x: f32x16) -> f32x16 {
    let normal = x.simd_ge(f32x16::splat(f32::MIN_POSITIVE)) & x.simd_lt(f32x16::splat(f32::INFINITY));
    if normal.all() { log_core(x) } else { x.ln() }
}

/// tanh x: an odd polynomial below |x| = 0.625, where 1 − 2/(e^{2|x|} + 1) would cancel;
/// that formula above (|x| clamped at 9, where tanh rounds to 1). NaN passes through.
#[inline]
pub fn tanh(x: f32x16) -> f32x16 {
    let a = x.abs();
    let is_small = a.simd_lt(f32x16::splat(0.625));
    // Compute only the branch the lanes need; mixed vectors compute both.
    let y = if is_small.all() {
        tanh_small(x)
    } else if is_small.any() {
        is_small.select(tanh_small(x), tanh_large(x, a))
    } else {
        tanh_large(x, a)
    };
    x.is_nan().select(x, y)
}

/// The odd polynomial of tanh for |x| < 0.625.
#[inline(always)]
fn tanh_small(x: f32x16) -> f32x16 {
    let z = x * x;
    let mut p = f32x16::splat(-5.704_988_7e-3);
    for c in [2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1] {
        p = p.mul_add(z, f32x16::splat(c));
    }
    (p * z).mul_add(x, x)
}

/// 1 − 2/(e^{2|x|} + 1) with x's sign, for |x| ≥ 0.625 (clamped at 9, where it rounds to 1).
#[inline(always)]
fn tanh_large(x: f32x16, a: f32x16) -> f32x16 {
    let e = exp_core(a.min(f32x16::splat(9.0)) * f32x16::splat(2.0));
    let large = f32x16::ONE - f32x16::splat(2.0) / (e + f32x16::ONE);
    x.is_sign_negative().select(-large, large)
}
