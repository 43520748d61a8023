//! SIMD element functions and slice kernels, written once over the instruction-set token
//! ([`crate::isa`]) and compiled per level.
//!
//! A vector is 16 f32 lanes on every level (one zmm register, two ymm registers, or
//! `wide`'s `f32x16` on the baseline). Every slice kernel processes whole vectors and
//! finishes a tail by padding it into one more vector, so an element's result never depends
//! on its position: the same input gives the same bits whether it sits in a long tensor, at
//! its end, or alone in a scalar. Each entry point takes the [`Level`] its op chose and
//! dispatches once.
//!
//! Accuracy against a correctly rounded f64 reference is pinned by the tests at the bottom,
//! on every level the CPU has, and stated in docs/PERFORMANCE.md.

use half::f16;

use crate::elementwise::{BinaryOp, UnaryOp};
use crate::fastmath;
#[cfg(test)]
use crate::isa::Level;
use crate::isa::{F32s, I32s, LANES, Mask, Simd, kernel};
use crate::mask::{Side, side_vector};
use crate::reference;

mod math;
pub(crate) use math::mask_grad_vec;
pub use math::{MaskGrad, clip_f32, leaky_relu_f32, mask_grad_f32};

/// Beyond this magnitude the vector sin/cos range reduction loses accuracy; such lanes are
/// recomputed with the scalar reference.
const TRIG_SIMD_LIMIT: f32 = 256.0;

/// Lanes where `mask` is set take `fallback(x)` computed per lane with the scalar
/// reference; rare, so the branch is almost never taken.
#[inline(always)]
fn patch_lanes<S: Simd>(s: S, mask: S::M, x: S::F, y: S::F, fallback: impl Fn(f32) -> f32) -> S::F {
    if !mask.any() {
        return y;
    }
    let (m, xs, mut ys) = (mask.bitmask(), x.to_array(), y.to_array());
    for i in 0..LANES {
        if m & (1 << i) != 0 {
            ys[i] = fallback(xs[i]);
        }
    }
    s.load(&ys)
}

/// Lanes of a vector sin or cos result `y` of `x` to recompute with the scalar reference:
/// beyond [`TRIG_SIMD_LIMIT`], and near a zero of the function (|y| < |x|·2⁻²⁰). There the
/// result is far smaller than the argument, and the absolute error of the range reduction
/// (about |x|·2⁻⁴⁸ when its steps are not fused: the baseline without FMA) becomes several
/// ulp of the result. With the patch the stated bound holds on every level; the lanes are
/// rare (a fraction of about 2⁻¹⁹·|x| of the inputs near each zero).
#[inline(always)]
fn trig_needs_reference<S: Simd>(s: S, x: S::F, y: S::F) -> S::M {
    let a = x.abs();
    a.simd_gt(s.splat(TRIG_SIMD_LIMIT)) | y.abs().simd_lt(a * s.splat(1.0 / 1_048_576.0))
}

/// `op` on one vector, with TensorFlow's NaN and infinity rules. Always inlined: the slice
/// kernels call it with a constant `op`, so each gets a loop with the op's code in place.
#[inline(always)]
pub(crate) fn unary_vec<S: Simd>(s: S, op: UnaryOp, x: S::F) -> S::F {
    let zero = s.zero();
    let one = s.splat(1.0);
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => fastmath::exp(s, x),
        UnaryOp::Log => fastmath::log(s, x),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => one / x.sqrt(),
        UnaryOp::Square => x * x,
        UnaryOp::Tanh => fastmath::tanh(s, x),
        UnaryOp::Sigmoid => sigmoid_vec(s, x),
        // NaN compares false everywhere, so keep lanes that are > 0 or NaN.
        UnaryOp::Relu => (x.simd_gt(zero) | x.is_nan()).select(x, zero),
        UnaryOp::Sin => {
            let y = fastmath::sin_cos(s, x, false);
            patch_lanes(s, trig_needs_reference(s, x, y), x, y, f32::sin)
        }
        UnaryOp::Cos => {
            let y = fastmath::sin_cos(s, x, true);
            patch_lanes(s, trig_needs_reference(s, x, y), x, y, f32::cos)
        }
        UnaryOp::Softplus => softplus_vec(s, x),
        UnaryOp::Log1p => fastmath::log1p(s, x),
        UnaryOp::Expm1 => fastmath::expm1(s, x),
        UnaryOp::Reciprocal => one / x,
        UnaryOp::Sign => {
            let sign = x.simd_gt(zero).select(one, x.simd_lt(zero).select(-one, zero));
            x.is_nan().select(x, sign)
        }
        UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round
        | UnaryOp::Tan
        | UnaryOp::Asin
        | UnaryOp::Acos
        | UnaryOp::Atan
        | UnaryOp::Sinh
        | UnaryOp::Cosh
        | UnaryOp::Asinh
        | UnaryOp::Acosh
        | UnaryOp::Atanh
        | UnaryOp::Erf
        | UnaryOp::Erfc
        | UnaryOp::LogSigmoid
        | UnaryOp::Softsign
        | UnaryOp::Elu
        | UnaryOp::Selu
        | UnaryOp::Relu6
        | UnaryOp::Silu
        | UnaryOp::Gelu
        | UnaryOp::GeluTanh => math::unary_vec(s, op, x),
    }
}

