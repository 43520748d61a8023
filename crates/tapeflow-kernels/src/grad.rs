//! Fused first-order backward kernels: a backward rule's arithmetic in one pass over raw
//! buffers, for the backward passes that nothing records (no higher order wanted).
//!
//! Each kernel computes, per element, exactly the operations that the tape's
//! differentiable rule composes from separate ops (`g * (1 - y * y)` for tanh: a multiply,
//! a subtract from a splat, a multiply), in the same order, with the same vector functions
//! for the transcendental parts. Every operation rounds to f32 either way (no contraction
//! into fused multiply-adds), so the fused and composed rules give the same bits; the
//! tape's tests run every rule both ways. float32 only: a composed float16 rule rounds every
//! intermediate to float16, which a fused pass would not.

use tapeflow_dtype::{DType, Result, Storage, Tensor};

use crate::elementwise::{BinaryOp, UnaryOp};
use crate::isa::{self, F32s, LANES, Mask, Simd, kernel};
use crate::parallel::{CHUNK, PARALLEL_MIN_WORK, for_each_chunk, for_each_item};
use crate::simd::{MaskGrad, mask_grad_vec, unary_vec};

/// Whether `x`, `y` and `g` are float32 of one shape: what the fused rules require.
fn eligible<R>(tensors: &[&Tensor<R>]) -> bool {
    let first = tensors[0];
    tensors.iter().all(|t| t.dtype() == DType::F32 && t.shape() == first.shape())
}

/// Whether [`unary_grad`] has a fused form of `op`'s rule (sign's gradient is zeros;
/// floor, ceil and round are never recorded: TensorFlow gives them no gradient).
pub const fn unary_grad_fused(op: UnaryOp) -> bool {
    !matches!(op, UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round)
}

/// Constants of the gradient rules, shared by the fused kernels and the tape's composed
/// rules (`ops::unary`) so both round the same values.
pub mod constants {
    /// 2/√π (erf's derivative at 0).
    pub const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    /// 1/√2 (the argument scale of gelu's erf).
    pub const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
    /// 1/√(2π) (the normal density's factor).
    pub const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
    /// √(2/π) (gelu's tanh approximation).
    pub const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    /// The cubic coefficient of gelu's tanh approximation.
    pub const GELU_CUBIC: f64 = 0.044_715;
    /// Three times [`GELU_CUBIC`] (the derivative of the cubic term).
    pub const GELU_CUBIC_3: f64 = 3.0 * GELU_CUBIC;
    /// TensorFlow's Selu scale.
    pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;
    /// TensorFlow's Selu scale × alpha.
    pub const SELU_SCALE_ALPHA: f64 = 1.758_099_340_847_376_9;
}

/// The gradient of `y = op(x)` given upstream `g`, fused, when `x`, `y` and `g` are
/// float32 of one shape (for the ops whose rule uses `y` alone, `x` may be `y` itself);
/// `None` when the fused form does not apply.
pub fn unary_grad<R>(op: UnaryOp, x: &Tensor<R>, y: &Tensor<R>, g: &Tensor<R>) -> Result<Option<Tensor<R>>> {
    if !eligible(&[x, y, g]) || !unary_grad_fused(op) {
        return Ok(None);
    }
    let (xs, ys, gs) = (x.as_slice::<f32>()?, y.as_slice::<f32>()?, g.as_slice::<f32>()?);
    if gs.len() < LANES
        && let Some(scalar) = unary_grad_scalar(op)
    {
        // Less than a vector (scalars): plain IEEE arithmetic, the same operations as the
        // vector body, without entering a kernel.
        let storage = Storage::for_overwrite::<f32>(gs.len(), |out| {
            for (((o, &x), &y), &g) in out.iter_mut().zip(xs).zip(ys).zip(gs) {
                *o = scalar(x, y, g);
            }
        });
        return Tensor::from_storage(storage, g.shape().clone()).map(Some);
    }
    let level = isa::current();
    let storage = Storage::for_overwrite::<f32>(gs.len(), |out| {
        for_each_chunk(out, op.cost() + 1, |start, out| {
            let end = start + out.len();
            unary_grad_run(level, op, &xs[start..end], &ys[start..end], &gs[start..end], out);
        })
    });
    Tensor::from_storage(storage, g.shape().clone()).map(Some)
}

