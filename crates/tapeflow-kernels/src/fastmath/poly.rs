//! Shared pieces of the vector functions of the submodules: polynomial evaluation, sign
//! handling and constants split for exact range reduction.

use crate::isa::{F32s, I32s, Simd};

/// `c[0] + c[1]·z + … + c[n]·zⁿ` by Horner's rule, one multiply-add per coefficient.
#[inline(always)]
pub(crate) fn horner<S: Simd>(s: S, z: S::F, c: &[f32]) -> S::F {
    let (&last, rest) = c.split_last().expect("a polynomial has a coefficient");
    let mut p = s.splat(last);
    for &k in rest.iter().rev() {
        p = p.mul_add(z, s.splat(k));
    }
    p
}

/// Lanes whose sign bit is set (−0 included, NaN by its bit).
#[inline(always)]
pub(crate) fn sign_bit_set<S: Simd>(s: S, x: S::F) -> S::M {
    x.to_bits().shr(31).simd_eq(s.splat_i(-1))
}

/// `t + t·z·P(z)`: an odd function `t + t³·P(t²)` from its polynomial, with `z = t²`.
#[inline(always)]
pub(crate) fn odd<S: Simd>(s: S, t: S::F, z: S::F, c: &[f32]) -> S::F {
    (horner(s, z, c) * z).mul_add(t, t)
}

/// π/2 in two parts: `PIO2_HI + PIO2_LO` carries 48 bits of π/2.
pub(crate) const PIO2_HI: f32 = 1.570_796_4;
/// See [`PIO2_HI`].
pub(crate) const PIO2_LO: f32 = -4.371_139e-8;
/// π/4 in two parts, as [`PIO2_HI`].
pub(crate) const PIO4_HI: f32 = std::f32::consts::FRAC_PI_4;
/// See [`PIO4_HI`].
pub(crate) const PIO4_LO: f32 = -2.185_569_5e-8;
/// π in two parts, as [`PIO2_HI`].
pub(crate) const PI_HI: f32 = std::f32::consts::PI;
/// See [`PI_HI`].
pub(crate) const PI_LO: f32 = -8.742_278e-8;
