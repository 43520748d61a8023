//! Scalar reference kernels: the plainest correct code for every element function and
//! kernel. The optimized paths are tested against these, and they serve as tails and
//! fallbacks.

use crate::elementwise::{BinaryOp, UnaryOp};
use crate::grad::constants;

/// References for gathers, scatters, slices and pads.
pub mod indexing;
/// References for max and average pooling and their gradients.
pub mod pool;

/// References for the convolutions.
pub mod conv;

/// One element of a unary float op, computed in f32 with TensorFlow's edge rules
/// (relu and max-like ops propagate NaN; relu(-0) = 0).
pub fn unary_f32(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Square => x * x,
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid_f32(x),
        UnaryOp::Relu => {
            if x > 0.0 || x.is_nan() {
                x
            } else {
                0.0
            }
        }
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Softplus => softplus_f32(x),
        UnaryOp::Log1p => x.ln_1p(),
        UnaryOp::Expm1 => x.exp_m1(),
        UnaryOp::Reciprocal => 1.0 / x,
        UnaryOp::Sign => {
            if x.is_nan() {
                x
            } else if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Tan => x.tan(),
        UnaryOp::Asin => x.asin(),
        UnaryOp::Acos => x.acos(),
        UnaryOp::Atan => x.atan(),
        UnaryOp::Sinh => x.sinh(),
        UnaryOp::Cosh => x.cosh(),
        UnaryOp::Asinh => x.asinh(),
        UnaryOp::Acosh => x.acosh(),
        UnaryOp::Atanh => x.atanh(),
        UnaryOp::Erf => libm::erff(x),
        UnaryOp::Erfc => libm::erfcf(x),
        UnaryOp::LogSigmoid => -softplus_f32(-x),
        UnaryOp::Softsign => x / (1.0 + x.abs()),
        UnaryOp::Elu => {
            if x < 0.0 {
                x.exp() - 1.0
            } else {
                x
            }
        }
        UnaryOp::Selu => {
            if x < 0.0 {
                SELU_SCALE_ALPHA * (x.exp() - 1.0)
            } else {
                SELU_SCALE * x
            }
        }
        UnaryOp::Relu6 => {
            if x.is_nan() {
                x
            } else if x > 0.0 {
                x.min(6.0)
            } else {
                0.0
            }
        }
        UnaryOp::Silu => x * sigmoid_f32(x),
        UnaryOp::Gelu => (0.5 * x) * (1.0 + libm::erff(x * constants::FRAC_1_SQRT_2 as f32)),
        UnaryOp::GeluTanh => {
            let inner = (x + ((x * x) * x) * constants::GELU_CUBIC as f32) * constants::SQRT_2_OVER_PI as f32;
            (0.5 * x) * (1.0 + inner.tanh())
        }
    }
}

/// TensorFlow's Selu scale, as float32.
pub const SELU_SCALE: f32 = constants::SELU_SCALE as f32;
/// TensorFlow's Selu scale × alpha, as float32.
pub const SELU_SCALE_ALPHA: f32 = constants::SELU_SCALE_ALPHA as f32;

/// Logistic function without overflow: exp is only ever taken of a non-positive number.
pub fn sigmoid_f32(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)).
pub fn softplus_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// One element of a unary int32 op (wrapping); `None` if the op has no int32 form.
pub fn unary_i32(op: UnaryOp, x: i32) -> Option<i32> {
    Some(match op {
        UnaryOp::Neg => x.wrapping_neg(),
        UnaryOp::Abs => x.wrapping_abs(),
        UnaryOp::Square => x.wrapping_mul(x),
        UnaryOp::Relu => x.max(0),
        UnaryOp::Sign => x.signum(),
        UnaryOp::Round => x,
        UnaryOp::Relu6 => x.clamp(0, 6),
        _ => return None,
    })
}

/// TensorFlow's NaN rule for maximum/minimum: NaN in either operand gives NaN.
fn nan_or(a: f32, b: f32, pick_a: bool) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if pick_a {
        a
    } else {
        b
    }
}