kernel! {
    /// One run of [`unary_grad`].
    fn unary_grad_run<'a>(op: UnaryOp, x: &'a [f32], y: &'a [f32], g: &'a [f32], out: &'a mut [f32]) => unary_grad_body;
}

#[inline(always)]
fn unary_grad_body<S: Simd>(s: S, op: UnaryOp, x: &[f32], y: &[f32], g: &[f32], out: &mut [f32]) {
    let n = out.len().min(x.len()).min(y.len()).min(g.len());
    let (xv, xt) = x[..n].as_chunks::<LANES>();
    let (yv, yt) = y[..n].as_chunks::<LANES>();
    let (gv, gt) = g[..n].as_chunks::<LANES>();
    let (ov, ot) = out[..n].as_chunks_mut::<LANES>();
    for (((x, y), g), o) in xv.iter().zip(yv).zip(gv).zip(ov) {
        unary_grad_vec(s, op, s.load(x), s.load(y), s.load(g)).store(o);
    }
    // The tail padded into one more vector, as every slice kernel does: an element's bits
    // never depend on its position.
    if !ot.is_empty() {
        let d = unary_grad_vec(s, op, s.load_padded(xt, 1.0), s.load_padded(yt, 1.0), s.load_padded(gt, 1.0));
        ot.copy_from_slice(&d.to_array()[..ot.len()]);
    }
}

/// One vector of a unary op's rule, written as the tape's composed rule
/// (`ops::unary::derivative`) writes it.
#[inline(always)]
fn unary_grad_vec<S: Simd>(s: S, op: UnaryOp, x: S::F, y: S::F, g: S::F) -> S::F {
    let one = s.splat(1.0);
    match op {
        UnaryOp::Neg => -g,
        UnaryOp::Abs => g * unary_vec(s, UnaryOp::Sign, x),
        UnaryOp::Exp => g * y,
        UnaryOp::Log => g * (one / x),
        UnaryOp::Sqrt => (g * s.splat(0.5)) / y,
        UnaryOp::Rsqrt => (g * s.splat(-0.5)) * ((y * y) * y),
        UnaryOp::Square => g * (s.splat(2.0) * x),
        UnaryOp::Tanh => g * (one - y * y),
        UnaryOp::Sigmoid => (g * y) * (one - y),
        UnaryOp::Relu => y.simd_gt(s.zero()).select(g, s.zero()),
        UnaryOp::Sin => g * unary_vec(s, UnaryOp::Cos, x),
        UnaryOp::Cos => (-g) * unary_vec(s, UnaryOp::Sin, x),
        UnaryOp::Softplus => g * unary_vec(s, UnaryOp::Sigmoid, x),
        UnaryOp::Log1p => g * (one / (one + x)),
        UnaryOp::Expm1 => g * unary_vec(s, UnaryOp::Exp, x),
        UnaryOp::Reciprocal => (-g) * (y * y),
        // Never fused (zeros, or never recorded): see `unary_grad_fused`.
        UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => s.zero(),
        _ => unary_grad_vec_catalog2(s, op, x, y, g),
    }
}

/// A scalar of a rule, as f32 (as the composed rule's `scalar_like` rounds it).
#[inline(always)]
fn k<S: Simd>(s: S, v: f64) -> S::F {
    s.splat(v as f32)
}