/// max(x, 0) + log1p(exp(-|x|)): never overflows. A function of its own so that the
/// catalog-II rules built on it (log_sigmoid) call it directly: a call back into
/// [`unary_vec`] would make a cycle, which `#[inline(always)]` cannot inline, leaving every
/// vector operation of every unary kernel an out-of-line call without the level's features.
#[inline(always)]
pub(crate) fn softplus_vec<S: Simd>(s: S, x: S::F) -> S::F {
    let zero = s.splat(0.0);
    let y = x.simd_gt(zero).select(x, zero) + fastmath::log1p(s, fastmath::exp(s, -x.abs()));
    x.is_nan().select(x, y)
}

/// The logistic function; exp is only taken of a non-positive number.
#[inline(always)]
pub(crate) fn sigmoid_vec<S: Simd>(s: S, x: S::F) -> S::F {
    let e = fastmath::exp(s, -x.abs());
    let one = s.splat(1.0);
    let positive = one / (one + e);
    let y = x.simd_ge(s.zero()).select(positive, e * positive);
    x.is_nan().select(x, y)
}

/// `op` on two vectors; comparisons give 1.0 or 0.0. Always inlined, like [`unary_vec`].
#[inline(always)]
pub(crate) fn binary_vec<S: Simd>(s: S, op: BinaryOp, a: S::F, b: S::F) -> S::F {
    let one = s.splat(1.0);
    let zero = s.zero();
    let any_nan = a.is_nan() | b.is_nan();
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => {
            // Per lane with the scalar reference: integer powers stay exact (x**2 at 20 is
            // 400, and its gradient 2·20¹ exactly 40), which a SIMD exp/log pow loses.
            let (xa, xb) = (a.to_array(), b.to_array());
            s.load(&std::array::from_fn(|i| xa[i].powf(xb[i])))
        }
        BinaryOp::Maximum => any_nan.select(s.splat(f32::NAN), a.simd_ge(b).select(a, b)),
        BinaryOp::Minimum => any_nan.select(s.splat(f32::NAN), a.simd_le(b).select(a, b)),
        BinaryOp::Greater => a.simd_gt(b).select(one, zero),
        BinaryOp::GreaterEqual => a.simd_ge(b).select(one, zero),
        BinaryOp::Less => a.simd_lt(b).select(one, zero),
        BinaryOp::LessEqual => a.simd_le(b).select(one, zero),
        BinaryOp::Equal => a.simd_eq(b).select(one, zero),
        BinaryOp::SquaredDifference => (a - b) * (a - b),
        BinaryOp::FloorDiv => math::floor(s, a / b),
        BinaryOp::FloorMod => math::floor_mod(s, a, b),
        BinaryOp::Atan2 => fastmath::atan2(s, a, b),
    }
}