/// One element of a binary float op in f32. Comparisons give 1.0 or 0.0.
pub fn binary_f32(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Maximum => nan_or(a, b, a >= b),
        BinaryOp::Minimum => nan_or(a, b, a <= b),
        BinaryOp::Greater => f32::from(u8::from(a > b)),
        BinaryOp::GreaterEqual => f32::from(u8::from(a >= b)),
        BinaryOp::Less => f32::from(u8::from(a < b)),
        BinaryOp::LessEqual => f32::from(u8::from(a <= b)),
        BinaryOp::Equal => f32::from(u8::from(a == b)),
        BinaryOp::SquaredDifference => (a - b) * (a - b),
        BinaryOp::FloorDiv => (a / b).floor(),
        BinaryOp::FloorMod => floor_mod_f32(a, b),
        BinaryOp::Atan2 => a.atan2(b),
    }
}

/// TensorFlow's FloorMod for floats: C's fmod (exact, with the sign of `a`), plus `b`
/// where the remainder is nonzero and its sign differs from `b`'s.
pub fn floor_mod_f32(a: f32, b: f32) -> f32 {
    let m = a % b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) { m + b } else { m }
}

/// `a / b` rounded toward −inf (TensorFlow's FloorDiv for integers); 0 for `b = 0`, which
/// callers refuse first; `i32::MIN / −1` wraps.
pub fn floor_div_i32(a: i32, b: i32) -> i32 {
    if b == 0 {
        return 0;
    }
    let (q, r) = (a.wrapping_div(b), a.wrapping_rem(b));
    if r != 0 && ((r < 0) != (b < 0)) { q - 1 } else { q }
}

/// The remainder of [`floor_div_i32`], with the sign of `b` (TensorFlow's FloorMod); 0
/// for `b = 0`.
pub fn floor_mod_i32(a: i32, b: i32) -> i32 {
    if b == 0 {
        return 0;
    }
    let r = a.wrapping_rem(b);
    if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r }
}

/// One element of a binary int32 op: wrapping arithmetic, `/` truncating toward zero
/// (`i32::MIN / -1 = i32::MIN`). The caller has already refused zero divisors and
/// negative exponents; they give 0 here rather than a crash.
pub fn binary_i32(op: BinaryOp, a: i32, b: i32) -> i32 {
    match op {
        BinaryOp::Add => a.wrapping_add(b),
        BinaryOp::Sub => a.wrapping_sub(b),
        BinaryOp::Mul => a.wrapping_mul(b),
        BinaryOp::Div => {
            if b == 0 {
                0
            } else {
                a.wrapping_div(b)
            }
        }
        BinaryOp::Pow => u32::try_from(b).map_or(0, |e| a.wrapping_pow(e)),
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        BinaryOp::Greater => i32::from(a > b),
        BinaryOp::GreaterEqual => i32::from(a >= b),
        BinaryOp::Less => i32::from(a < b),
        BinaryOp::LessEqual => i32::from(a <= b),
        BinaryOp::Equal => i32::from(a == b),
        BinaryOp::SquaredDifference => a.wrapping_sub(b).wrapping_mul(a.wrapping_sub(b)),
        BinaryOp::FloorDiv => floor_div_i32(a, b),
        BinaryOp::FloorMod => floor_mod_i32(a, b),
        // float only: refused before any element is computed
        BinaryOp::Atan2 => 0,
    }
}

/// `x > 0 ? x : alpha·x` (TensorFlow's LeakyRelu).
pub fn leaky_relu_f32(x: f32, alpha: f32) -> f32 {
    if x > 0.0 { x } else { x * alpha }
}

/// `maximum(minimum(x, hi), lo)` with NaN propagating (tf.clip_by_value).
pub fn clip_f32(x: f32, lo: f32, hi: f32) -> f32 {
    if x.is_nan() || lo.is_nan() || hi.is_nan() {
        return f32::NAN;
    }
    let below_hi = if x <= hi { x } else { hi };
    if below_hi >= lo { below_hi } else { lo }
}

/// One element of a [`MaskGrad`](crate::simd::MaskGrad): the gradient `g` through the
/// activation at `x`.
pub fn mask_grad_f32(rule: crate::simd::MaskGrad, x: f32, g: f32) -> f32 {
    use crate::simd::MaskGrad;
    match rule {
        MaskGrad::Relu6 => g * if x > 0.0 && x < 6.0 { 1.0 } else { 0.0 },
        MaskGrad::LeakyRelu(alpha) => {
            if x > 0.0 {
                g
            } else {
                g * alpha
            }
        }
        MaskGrad::Clip(lo, hi) => {
            if x >= lo && x <= hi {
                g
            } else {
                0.0
            }
        }
    }
}