/// [`unary_grad_vec`] for the ops of the second catalog, each the composed rule of
/// `ops::unary::derivative` operation for operation.
#[inline(always)]
fn unary_grad_vec_catalog2<S: Simd>(s: S, op: UnaryOp, x: S::F, y: S::F, g: S::F) -> S::F {
    use constants::*;
    let one = s.splat(1.0);
    let zero = s.zero();
    match op {
        UnaryOp::Tan => {
            let sec = one / unary_vec(s, UnaryOp::Cos, x);
            g * (sec * sec)
        }
        UnaryOp::Asin => g * (one / (one - x * x).sqrt()),
        UnaryOp::Acos => (-g) * (one / (one - x * x).sqrt()),
        UnaryOp::Atan => g * (one / (one + x * x)),
        UnaryOp::Sinh => g * unary_vec(s, UnaryOp::Cosh, x),
        UnaryOp::Cosh => g * unary_vec(s, UnaryOp::Sinh, x),
        UnaryOp::Asinh => g / unary_vec(s, UnaryOp::Cosh, y),
        UnaryOp::Acosh => g / unary_vec(s, UnaryOp::Sinh, y),
        UnaryOp::Atanh => g * (one / (one - x * x)),
        UnaryOp::Erf => (g * k(s, TWO_OVER_SQRT_PI)) * unary_vec(s, UnaryOp::Exp, -(x * x)),
        UnaryOp::Erfc => (g * k(s, -TWO_OVER_SQRT_PI)) * unary_vec(s, UnaryOp::Exp, -(x * x)),
        UnaryOp::LogSigmoid => g * unary_vec(s, UnaryOp::Sigmoid, -x),
        UnaryOp::Softsign => {
            let t = x.abs() + one;
            g / (t * t)
        }
        UnaryOp::Elu => y.simd_lt(zero).select((y + one) * g, g),
        UnaryOp::Selu => y.simd_lt(zero).select(g * (y + k(s, SELU_SCALE_ALPHA)), g * k(s, SELU_SCALE)),
        UnaryOp::Relu6 => mask_grad_vec(s, MaskGrad::Relu6, y, g),
        UnaryOp::Silu => {
            let sig = unary_vec(s, UnaryOp::Sigmoid, x);
            g * (sig * (one + x * (one - sig)))
        }
        UnaryOp::Gelu => {
            let half = k(s, 0.5);
            let cdf = (one + unary_vec(s, UnaryOp::Erf, x * k(s, FRAC_1_SQRT_2))) * half;
            let pdf = unary_vec(s, UnaryOp::Exp, (x * x) * k(s, -0.5)) * k(s, FRAC_1_SQRT_2PI);
            g * (cdf + x * pdf)
        }
        UnaryOp::GeluTanh => {
            let (half, c) = (k(s, 0.5), k(s, SQRT_2_OVER_PI));
            let x2 = x * x;
            let t = unary_vec(s, UnaryOp::Tanh, (x + (x2 * x) * k(s, GELU_CUBIC)) * c);
            let inner = (one + x2 * k(s, GELU_CUBIC_3)) * c;
            g * ((one + t) * half + ((x * half) * (one - t * t)) * inner)
        }
        _ => zero,
    }
}

/// [`unary_grad_vec`] for one element, for the ops whose rule is plain arithmetic (IEEE
/// operations round the same in a scalar register as in a vector lane); `None` for the
/// rules built on the vector functions of `exp`, `sin` and the like.
fn unary_grad_scalar(op: UnaryOp) -> Option<fn(f32, f32, f32) -> f32> {
    Some(match op {
        UnaryOp::Neg => |_, _, g| -g,
        UnaryOp::Exp => |_, y, g| g * y,
        UnaryOp::Log => |x, _, g| g * (1.0 / x),
        UnaryOp::Sqrt => |_, y, g| (g * 0.5) / y,
        UnaryOp::Rsqrt => |_, y, g| (g * -0.5) * ((y * y) * y),
        UnaryOp::Square => |x, _, g| g * (2.0 * x),
        UnaryOp::Tanh => |_, y, g| g * (1.0 - y * y),
        UnaryOp::Sigmoid => |_, y, g| (g * y) * (1.0 - y),
        UnaryOp::Relu => |_, y, g| if y > 0.0 { g } else { 0.0 },
        UnaryOp::Log1p => |x, _, g| g * (1.0 / (1.0 + x)),
        UnaryOp::Reciprocal => |_, y, g| (-g) * (y * y),
        _ => return None,
    })
}

/// The gradients of a binary op's two operands (`None` where not asked for).
pub type GradPair<R> = (Option<Tensor<R>>, Option<Tensor<R>>);

/// Whether [`binary_grad`] has a fused form of `op`'s rule (pow: for the base only; its
/// exponent's gradient goes through `log`, composed).
pub const fn binary_grad_fused(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Pow
            | BinaryOp::Maximum
            | BinaryOp::Minimum
            | BinaryOp::SquaredDifference
            | BinaryOp::FloorMod
            | BinaryOp::Atan2
    )
}