/// Expands `$body` once per variant of the op enum with `$op` bound to that variant as a
/// constant, so the generic loop in `$body` is compiled separately for each op.
macro_rules! for_each_op {
    (UnaryOp, $value:expr, $op:ident => $body:expr) => {
        for_each_op!(@arms $value, $op => $body; UnaryOp: Neg Abs Exp Log Sqrt Rsqrt Square Tanh Sigmoid Relu Sin Cos Softplus Log1p Expm1 Reciprocal Sign
            Floor Ceil Round Tan Asin Acos Atan Sinh Cosh Asinh Acosh Atanh Erf Erfc LogSigmoid Softsign Elu Selu Relu6 Silu Gelu GeluTanh)
    };
    (BinaryOp, $value:expr, $op:ident => $body:expr) => {
        for_each_op!(@arms $value, $op => $body; BinaryOp: Add Sub Mul Div Pow Maximum Minimum Greater GreaterEqual Less LessEqual Equal
            SquaredDifference FloorDiv FloorMod Atan2)
    };
    (@arms $value:expr, $op:ident => $body:expr; $Enum:ident: $($variant:ident)*) => {
        match $value {
            $($Enum::$variant => {
                const $op: $Enum = $Enum::$variant;
                $body
            })*
        }
    };
}

/// A function of one vector that the slice loops apply. A trait method, not a closure:
/// closures are functions of their own that LLVM may leave out of line, and out of line
/// they would be compiled without the level's instruction set (measured: exp 30× slower).
trait Map1<S: Simd>: Copy {
    fn apply(self, x: S::F) -> S::F;
}

/// A function of two vectors, as [`Map1`].
trait Map2<S: Simd>: Copy {
    fn apply(self, a: S::F, b: S::F) -> S::F;
}

/// `op(x)`.
#[derive(Clone, Copy)]
struct Unary<S>(S, UnaryOp);

impl<S: Simd> Map1<S> for Unary<S> {
    #[inline(always)]
    fn apply(self, x: S::F) -> S::F {
        unary_vec(self.0, self.1, x)
    }
}

/// `op(a, b)`.
#[derive(Clone, Copy)]
struct Binary<S>(S, BinaryOp);

impl<S: Simd> Map2<S> for Binary<S> {
    #[inline(always)]
    fn apply(self, a: S::F, b: S::F) -> S::F {
        binary_vec(self.0, self.1, a, b)
    }
}

/// `op(a, v)` for a fixed right operand `v`.
#[derive(Clone, Copy)]
struct SplatRight<S: Simd>(S, BinaryOp, S::F);

impl<S: Simd> Map1<S> for SplatRight<S> {
    #[inline(always)]
    fn apply(self, a: S::F) -> S::F {
        binary_vec(self.0, self.1, a, self.2)
    }
}

/// `op(v, b)` for a fixed left operand `v`.
#[derive(Clone, Copy)]
struct SplatLeft<S: Simd>(S, BinaryOp, S::F);

impl<S: Simd> Map1<S> for SplatLeft<S> {
    #[inline(always)]
    fn apply(self, b: S::F) -> S::F {
        binary_vec(self.0, self.1, self.2, b)
    }
}

kernel! {
    /// `dst[i] = op(src[i])`.
    pub fn unary_f32<'a>(op: UnaryOp, src: &'a [f32], dst: &'a mut [f32]) => unary_body;
}

#[inline(always)]
fn unary_body<S: Simd>(s: S, op: UnaryOp, src: &[f32], dst: &mut [f32]) {
    for_each_op!(UnaryOp, op, OP => map_unary(s, src, dst, Unary(s, OP)))
}

#[inline(always)]
fn map_unary<S: Simd>(s: S, src: &[f32], dst: &mut [f32], f: impl Map1<S>) {
    let n = dst.len().min(src.len());
    let (src_vecs, src_tail) = src[..n].as_chunks::<LANES>();
    let (dst_vecs, dst_tail) = dst[..n].as_chunks_mut::<LANES>();
    for (x, d) in src_vecs.iter().zip(dst_vecs) {
        f.apply(s.load(x)).store(d);
    }
    if !src_tail.is_empty() {
        let y = f.apply(s.load_padded(src_tail, 1.0)).to_array();
        dst_tail.copy_from_slice(&y[..dst_tail.len()]);
    }
}

/// One operand of a binary slice kernel: a run of elements or one element repeated.
#[derive(Clone, Copy)]
pub enum Operand<'a> {
    /// Elements, one per output.
    Run(&'a [f32]),
    /// One value for every output (a broadcast scalar, row or column element).
    Splat(f32),
}

kernel! {
    /// `dst[i] = op(a[i], b[i])` where each operand is a run or a splat.
    pub fn binary_f32<'a>(op: BinaryOp, a: Operand<'a>, b: Operand<'a>, dst: &'a mut [f32]) => binary_body;
}