/// Row-major `c[m×n] = op(a)[m×k] · op(b)[k×n]` for one matrix pair, accumulating in f32
/// in k order. `a` is `m×k` (or `k×m` when `transpose_a`), `b` is `k×n` (or `n×k`).
#[allow(clippy::too_many_arguments)]
pub fn matmul_f32(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    transpose_a: bool,
    transpose_b: bool,
) {
    c.fill(0.0);
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let av = if transpose_a { a[p * m + i] } else { a[i * k + p] };
            if transpose_b {
                for (j, out) in row.iter_mut().enumerate() {
                    *out += av * b[j * k + p];
                }
            } else {
                let brow = &b[p * n..(p + 1) * n];
                for (out, &bv) in row.iter_mut().zip(brow) {
                    *out += av * bv;
                }
            }
        }
    }
}

/// The int32 form of [`matmul_f32`], wrapping.
#[allow(clippy::too_many_arguments)]
pub fn matmul_i32(
    a: &[i32],
    b: &[i32],
    c: &mut [i32],
    m: usize,
    k: usize,
    n: usize,
    transpose_a: bool,
    transpose_b: bool,
) {
    c.fill(0);
    for i in 0..m {
        for p in 0..k {
            let av = if transpose_a { a[p * m + i] } else { a[i * k + p] };
            for j in 0..n {
                let bv = if transpose_b { b[j * k + p] } else { b[p * n + j] };
                c[i * n + j] = c[i * n + j].wrapping_add(av.wrapping_mul(bv));
            }
        }
    }
}

/// [`reduce_f64`] for any reduction: NaN wins in max and min; an empty mean is NaN.
pub fn reduce_op_f64(op: crate::ReduceOp, src: &[f64], dims: &[usize], axes: &[usize]) -> Vec<f64> {
    use crate::ReduceOp;
    let kept: Vec<usize> = dims.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    let m: usize = kept.iter().product();
    let init = match op {
        ReduceOp::Sum | ReduceOp::Mean => 0.0,
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
        ReduceOp::Prod => 1.0,
    };
    let mut out = vec![init; m];
    for (flat, &v) in src.iter().enumerate() {
        let o = kept_offset(flat, dims, &kept);
        out[o] = match op {
            ReduceOp::Sum | ReduceOp::Mean => out[o] + v,
            ReduceOp::Prod => out[o] * v,
            _ if v.is_nan() || out[o].is_nan() => f64::NAN,
            ReduceOp::Max => out[o].max(v),
            ReduceOp::Min => out[o].min(v),
        };
    }
    if op == ReduceOp::Mean {
        let count: usize = axes.iter().map(|&a| dims[a]).product();
        out.iter_mut().for_each(|o| *o /= count as f64);
    }
    out
}

/// The offset in the row-major output of kept dimensions `kept` (reduced axes of length
/// 1) that element `flat` of an input of shape `dims` reduces into.
fn kept_offset(mut flat: usize, dims: &[usize], kept: &[usize]) -> usize {
    let (mut o, mut stride) = (0, 1);
    for d in (0..dims.len()).rev() {
        let i = flat % dims[d];
        flat /= dims[d];
        if kept[d] != 1 || dims[d] == 1 {
            o += i * stride;
        }
        stride *= kept[d];
    }
    o
}

/// TensorFlow's CPU argmax (`max`) or argmin of `src` (row-major, shape `dims`) along
/// `axis`: per output, start at index 0 holding `start` (the dtype's lowest finite value
/// for argmax, highest for argmin) and move to each later element that is strictly better.
pub fn arg_reduce<T: PartialOrd + Copy>(max: bool, src: &[T], dims: &[usize], axis: usize, start: T) -> Vec<i32> {
    let outer: usize = dims[..axis].iter().product();
    let n = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for j in 0..inner {
            let (mut best, mut at) = (start, 0);
            for k in 0..n {
                let v = src[(o * n + k) * inner + j];
                if (max && v > best) || (!max && v < best) {
                    (best, at) = (v, k as i32);
                }
            }
            out.push(at);
        }
    }
    out
}