/// The gradients of `op(a, b)` given upstream `g` for the operands that need one, fused
/// into one pass (`mul`: `g·b` and `a·g` together), when `a`, `b` and `g` are float32 of
/// one shape; `None` when the fused form does not apply.
pub fn binary_grad<R>(
    op: BinaryOp,
    a: &Tensor<R>,
    b: &Tensor<R>,
    g: &Tensor<R>,
    need_a: bool,
    need_b: bool,
) -> Result<Option<GradPair<R>>> {
    if !eligible(&[a, b, g]) || !binary_grad_fused(op) || (op == BinaryOp::Pow && need_b) {
        return Ok(None);
    }
    let (xs, ys, gs) = (a.as_slice::<f32>()?, b.as_slice::<f32>()?, g.as_slice::<f32>()?);
    let n = gs.len();
    let level = isa::current();
    let which = Needs { a: need_a, b: need_b };
    let fill = |out_a: &mut [f32], out_b: &mut [f32]| {
        if n < LANES {
            // Less than a vector (scalars): plain IEEE arithmetic, the same operations as
            // the vector body, without entering a kernel.
            for i in 0..n {
                let (da, db) = binary_grad_one(op, xs[i], ys[i], gs[i]);
                if let Some(o) = out_a.get_mut(i) {
                    *o = da;
                }
                if let Some(o) = out_b.get_mut(i) {
                    *o = db;
                }
            }
            return;
        }
        let run = |start: usize, pa: &mut [f32], pb: &mut [f32]| {
            let r = start..(start + CHUNK).min(n);
            binary_grad_run(level, op, which, [&xs[r.clone()], &ys[r.clone()], &gs[r]], pa, pb);
        };
        if n.saturating_mul(op.cost() + 1) < PARALLEL_MIN_WORK {
            return run(0, out_a, out_b);
        }
        // Chunks of both outputs side by side: one pass reads a, b and g once.
        let pieces: Vec<(usize, &mut [f32], &mut [f32])> = (0..n.div_ceil(CHUNK))
            .zip(pieces(out_a).zip(pieces(out_b)))
            .map(|(k, (pa, pb))| (k * CHUNK, pa, pb))
            .collect();
        for_each_item(pieces, |_, (start, pa, pb)| run(start, pa, pb));
    };
    let (first, second) = match (need_a, need_b) {
        (true, true) => {
            let mut second = None;
            let first = Storage::for_overwrite::<f32>(n, |out_a| {
                second = Some(Storage::for_overwrite::<f32>(n, |out_b| fill(out_a, out_b)));
            });
            (Some(first), second)
        }
        (true, false) => (Some(Storage::for_overwrite::<f32>(n, |out_a| fill(out_a, &mut []))), None),
        (false, true) => (None, Some(Storage::for_overwrite::<f32>(n, |out_b| fill(&mut [], out_b)))),
        (false, false) => (None, None),
    };
    let tensor = |storage: Option<Storage>| storage.map(|s| Tensor::from_storage(s, g.shape().clone())).transpose();
    Ok(Some((tensor(first)?, tensor(second)?)))
}

/// Consecutive `CHUNK`-element pieces of an output; an empty output (an operand that needs
/// no gradient) yields empty pieces for ever, so it zips with the other output's pieces.
fn pieces(out: &mut [f32]) -> impl Iterator<Item = &mut [f32]> {
    out.chunks_mut(CHUNK).chain(std::iter::repeat_with(<&mut [f32]>::default))
}

/// Which operands of a binary rule need a gradient.
#[derive(Clone, Copy)]
struct Needs {
    a: bool,
    b: bool,
}

kernel! {
    /// One run of [`binary_grad`] over `[a, b, g]`; an output of an operand that needs no
    /// gradient is empty.
    fn binary_grad_run<'a>(op: BinaryOp, needs: Needs, abg: [&'a [f32]; 3], out_a: &'a mut [f32], out_b: &'a mut [f32]) => binary_grad_body;
}

#[inline(always)]
fn binary_grad_body<S: Simd>(s: S, op: BinaryOp, needs: Needs, abg: [&[f32]; 3], out_a: &mut [f32], out_b: &mut [f32]) {
    let [a, b, g] = abg;
    let n = g.len().min(a.len()).min(b.len());
    let (av, at) = a[..n].as_chunks::<LANES>();
    let (bv, bt) = b[..n].as_chunks::<LANES>();
    let (gv, gt) = g[..n].as_chunks::<LANES>();
    // An output of an operand that needs no gradient is empty: its pieces are missing. One
    // that needs a gradient is the chunk's piece of it, as long as `g` (`binary_grad` cuts
    // all five slices at the same bounds), so the slicing below cannot fail.
    let (oa, oat) = out_a[..if needs.a { n } else { 0 }].as_chunks_mut::<LANES>();
    let (ob, obt) = out_b[..if needs.b { n } else { 0 }].as_chunks_mut::<LANES>();
    for i in 0..gv.len() {
        let (da, db) = binary_grad_vec(s, op, s.load(&av[i]), s.load(&bv[i]), s.load(&gv[i]));
        if let Some(o) = oa.get_mut(i) {
            da.store(o);
        }
        if let Some(o) = ob.get_mut(i) {
            db.store(o);
        }
    }
    if !gt.is_empty() {
        let (da, db) = binary_grad_vec(s, op, s.load_padded(at, 1.0), s.load_padded(bt, 1.0), s.load_padded(gt, 1.0));
        if !oat.is_empty() {
            oat.copy_from_slice(&da.to_array()[..oat.len()]);
        }
        if !obt.is_empty() {
            obt.copy_from_slice(&db.to_array()[..obt.len()]);
        }
    }
}

