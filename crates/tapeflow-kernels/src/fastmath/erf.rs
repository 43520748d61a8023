//! Vector erf and erfc without a scalar call per element. Worst errors against a correctly
//! rounded f64 reference are pinned by `simd/math_tests.rs` on every level.

use super::exp;
use super::poly::horner;
use crate::isa::{F32s, Mask, Simd};

/// erf x = x·P(x²) for |x| < 1 (relative error of the fit 1.2e-9). Up to 1 the terms of
/// Horner's rule shrink (x² ≤ 1), so the evaluation adds little rounding; a wider range
/// lost 3 ulp there. The first coefficient is the fit's, near but not equal to 2/√π.
#[allow(clippy::approx_constant)]
const ERF_SMALL: [f32; 7] =
    [1.1283791, -0.37612626, 0.112835854, -0.026853811, 0.0051883277, -8.010193e-4, 7.853861e-5];

/// Where erf switches from the odd polynomial to the complement form.
const ERF_SPLIT: f32 = 1.0;

/// erfc x = G(x)^−8 for 1 ≤ x ≤ 4, G a polynomial in x (absolute error of erf from the
/// fit 1.5e-9). The 8th power is three squarings: no exp, and G is smooth (it grows like
/// e^(x²/8)), so a short polynomial fits it. (A 16th power needs a shorter G but
/// multiplies G's rounding by 16: 3.3 ulp of erf at x = 1.)
const ERF_LARGE: [f32; 9] = [
    1.0015838,
    0.13204806,
    0.111742124,
    -0.0066288062,
    0.030622242,
    -0.013942075,
    0.005679479,
    -0.0011146058,
    1.2187611e-4,
];

/// erf x rounds to ±1 beyond this.
const ERF_ONE: f32 = 4.0;

/// erf x.
#[inline(always)]
pub(crate) fn erf<S: Simd>(s: S, x: S::F) -> S::F {
    let small = x.abs().simd_lt(s.splat(ERF_SPLIT));
    // Only the side the lanes need; mixed vectors compute both.
    let y = if small.all() {
        erf_small(s, x)
    } else if small.any() {
        small.select(erf_small(s, x), erf_large(s, x))
    } else {
        erf_large(s, x)
    };
    x.is_nan().select(x, y)
}

/// The odd polynomial of erf, for |x| < 1 (and 1 − it is erfc for |x| < ½).
#[inline(always)]
fn erf_small<S: Simd>(s: S, x: S::F) -> S::F {
    x * horner(s, x * x, &ERF_SMALL)
}

/// 1 − G(|x|)^−8 with x's sign, for |x| ≥ 1 (clamped at 4, where it rounds to 1).
#[inline(always)]
fn erf_large<S: Simd>(s: S, x: S::F) -> S::F {
    let a = x.abs().fast_min(s.splat(ERF_ONE));
    let g = horner(s, a, &ERF_LARGE);
    let g2 = g * g;
    let g4 = g2 * g2;
    let one = s.splat(1.0);
    (one - one / (g4 * g4)).copysign(x)
}

/// erfc x = e^(−x²)·t·F(t) with t = 2/(2 + x), for ½ ≤ x ≤ 10.1 (relative error of the fit
/// 9.0e-9): erfc(x)·e^(x²) is smooth in t and tends to 1/(2√π)·t⁻¹·t as x grows.
const ERFC: [f32; 9] =
    [0.28207567, 0.28259233, 0.24129789, 0.21077232, -0.047958706, 0.312083, -0.51924145, 0.30087173, -0.062486622];

/// Below this |x|, erfc is 1 − erf (erf < ½ there, so the difference loses nothing).
const ERFC_SPLIT: f32 = 0.47;

/// erfc x underflows to 0 beyond this.
const ERFC_ZERO: f32 = 10.1;

/// erfc x = 1 − erf x, accurate relative to itself where it is tiny (x large).
#[inline(always)]
pub(crate) fn erfc<S: Simd>(s: S, x: S::F) -> S::F {
    let small = x.abs().simd_lt(s.splat(ERFC_SPLIT));
    let one = s.splat(1.0);
    let y = if small.all() {
        one - erf_small(s, x)
    } else if small.any() {
        small.select(one - erf_small(s, x), erfc_large(s, x))
    } else {
        erfc_large(s, x)
    };
    x.is_nan().select(x, y)
}

/// erfc x for |x| ≥ ERFC_SPLIT: e^(−a²)·t·F(t) for a = |x|, and 2 minus that for x < 0.
/// a² is split into p + e exactly (Dekker's product: no fused multiply-add needed, so the
/// same on every level), and e^(−a²) = e^(−p)·(1 − e): the rounding of a² alone would cost
/// up to a²·2⁻²⁴ relative, 40 ulp at a = 9.
#[inline(always)]
fn erfc_large<S: Simd>(s: S, x: S::F) -> S::F {
    let a = x.abs().fast_min(s.splat(ERFC_ZERO));
    let (p, e) = exact_square(s, a);
    let two = s.splat(2.0);
    let t = two / (two + a);
    let q = exp(s, -p) * (s.splat(1.0) - e) * (t * horner(s, t, &ERFC));
    x.simd_lt(s.zero()).select(two - q, q)
}

/// (p, e) with p = a·a rounded and p + e = a·a exactly (Dekker: a split into two 12-bit
/// halves, whose products are exact).
#[inline(always)]
fn exact_square<S: Simd>(s: S, a: S::F) -> (S::F, S::F) {
    let p = a * a;
    let c = a * s.splat(4097.0);
    let hi = c - (c - a);
    let lo = a - hi;
    let e = ((hi * hi - p) + (hi * lo) * s.splat(2.0)) + lo * lo;
    (p, e)
}
