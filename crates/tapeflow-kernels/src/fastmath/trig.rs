//! Vector tan, asin, acos, atan and atan2. Worst errors against a correctly rounded f64
//! reference are pinned by `simd/math_tests.rs` on every level.

use super::poly::{PI_HI, PI_LO, PIO2_HI, PIO2_LO, PIO4_HI, PIO4_LO, odd, sign_bit_set};
use crate::isa::{F32s, I32s, Mask, Simd};

/// π/2 in three parts (8, 11 and 24 significant bits: twice the π/4 parts of `sin_cos`):
/// `j·π/2` subtracts exactly in the first two steps for the quadrant counts of |x| ≤ 4096.
const PIO2_A: f32 = 1.570_312_5;
const PIO2_B: f32 = 4.837_513e-4;
const PIO2_C: f32 = 7.549_79e-8;

/// tan r = r + r³·P(r²) for |r| ≤ π/4 (relative error of the fit 1.8e-8).
const TAN: [f32; 6] = [0.33333156, 0.133388, 0.05341121, 0.024430377, 0.0031195376, 0.009385627];

/// tan x for |x| up to the caller's limit (`simd::math` sends |x| > 256 to the scalar
/// reference), with r = |x| − j·π/2, |r| ≤ π/4: tan r for even j, −1/tan r for odd j; the
/// sign of x goes onto the result (tan is odd). Also returns r, whose size tells the
/// caller how much of the result the reduction's rounding may have eaten.
#[inline(always)]
pub(crate) fn tan_reduced<S: Simd>(s: S, x: S::F) -> (S::F, S::F) {
    let a = x.abs();
    let j = (a * s.splat(std::f32::consts::FRAC_2_PI)).round_int();
    let y = j.to_f32();
    let r = y.mul_neg_add(s.splat(PIO2_A), a);
    let r = y.mul_neg_add(s.splat(PIO2_B), r);
    let r = y.mul_neg_add(s.splat(PIO2_C), r);
    let t = odd(s, r, r * r, &TAN);
    let one = s.splat_i(1);
    let t = (j & one).simd_eq(one).select(-(s.splat(1.0) / t), t);
    (sign_bit_set(s, x).select(-t, t), r)
}

/// asin t = t + t³·P(t²) for |t| ≤ ½ (relative error of the fit 4.8e-9).
const ASIN: [f32; 5] = [0.16666752, 0.074952975, 0.045470376, 0.02417952, 0.042166296];

/// asin |x| for |x| ≤ ½ and asin √((1 − |x|)/2) above (the half-angle form: asin |x| is
/// π/2 minus twice it), with which of the two each lane holds; NaN above 1.
#[inline(always)]
fn asin_parts<S: Simd>(s: S, a: S::F) -> (S::F, S::M) {
    let small = a.simd_le(s.splat(0.5));
    let half = (s.splat(1.0) - a) * s.splat(0.5);
    let z = small.select(a * a, half);
    let w = small.select(a, half.sqrt());
    (odd(s, w, z, &ASIN), small)
}

/// asin x; NaN outside [−1, 1].
#[inline(always)]
pub(crate) fn asin<S: Simd>(s: S, x: S::F) -> S::F {
    let (p, small) = asin_parts(s, x.abs());
    // π/2 − 2p, with π/2's low part added to the small term first.
    let large = s.splat(PIO2_HI) - (p * s.splat(2.0) - s.splat(PIO2_LO));
    let y = small.select(p, large);
    x.is_nan().select(x, y.copysign(x))
}

/// acos x; NaN outside [−1, 1].
#[inline(always)]
pub(crate) fn acos<S: Simd>(s: S, x: S::F) -> S::F {
    let (p, small) = asin_parts(s, x.abs());
    // |x| ≤ ½: π/2 − asin x. Above: 2·asin √((1 − x)/2) for x > 0, π minus it for x < 0.
    let near_zero = s.splat(PIO2_HI) - (p.copysign(x) - s.splat(PIO2_LO));
    let twice = p * s.splat(2.0);
    let far = sign_bit_set(s, x).select(s.splat(PI_HI) - (twice - s.splat(PI_LO)), twice);
    let y = small.select(near_zero, far);
    x.is_nan().select(x, y)
}