/// [`binary_grad_vec`] for one element.
#[inline(always)]
fn binary_grad_one(op: BinaryOp, a: f32, b: f32, g: f32) -> (f32, f32) {
    match op {
        BinaryOp::Mul => (g * b, a * g),
        BinaryOp::Div => (g / b, g * (((-a) / b) / b)),
        BinaryOp::Pow => ((g * b) * a.powf(b - 1.0), 0.0),
        BinaryOp::Maximum => {
            if a >= b {
                (g, 0.0)
            } else {
                (0.0, g)
            }
        }
        BinaryOp::Minimum => {
            if a <= b {
                (g, 0.0)
            } else {
                (0.0, g)
            }
        }
        BinaryOp::SquaredDifference => {
            let da = (g * 2.0) * (a - b);
            (da, -da)
        }
        BinaryOp::FloorMod => (g, g * -(a / b).floor()),
        BinaryOp::Atan2 => {
            let inv = g / (b * b + a * a);
            (inv * b, inv * -a)
        }
        _ => (0.0, 0.0),
    }
}

/// One vector of a binary op's two gradients, as `ops::binary::derivatives` composes them.
#[inline(always)]
fn binary_grad_vec<S: Simd>(s: S, op: BinaryOp, a: S::F, b: S::F, g: S::F) -> (S::F, S::F) {
    let zero = s.zero();
    match op {
        BinaryOp::Mul => (g * b, a * g),
        BinaryOp::Div => (g / b, g * (((-a) / b) / b)),
        // d(a^b)/da = b a^(b-1), with the power per lane as the pow kernel takes it (the
        // scalar reference keeps integer powers exact).
        BinaryOp::Pow => {
            let (xa, e) = (a.to_array(), (b - s.splat(1.0)).to_array());
            let mut p = [0.0f32; LANES];
            for i in 0..LANES {
                p[i] = xa[i].powf(e[i]);
            }
            ((g * b) * s.load(&p), zero)
        }
        // Ties go to the first operand; NaN compares false, so it goes to the second.
        BinaryOp::Maximum => {
            let first = a.simd_ge(b);
            (first.select(g, zero), first.select(zero, g))
        }
        BinaryOp::Minimum => {
            let first = a.simd_le(b);
            (first.select(g, zero), first.select(zero, g))
        }
        // d(a − b)² = 2(a − b)·(da − db)
        BinaryOp::SquaredDifference => {
            let da = (g * s.splat(2.0)) * (a - b);
            (da, -da)
        }
        // floormod(a, b) = a − floor(a/b)·b
        BinaryOp::FloorMod => (g, g * -crate::simd::binary_vec(s, BinaryOp::FloorDiv, a, b)),
        // d atan2(a, b) = (b da − a db) / (a² + b²)
        BinaryOp::Atan2 => {
            let inv = g / (b * b + a * a);
            (inv * b, inv * -a)
        }
        _ => (zero, zero),
    }
}

/// `acc += src` in place when `acc` is float32, uniquely owned and of `src`'s shape (a
/// gradient sum's running total): `Ok(true)`; `Ok(false)` when it is not, leaving `acc`
/// unchanged. The same additions, in the same order, as a chain of `add` ops.
pub fn add_in_place<R>(acc: &mut Tensor<R>, src: &Tensor<R>) -> Result<bool> {
    if !eligible(&[acc, src]) {
        return Ok(false);
    }
    let level = isa::current();
    let s = src.as_slice::<f32>()?;
    let Some(total) = acc.unique_slice_mut::<f32>() else { return Ok(false) };
    for_each_chunk(total, 1, |start, out| {
        let end = start + out.len();
        crate::simd::add_into_f32(level, out, &s[start..end]);
    });
    Ok(true)
}
