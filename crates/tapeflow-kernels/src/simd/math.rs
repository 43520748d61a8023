//! The element functions of the second op catalog (rounding, the activations, tan and the
//! inverse and hyperbolic functions, erf, floor division), and the slice kernels of the
//! activations that carry an attribute (leaky ReLU's slope, clip bounds) or feed a
//! gradient (relu6's, leaky ReLU's and clip's masks).
//!
//! Formulas are TensorFlow's (its CPU kernels and the Python compositions behind
//! tf.nn.gelu and tf.math.log_sigmoid); accuracy bounds are pinned in `math_tests.rs`.

use super::{Map1, Map2, map_unary, patch_lanes, sigmoid_vec, softplus_vec, zip_runs};
use crate::elementwise::UnaryOp;
use crate::fastmath;
use crate::grad::constants;
use crate::isa::{F32s, I32s, LANES, Mask, Simd, kernel};
use crate::reference::{SELU_SCALE, SELU_SCALE_ALPHA};

/// Beyond this magnitude tan's range reduction loses accuracy (as sin and cos): such lanes
/// take the scalar reference.
const TAN_SIMD_LIMIT: f32 = 256.0;

/// 2²³: from here on every f32 is an integer.
const TWO_POW_23: f32 = 8_388_608.0;

/// x rounded to the nearest integer, ties to even (TensorFlow's Round), by adding and
/// subtracting 2²³ to |x| (the addition rounds in the default mode), x's sign kept (−0.3
/// gives −0); |x| ≥ 2²³, infinities and NaN pass through. Written out rather than taken
/// from the level's rounding: the baseline level's `round` rounds ties away from zero.
#[inline(always)]
pub(crate) fn round_half_even<S: Simd>(s: S, x: S::F) -> S::F {
    let a = x.abs();
    let big = s.splat(TWO_POW_23);
    let r = ((a + big) - big).copysign(x);
    a.simd_lt(big).select(r, x)
}

/// floor x: the rounded value minus 1 where rounding went up. Exact (|x| ≥ 2²³ is
/// already an integer; −0, infinities and NaN pass through).
#[inline(always)]
pub(crate) fn floor<S: Simd>(s: S, x: S::F) -> S::F {
    let r = round_half_even(s, x);
    r - r.simd_gt(x).select(s.splat(1.0), s.zero())
}

/// ceil x = −floor(−x) (which also gives ceil(−0.5) = −0, as C's ceil).
#[inline(always)]
pub(crate) fn ceil<S: Simd>(s: S, x: S::F) -> S::F {
    -floor(s, -x)
}

/// tan x: the vector reduction up to |x| = 256 except near a zero or pole (|r| < |x|·2⁻²⁰,
/// where the reduction's absolute error is no longer small against r), the scalar
/// reference elsewhere (rare lanes, as sin and cos do).
#[inline(always)]
fn tan<S: Simd>(s: S, x: S::F) -> S::F {
    let (y, r) = fastmath::tan_reduced(s, x);
    let a = x.abs();
    let far = a.simd_gt(s.splat(TAN_SIMD_LIMIT)) | r.abs().simd_lt(a * s.splat(1.0 / 1_048_576.0));
    patch_lanes(s, far, x, y, f32::tan)
}