/// atan t = t + t³·P(t²) for |t| ≤ tan π/8 (relative error of the fit 6.7e-10).
const ATAN: [f32; 5] = [-0.33333316, 0.19998471, -0.14243531, 0.105938025, -0.06078195];

const TAN_PI_8: f32 = 0.414_213_57;
const TAN_3PI_8: f32 = 2.414_213_7;

/// atan a for a ≥ 0 (NaN kept): a above tan 3π/8 is π/2 − atan(1/a), above tan π/8 it
/// is π/4 + atan((a − 1)/(a + 1)), so the polynomial sees |t| ≤ tan π/8; one division.
#[inline(always)]
fn atan_nonnegative<S: Simd>(s: S, a: S::F) -> S::F {
    let one = s.splat(1.0);
    let big = a.simd_gt(s.splat(TAN_3PI_8));
    let mid = a.simd_gt(s.splat(TAN_PI_8));
    let num = big.select(-one, mid.select(a - one, a));
    let den = big.select(a, mid.select(a + one, one));
    let t = num / den;
    let p = odd(s, t, t * t, &ATAN);
    let zero = s.zero();
    let hi = big.select(s.splat(PIO2_HI), mid.select(s.splat(PIO4_HI), zero));
    let lo = big.select(s.splat(PIO2_LO), mid.select(s.splat(PIO4_LO), zero));
    hi + (p + lo)
}

/// atan x.
#[inline(always)]
pub(crate) fn atan<S: Simd>(s: S, x: S::F) -> S::F {
    let y = atan_nonnegative(s, x.abs());
    x.is_nan().select(x, y.copysign(x))
}

/// atan2(y, x), the angle of the point (x, y), with C's rules for zeros and infinities
/// (atan2(±0, −0) = ±π, atan2(±∞, ±∞) = ±π/4 or ±3π/4); NaN if either is NaN.
#[inline(always)]
pub(crate) fn atan2<S: Simd>(s: S, y: S::F, x: S::F) -> S::F {
    let (ay, ax) = (y.abs(), x.abs());
    let steep = ay.simd_gt(ax);
    let (num, den) = (steep.select(ax, ay), steep.select(ay, ax));
    let q = num / den;
    // 0/0 (both zero) is the angle 0, ∞/∞ (both infinite) the angle π/4.
    let q = den.simd_eq(s.zero()).select(s.zero(), q);
    let q = num.simd_eq(s.splat(f32::INFINITY)).select(s.splat(1.0), q);
    let r = atan_nonnegative(s, q);
    let r = steep.select(s.splat(PIO2_HI) - (r - s.splat(PIO2_LO)), r);
    let r = sign_bit_set(s, x).select(s.splat(PI_HI) - (r - s.splat(PI_LO)), r);
    let any_nan = x.is_nan() | y.is_nan();
    any_nan.select(s.splat(f32::NAN), r.copysign(y))
}

#[cfg(test)]
mod tests {
    /// The split constants carry their values: the parts sum to π/2 far beyond f32.
    #[test]
    fn split_constants_sum_to_pi_over_two() {
        use super::*;
        let three = f64::from(PIO2_A) + f64::from(PIO2_B) + f64::from(PIO2_C);
        assert!((three - std::f64::consts::FRAC_PI_2).abs() < 1e-14);
        assert!((f64::from(PIO2_HI) + f64::from(PIO2_LO) - std::f64::consts::FRAC_PI_2).abs() < 1e-14);
        assert!((f64::from(PIO4_HI) + f64::from(PIO4_LO) - std::f64::consts::FRAC_PI_4).abs() < 1e-14);
        assert!((f64::from(PI_HI) + f64::from(PI_LO) - std::f64::consts::PI).abs() < 1e-14);
        // The first two parts are short enough that j·part is exact for j < 2^12.
        assert_eq!(PIO2_A.to_bits() & 0xffff, 0);
        assert_eq!(PIO2_B.to_bits() & 0x1fff, 0);
    }
}