#[inline(always)]
fn binary_body<S: Simd>(s: S, op: BinaryOp, a: Operand<'_>, b: Operand<'_>, dst: &mut [f32]) {
    for_each_op!(BinaryOp, op, OP => match (a, b) {
        (Operand::Run(x), Operand::Run(y)) => zip_runs(s, x, y, dst, Binary(s, OP)),
        (Operand::Run(x), Operand::Splat(v)) => map_unary(s, x, dst, SplatRight(s, OP, s.splat(v))),
        (Operand::Splat(v), Operand::Run(y)) => map_unary(s, y, dst, SplatLeft(s, OP, s.splat(v))),
        (Operand::Splat(p), Operand::Splat(q)) => dst.fill(binary_vec(s, OP, s.splat(p), s.splat(q)).to_array()[0]),
    })
}

#[inline(always)]
fn zip_runs<S: Simd>(s: S, x: &[f32], y: &[f32], dst: &mut [f32], f: impl Map2<S>) {
    let n = dst.len().min(x.len()).min(y.len());
    let (xv, xt) = x[..n].as_chunks::<LANES>();
    let (yv, yt) = y[..n].as_chunks::<LANES>();
    let (dv, dt) = dst[..n].as_chunks_mut::<LANES>();
    for ((p, q), d) in xv.iter().zip(yv).zip(dv) {
        f.apply(s.load(p), s.load(q)).store(d);
    }
    if !dt.is_empty() {
        let r = f.apply(s.load_padded(xt, 1.0), s.load_padded(yt, 1.0)).to_array();
        dt.copy_from_slice(&r[..dt.len()]);
    }
}

/// int32 one operand: a run or a splat.
#[derive(Clone, Copy)]
pub enum IntOperand<'a> {
    /// Elements, one per output.
    Run(&'a [i32]),
    /// One value for every output.
    Splat(i32),
}

impl IntOperand<'_> {
    #[inline(always)]
    fn get(&self, i: usize) -> i32 {
        match *self {
            IntOperand::Run(s) => s.get(i).copied().unwrap_or(0),
            IntOperand::Splat(v) => v,
        }
    }

    /// The 16 values from `i` on (zeros past the end), as an array.
    #[inline(always)]
    fn lanes_at(&self, i: usize) -> [i32; LANES] {
        match *self {
            IntOperand::Run(s) => {
                let mut lanes = [0i32; LANES];
                let part = s.get(i..).unwrap_or(&[]);
                let len = part.len().min(LANES);
                lanes[..len].copy_from_slice(&part[..len]);
                lanes
            }
            IntOperand::Splat(v) => [v; LANES],
        }
    }
}

kernel! {
    /// `dst[i] = op(a[i], b[i])` for int32, wrapping. add, sub, mul, maximum, minimum and
    /// squared_difference run in vectors; the rest per element with the reference. The caller has refused zero
    /// divisors and negative exponents.
    pub fn binary_i32<'a>(op: BinaryOp, a: IntOperand<'a>, b: IntOperand<'a>, dst: &'a mut [i32]) => binary_i32_body;
}

#[inline(always)]
fn binary_i32_body<S: Simd>(s: S, op: BinaryOp, a: IntOperand<'_>, b: IntOperand<'_>, dst: &mut [i32]) {
    use BinaryOp::{Add, Maximum, Minimum, Mul, SquaredDifference, Sub};
    match op {
        Add => int_loop(s, Add, a, b, dst),
        SquaredDifference => int_loop(s, SquaredDifference, a, b, dst),
        Sub => int_loop(s, Sub, a, b, dst),
        Mul => int_loop(s, Mul, a, b, dst),
        Maximum => int_loop(s, Maximum, a, b, dst),
        Minimum => int_loop(s, Minimum, a, b, dst),
        _ => dst.iter_mut().enumerate().for_each(|(i, d)| *d = reference::binary_i32(op, a.get(i), b.get(i))),
    }
}