/// `op(x)` for the ops of this module.
#[inline(always)]
pub(crate) fn unary_vec<S: Simd>(s: S, op: UnaryOp, x: S::F) -> S::F {
    let zero = s.zero();
    let one = s.splat(1.0);
    match op {
        UnaryOp::Floor => floor(s, x),
        UnaryOp::Ceil => ceil(s, x),
        UnaryOp::Round => round_half_even(s, x),
        UnaryOp::Tan => tan(s, x),
        UnaryOp::Asin => fastmath::asin(s, x),
        UnaryOp::Acos => fastmath::acos(s, x),
        UnaryOp::Atan => fastmath::atan(s, x),
        UnaryOp::Sinh => fastmath::sinh(s, x),
        UnaryOp::Cosh => fastmath::cosh(s, x),
        UnaryOp::Asinh => fastmath::asinh(s, x),
        UnaryOp::Acosh => fastmath::acosh(s, x),
        UnaryOp::Atanh => fastmath::atanh(s, x),
        UnaryOp::Erf => fastmath::erf(s, x),
        UnaryOp::Erfc => fastmath::erfc(s, x),
        // tf.math.log_sigmoid(x) = −softplus(−x).
        UnaryOp::LogSigmoid => -softplus_vec(s, -x),
        UnaryOp::Softsign => x / (one + x.abs()),
        UnaryOp::Elu => elu_like(s, x, None),
        UnaryOp::Selu => elu_like(s, x, Some((SELU_SCALE_ALPHA, SELU_SCALE))),
        // max(x, 0) then min(·, 6), NaN propagating.
        UnaryOp::Relu6 => x.is_nan().select(x, x.simd_gt(zero).select(x.fast_min(s.splat(6.0)), zero)),
        UnaryOp::Silu => x * sigmoid_vec(s, x),
        UnaryOp::Gelu => gelu(s, x),
        UnaryOp::GeluTanh => gelu_tanh(s, x),
        _ => x,
    }
}

/// TensorFlow's Elu kernel `x < 0 ? e^x − 1 : x`, or with `scales = (a, b)` its Selu
/// kernel `x < 0 ? a·(e^x − 1) : b·x` (e^x − 1 as TensorFlow writes it, not expm1).
/// Vectors without a negative lane skip the exp; e^x is taken of max(x, −87), which
/// changes nothing (e^x − 1 rounds to −1 from x = −17.4 on) and keeps the exp on its fast
/// path.
#[inline(always)]
fn elu_like<S: Simd>(s: S, x: S::F, scales: Option<(f32, f32)>) -> S::F {
    let negative = x.simd_lt(s.zero());
    let linear = match scales {
        Some((_, b)) => x * s.splat(b),
        None => x,
    };
    if !negative.any() {
        return linear;
    }
    let e = fastmath::exp(s, negative.select(x.fast_max(s.splat(-87.0)), s.zero()));
    let em1 = e - s.splat(1.0);
    let scaled = match scales {
        Some((a, _)) => em1 * s.splat(a),
        None => em1,
    };
    negative.select(scaled, linear)
}

/// The constants of tf.nn.gelu as float32.
const FRAC_1_SQRT_2: f32 = constants::FRAC_1_SQRT_2 as f32;
const SQRT_2_OVER_PI: f32 = constants::SQRT_2_OVER_PI as f32;
const GELU_CUBIC: f32 = constants::GELU_CUBIC as f32;

/// tf.nn.gelu(x): `0.5·x·(1 + erf(x/√2))` (x/√2 as x·(1/√2): the same value within one
/// rounding of the argument, and no division).
#[inline(always)]
fn gelu<S: Simd>(s: S, x: S::F) -> S::F {
    (x * s.splat(0.5)) * (s.splat(1.0) + fastmath::erf(s, x * s.splat(FRAC_1_SQRT_2)))
}

/// tf.nn.gelu(x, approximate=True): `0.5·x·(1 + tanh(u))`, u = √(2/π)·(x + 0.044715·x³),
/// computed as `x·sigmoid(2u)` (the same function: ½(1 + tanh u) = 1/(1 + e^{−2u})). One exp
/// instead of tanh's two branches, and no cancellation in 1 + tanh u for x < 0, so the
/// negative tail keeps its relative accuracy where TensorFlow's f32 formula rounds to 0.
#[inline(always)]
fn gelu_tanh<S: Simd>(s: S, x: S::F) -> S::F {
    let inner = (x + ((x * x) * x) * s.splat(GELU_CUBIC)) * s.splat(SQRT_2_OVER_PI);
    x * sigmoid_vec(s, inner + inner)
}