/// The cumulative sum (or, `prod`, product) of `src` (row-major, shape `dims`) along
/// `axis`, element by element in order (`reverse`: from the end); `exclusive` gives each
/// position the total of the elements before it. `step` combines (wrapping for int32).
pub fn scan<T: Copy>(
    src: &[T],
    dims: &[usize],
    axis: usize,
    exclusive: bool,
    reverse: bool,
    identity: T,
    step: impl Fn(T, T) -> T,
) -> Vec<T> {
    let outer: usize = dims[..axis].iter().product();
    let n = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = vec![identity; src.len()];
    for o in 0..outer {
        for j in 0..inner {
            let mut acc = identity;
            for i in 0..n {
                let k = if reverse { n - 1 - i } else { i };
                let at = (o * n + k) * inner + j;
                let before = acc;
                acc = step(acc, src[at]);
                out[at] = if exclusive { before } else { acc };
            }
        }
    }
    out
}

/// Reduction of `src` (row-major, shape `dims`) over `axes` in f64, output in row-major
/// order of the kept axes: the plainest loop, for testing the SIMD reductions.
pub fn reduce_f64(sum_or_max: bool, src: &[f64], dims: &[usize], axes: &[usize]) -> Vec<f64> {
    let kept: Vec<usize> = dims.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    let m: usize = kept.iter().product();
    let mut out = vec![if sum_or_max { 0.0 } else { f64::NEG_INFINITY }; m];
    let mut index = vec![0usize; dims.len()];
    for &v in src {
        let mut o = 0;
        for (d, &i) in index.iter().enumerate() {
            o = o * kept[d] + if axes.contains(&d) { 0 } else { i };
        }
        out[o] = if sum_or_max {
            out[o] + v
        } else if v.is_nan() || out[o].is_nan() {
            f64::NAN
        } else {
            out[o].max(v)
        };
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

// ---- Masks: comparisons, logical ops, classification, any / all ----

/// A comparison of two values (any dtype, exactly as f64): IEEE ordering, NaN unordered.
pub fn compare(op: crate::mask::CompareOp, a: f64, b: f64) -> bool {
    use crate::mask::CompareOp::*;
    use std::cmp::Ordering::{Equal as Eq, Greater as Gt, Less as Lt};
    let order = a.partial_cmp(&b);
    match op {
        Equal => order == Some(Eq),
        NotEqual => order != Some(Eq),
        Less => order == Some(Lt),
        LessEqual => matches!(order, Some(Lt | Eq)),
        Greater => order == Some(Gt),
        GreaterEqual => matches!(order, Some(Gt | Eq)),
    }
}

/// A logical op as its truth table.
pub fn logical(op: crate::mask::LogicalOp, a: bool, b: bool) -> bool {
    use crate::mask::LogicalOp::*;
    let (ones, both) = (u8::from(a) + u8::from(b), a && b);
    match op {
        And => both,
        Or => ones >= 1,
        Xor => ones == 1,
    }
}

/// A float class from the bits: exponent all ones is ±inf (zero mantissa) or NaN.
pub fn classify_f32(op: crate::mask::ClassifyOp, x: f32) -> bool {
    use crate::mask::ClassifyOp::*;
    let bits = x.to_bits();
    let (exponent_all_ones, mantissa) = (bits & 0x7f80_0000 == 0x7f80_0000, bits & 0x007f_ffff);
    match op {
        IsNan => exponent_all_ones && mantissa != 0,
        IsInf => exponent_all_ones && mantissa == 0,
        IsFinite => !exponent_all_ones,
    }
}

/// `any` (`all = false`) or `all` of a row-major bool array of shape `dims` over `axes`,
/// in the row-major order of the kept axes.
pub fn any_all(all: bool, src: &[bool], dims: &[usize], axes: &[usize]) -> Vec<bool> {
    let as_f64: Vec<f64> = src.iter().map(|&b| if b != all { 1.0 } else { 0.0 }).collect();
    // any: some element is true (a sum of the trues > 0); all: no element is false.
    reduce_f64(true, &as_f64, dims, axes).iter().map(|&count| (count > 0.0) != all).collect()
}