/// The vector loop of [`binary_i32`] for the wrapping ops `op` (a constant where called).
#[inline(always)]
fn int_loop<S: Simd>(s: S, op: BinaryOp, a: IntOperand<'_>, b: IntOperand<'_>, dst: &mut [i32]) {
    let n = dst.len();
    let (dv, dt) = dst.as_chunks_mut::<LANES>();
    let mut i = 0;
    for d in dv {
        *d = int_vec::<S>(op, s.load_i(&a.lanes_at(i)), s.load_i(&b.lanes_at(i))).to_array();
        i += LANES;
    }
    if !dt.is_empty() {
        let r = int_vec::<S>(op, s.load_i(&a.lanes_at(i)), s.load_i(&b.lanes_at(i))).to_array();
        dt.copy_from_slice(&r[..n - i]);
    }
}

#[inline(always)]
fn int_vec<S: Simd>(op: BinaryOp, p: S::I, q: S::I) -> S::I {
    match op {
        BinaryOp::Sub => p - q,
        BinaryOp::Mul => p.mul_lo(q),
        BinaryOp::Maximum => p.max(q),
        BinaryOp::Minimum => p.min(q),
        BinaryOp::SquaredDifference => (p - q).mul_lo(p - q),
        _ => p + q,
    }
}

kernel! {
    /// `dst[i] = if cond[i] != 0 { x[i] } else { y[i] }` (`cond` the bytes of a bool
    /// tensor), each of the three a run or a splat (the flat `select`), 16 lanes at a time.
    pub fn select_f32<'a>(
        cond: Side<'a, u8>,
        x: Side<'a, f32>,
        y: Side<'a, f32>,
        dst: &'a mut [f32],
    ) => select_body;
}

#[inline(always)]
fn select_body<S: Simd>(s: S, cond: Side<'_, u8>, x: Side<'_, f32>, y: Side<'_, f32>, dst: &mut [f32]) {
    let c = match cond {
        Side::Run(c) => c,
        Side::Splat(c) => {
            match if c != 0 { x } else { y } {
                Side::Run(v) => dst.copy_from_slice(&v[..dst.len()]),
                Side::Splat(v) => dst.fill(v),
            }
            return;
        }
    };
    // 16 condition bytes widened to f32 (the compiler's zero-extend and convert), compared
    // with 0 into a lane mask, and a blend: the chosen bits unchanged (−0, NaN payloads).
    let zero = s.splat(0.0);
    let n = dst.len();
    let (dv, dt) = dst.as_chunks_mut::<LANES>();
    let (cv, _) = c[..n].as_chunks::<LANES>();
    for (k, (out, cb)) in dv.iter_mut().zip(cv).enumerate() {
        let wide: [f32; LANES] = std::array::from_fn(|i| f32::from(cb[i]));
        let mask = s.load(&wide).simd_ne(zero);
        mask.select(side_vector(s, &x, k), side_vector(s, &y, k)).store(out);
    }
    let start = n - dt.len();
    for (i, d) in dt.iter_mut().enumerate() {
        let k = start + i;
        *d = if c[k] != 0 { x.at(k) } else { y.at(k) };
    }
}

kernel! {
    /// Sum of a run, in 4 × 16 lanes of f32 partial sums combined in a fixed order (the
    /// same on every level).
    pub fn sum_f32<'a>(src: &'a [f32]) -> f32 => sum_body;
}

#[inline(always)]
fn sum_body<S: Simd>(s: S, src: &[f32]) -> f32 {
    let (vecs, tail) = src.as_chunks::<LANES>();
    let mut acc = [s.zero(); 4];
    let (quads, rest) = vecs.as_chunks::<4>();
    for q in quads {
        for k in 0..4 {
            acc[k] += s.load(&q[k]);
        }
    }
    for (k, v) in rest.iter().enumerate() {
        acc[k] += s.load(v);
    }
    acc[0] += s.load_padded(tail, 0.0);
    ((acc[0] + acc[1]) + (acc[2] + acc[3])).reduce_add()
}

kernel! {
    /// Maximum of a run (−inf if empty); NaN if any element is NaN.
    pub fn max_f32<'a>(src: &'a [f32]) -> f32 => max_body;
}

#[inline(always)]
fn max_body<S: Simd>(s: S, src: &[f32]) -> f32 {
    let (vecs, tail) = src.as_chunks::<LANES>();
    let mut acc = s.splat(f32::NEG_INFINITY);
    let mut nan = s.none();
    for v in vecs {
        let v = s.load(v);
        nan = nan | v.is_nan();
        acc = acc.fast_max(v);
    }
    let t = s.load_padded(tail, f32::NEG_INFINITY);
    nan = nan | t.is_nan();
    acc = acc.fast_max(t);
    if nan.any() { f32::NAN } else { acc.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max) }
}