/// Below this quotient |x/y| (and with |y| in [2⁻¹⁰⁰, 2¹⁰⁰]) the vector fmod is exact; the
/// other lanes take the scalar `%` (which is exact too, but a call per element).
const FMOD_QUOTIENT_LIMIT: f32 = 4_194_304.0; // 2^22

/// Dekker's exact product: (p, e) with p = a·b rounded and p + e = a·b exactly, without a
/// fused multiply-add (so the same on every level). Valid while no partial product
/// overflows or underflows.
#[inline(always)]
fn two_product<S: Simd>(s: S, a: S::F, b: S::F) -> (S::F, S::F) {
    let p = a * b;
    let (ah, al) = veltkamp_split(s, a);
    let (bh, bl) = veltkamp_split(s, b);
    (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
}

/// v = hi + lo exactly, each half of 12 significant bits (so their products are exact).
#[inline(always)]
fn veltkamp_split<S: Simd>(s: S, v: S::F) -> (S::F, S::F) {
    let c = v * s.splat(4097.0);
    let hi = c - (c - v);
    (hi, v - hi)
}

/// fmod(x, y), exactly (C's fmod: the sign of x). With q = trunc(|x|/|y|), which may be
/// one too large where the quotient rounded up to an integer, |x| − q·|y| is computed
/// exactly from Dekker's product (the subtraction of the rounded product is exact by
/// Sterbenz's lemma, and the remainder is representable); a negative remainder means q was
/// one too large, and adding |y| back is exact too.
#[inline(always)]
fn fmod<S: Simd>(s: S, x: S::F, y: S::F) -> S::F {
    let (ax, ay) = (x.abs(), y.abs());
    let ratio = ax / ay;
    let fast = ratio.simd_lt(s.splat(FMOD_QUOTIENT_LIMIT))
        & ay.simd_ge(s.splat(7.888_609e-31)) // 2^-100
        & ay.simd_le(s.splat(1.267_650_6e30)); // 2^100
    // Lanes outside the fast path compute garbage here, then take the scalar `%`.
    let q = fast.select(ratio, s.zero()).trunc_int().to_f32();
    let (p, e) = two_product(s, q, fast.select(ay, s.zero()));
    let r = (ax - p) - e;
    let r = r.simd_lt(s.zero()).select(r + ay, r);
    let m = r.copysign(x);
    if fast.all() {
        return m;
    }
    let (xs, ys, mut ms) = (x.to_array(), y.to_array(), m.to_array());
    let bits = fast.bitmask();
    for i in 0..LANES {
        if bits & (1 << i) == 0 {
            ms[i] = xs[i] % ys[i];
        }
    }
    s.load(&ms)
}

/// TensorFlow's FloorMod for floats: fmod, moved into y's sign by adding y where the two
/// differ and the remainder is not zero.
#[inline(always)]
pub(crate) fn floor_mod<S: Simd>(s: S, x: S::F, y: S::F) -> S::F {
    let m = fmod(s, x, y);
    let zero = s.zero();
    let (m_neg, y_neg) = (m.simd_lt(zero), y.simd_lt(zero));
    let signs_differ = (m_neg & !y_neg) | (!m_neg & y_neg);
    (signs_differ & m.simd_ne(zero)).select(m + y, m)
}

/// `x > 0 ? x : α·x`: TensorFlow's LeakyRelu (NaN and −0 take the α side; α may be
/// negative or above 1, so not a maximum).
#[derive(Clone, Copy)]
struct LeakyRelu<S: Simd>(S, S::F);

impl<S: Simd> Map1<S> for LeakyRelu<S> {
    #[inline(always)]
    fn apply(self, x: S::F) -> S::F {
        x.simd_gt(self.0.zero()).select(x, x * self.1)
    }
}

kernel! {
    /// `dst[i] = src[i] > 0 ? src[i] : alpha·src[i]`.
    pub fn leaky_relu_f32<'a>(alpha: f32, src: &'a [f32], dst: &'a mut [f32]) => leaky_relu_body;
}

#[inline(always)]
fn leaky_relu_body<S: Simd>(s: S, alpha: f32, src: &[f32], dst: &mut [f32]) {
    map_unary(s, src, dst, LeakyRelu(s, s.splat(alpha)));
}

/// `maximum(minimum(x, hi), lo)` as tf.clip_by_value composes it, NaN propagating from x
/// (the caller handles NaN bounds).
#[derive(Clone, Copy)]
struct Clip<S: Simd>(S::F, S::F);

impl<S: Simd> Map1<S> for Clip<S> {
    #[inline(always)]
    fn apply(self, x: S::F) -> S::F {
        let (lo, hi) = (self.0, self.1);
        let below_hi = x.simd_le(hi).select(x, hi);
        let clipped = below_hi.simd_ge(lo).select(below_hi, lo);
        x.is_nan().select(x, clipped)
    }
}

kernel! {
    /// `dst[i] = max(min(src[i], hi), lo)`, NaN propagating; the bounds are not NaN.
    pub fn clip_f32<'a>(lo: f32, hi: f32, src: &'a [f32], dst: &'a mut [f32]) => clip_body;
}

#[inline(always)]
fn clip_body<S: Simd>(s: S, lo: f32, hi: f32, src: &[f32], dst: &mut [f32]) {
    map_unary(s, src, dst, Clip::<S>(s.splat(lo), s.splat(hi)));
}

/// The gradient masks of the activations that carry one, applied to an upstream gradient
/// `g` given the op's input (or output) `x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaskGrad {
    /// TensorFlow's Relu6Grad: `g · (0 < y < 6 ? 1 : 0)` of the output y (a product, so an
    /// infinite or NaN g gives NaN outside the band, as in TensorFlow).
    Relu6,
    /// TensorFlow's LeakyReluGrad: `x > 0 ? g : α·g` of the input x.
    LeakyRelu(f32),
    /// The gradient of tf.clip_by_value (its minimum's and maximum's gradients composed):
    /// `lo ≤ x ≤ hi ? g : 0`, 0 at NaN.
    Clip(f32, f32),
}