kernel! {
    /// `acc[i] += src[i]`.
    pub fn add_into_f32<'a>(acc: &'a mut [f32], src: &'a [f32]) => add_into_body;
}

#[inline(always)]
fn add_into_body<S: Simd>(s: S, acc: &mut [f32], src: &[f32]) {
    binary_in_place(s, acc, src, Binary(s, BinaryOp::Add));
}

kernel! {
    /// `acc[i] = max(acc[i], src[i])`, NaN sticking.
    pub fn max_into_f32<'a>(acc: &'a mut [f32], src: &'a [f32]) => max_into_body;
}

#[inline(always)]
fn max_into_body<S: Simd>(s: S, acc: &mut [f32], src: &[f32]) {
    binary_in_place(s, acc, src, Binary(s, BinaryOp::Maximum));
}

#[inline(always)]
fn binary_in_place<S: Simd>(s: S, acc: &mut [f32], src: &[f32], f: impl Map2<S>) {
    let n = acc.len().min(src.len());
    let (av, at) = acc[..n].as_chunks_mut::<LANES>();
    let (sv, st) = src[..n].as_chunks::<LANES>();
    for (a, x) in av.iter_mut().zip(sv) {
        f.apply(s.load(a), s.load(x)).store(a);
    }
    if !at.is_empty() {
        let r = f.apply(s.load_padded(at, 0.0), s.load_padded(st, 0.0)).to_array();
        let len = at.len();
        at.copy_from_slice(&r[..len]);
    }
}

kernel! {
    /// `dst[i] /= d` (exactly rounded, as the scalar division).
    pub fn div_by_f32<'a>(dst: &'a mut [f32], d: f32) => div_by_body;
}

#[inline(always)]
fn div_by_body<S: Simd>(s: S, dst: &mut [f32], d: f32) {
    let (dv, dt) = dst.as_chunks_mut::<LANES>();
    let dv_splat = s.splat(d);
    for x in dv {
        (s.load(x) / dv_splat).store(x);
    }
    for x in dt {
        *x /= d;
    }
}

kernel! {
    /// `dst[i] = src[i]` widened from float16 (exact), 16 at a time.
    pub fn widen_f16<'a>(src: &'a [f16], dst: &'a mut [f32]) => widen_body;
}

#[inline(always)]
fn widen_body<S: Simd>(s: S, src: &[f16], dst: &mut [f32]) {
    let n = dst.len().min(src.len());
    let (sv, st) = src[..n].as_chunks::<LANES>();
    let (dv, dt) = dst[..n].as_chunks_mut::<LANES>();
    for (x, d) in sv.iter().zip(dv) {
        s.load_f16(x).store(d);
    }
    let mut lanes = [f16::ZERO; LANES];
    lanes[..st.len()].copy_from_slice(st);
    let y = s.load_f16(&lanes).to_array();
    dt.copy_from_slice(&y[..dt.len()]);
}

kernel! {
    /// `dst[i] = src[i]` rounded to float16 (nearest, ties to even), 16 at a time.
    pub fn narrow_f16<'a>(src: &'a [f32], dst: &'a mut [f16]) => narrow_body;
}

#[inline(always)]
fn narrow_body<S: Simd>(s: S, src: &[f32], dst: &mut [f16]) {
    let n = dst.len().min(src.len());
    let (sv, st) = src[..n].as_chunks::<LANES>();
    let (dv, dt) = dst[..n].as_chunks_mut::<LANES>();
    for (x, d) in sv.iter().zip(dv) {
        s.load(x).store_f16(d);
    }
    let mut lanes = [f16::ZERO; LANES];
    s.load_padded(st, 0.0).store_f16(&mut lanes);
    dt.copy_from_slice(&lanes[..dt.len()]);
}

mod folds;
pub use folds::{
    arg_columns_f32, arg_columns_i32, arg_row_f32, arg_row_i32, min_f32, min_into_f32, mul_into_f32, prod_f32,
    scan_columns_f32, scan_rows16_f32,
};

#[cfg(test)]
mod math_tests;
#[cfg(test)]
mod tests;