/// One vector of a [`MaskGrad`].
#[inline(always)]
pub(crate) fn mask_grad_vec<S: Simd>(s: S, rule: MaskGrad, x: S::F, g: S::F) -> S::F {
    let zero = s.zero();
    match rule {
        MaskGrad::Relu6 => g * (x.simd_gt(zero) & x.simd_lt(s.splat(6.0))).select(s.splat(1.0), zero),
        MaskGrad::LeakyRelu(alpha) => x.simd_gt(zero).select(g, g * s.splat(alpha)),
        MaskGrad::Clip(lo, hi) => (x.simd_ge(s.splat(lo)) & x.simd_le(s.splat(hi))).select(g, zero),
    }
}

/// A [`MaskGrad`] as a function of (x, g).
#[derive(Clone, Copy)]
struct MaskGradMap<S>(S, MaskGrad);

impl<S: Simd> Map2<S> for MaskGradMap<S> {
    #[inline(always)]
    fn apply(self, x: S::F, g: S::F) -> S::F {
        mask_grad_vec(self.0, self.1, x, g)
    }
}

kernel! {
    /// `dst[i] = rule(x[i], g[i])`.
    pub fn mask_grad_f32<'a>(rule: MaskGrad, x: &'a [f32], g: &'a [f32], dst: &'a mut [f32]) => mask_grad_body;
}

#[inline(always)]
fn mask_grad_body<S: Simd>(s: S, rule: MaskGrad, x: &[f32], g: &[f32], dst: &mut [f32]) {
    // One loop per rule, with the rule a constant inside it.
    match rule {
        MaskGrad::Relu6 => zip_runs(s, x, g, dst, MaskGradMap(s, MaskGrad::Relu6)),
        MaskGrad::LeakyRelu(a) => zip_runs(s, x, g, dst, MaskGradMap(s, MaskGrad::LeakyRelu(a))),
        MaskGrad::Clip(lo, hi) => zip_runs(s, x, g, dst, MaskGradMap(s, MaskGrad::Clip(lo, hi))),
    }
}
