//! Ops with bool results or bool operands: comparisons, logical ops, float classification
//! (`is_nan`, `is_finite`, `is_inf`) and the `any` / `all` reductions.
//!
//! Comparisons broadcast like the arithmetic ops (the same [`BroadcastPlan`] runs); float32
//! runs compare 16 lanes at a time and store the lane mask as bytes, float16 is widened to
//! f32 in blocks first (exact: every f16 is an f32), int32 and bool runs are plain loops
//! compiled inside each level's kernel, which the compiler vectorizes for that level.

use std::borrow::Cow;

use half::f16;
use tapeflow_dtype::{DType, Error, Result, Shape, Storage, Tensor};

use crate::elementwise::BroadcastPlan;
use crate::isa::{self, F32s, LANES, Level, Mask, Simd, kernel};
use crate::layout::{broadcast_shapes, broadcast_strides, for_each_strided};
use crate::parallel::for_each_chunk;
use crate::simd;

/// TensorFlow's comparison ops (`tf.math.equal`, ...): bool results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
}

impl CompareOp {
    /// Every comparison, in declaration order (tests run each of them).
    pub const ALL: [CompareOp; 6] = [
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Less,
        CompareOp::LessEqual,
        CompareOp::Greater,
        CompareOp::GreaterEqual,
    ];

    /// The op's TensorFlow name.
    pub const fn name(self) -> &'static str {
        match self {
            CompareOp::Equal => "equal",
            CompareOp::NotEqual => "not_equal",
            CompareOp::Less => "less",
            CompareOp::LessEqual => "less_equal",
            CompareOp::Greater => "greater",
            CompareOp::GreaterEqual => "greater_equal",
        }
    }

    /// The comparison of two values: IEEE for floats (NaN is unequal to everything, and
    /// only `not_equal` is true for it; -0 equals +0).
    pub fn apply<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CompareOp::Equal => a == b,
            CompareOp::NotEqual => a != b,
            CompareOp::Less => a < b,
            CompareOp::LessEqual => a <= b,
            CompareOp::Greater => a > b,
            CompareOp::GreaterEqual => a >= b,
        }
    }

    /// Whether the op is defined on bool operands (TensorFlow orders no bools).
    pub const fn takes_bool(self) -> bool {
        matches!(self, CompareOp::Equal | CompareOp::NotEqual)
    }
}

/// TensorFlow's binary logical ops, on bool operands only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum LogicalOp {
    And,
    Or,
    Xor,
}

impl LogicalOp {
    /// Every logical op.
    pub const ALL: [LogicalOp; 3] = [LogicalOp::And, LogicalOp::Or, LogicalOp::Xor];

    /// The op's TensorFlow name.
    pub const fn name(self) -> &'static str {
        match self {
            LogicalOp::And => "logical_and",
            LogicalOp::Or => "logical_or",
            LogicalOp::Xor => "logical_xor",
        }
    }

    /// The op on two truth values.
    pub fn apply(self, a: bool, b: bool) -> bool {
        match self {
            LogicalOp::And => a & b,
            LogicalOp::Or => a | b,
            LogicalOp::Xor => a ^ b,
        }
    }
}

/// Float classification: `tf.math.is_nan`, `is_finite`, `is_inf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ClassifyOp {
    IsNan,
    IsFinite,
    IsInf,
}

impl ClassifyOp {
    /// Every classification.
    pub const ALL: [ClassifyOp; 3] = [ClassifyOp::IsNan, ClassifyOp::IsFinite, ClassifyOp::IsInf];

    /// The op's TensorFlow name.
    pub const fn name(self) -> &'static str {
        match self {
            ClassifyOp::IsNan => "is_nan",
            ClassifyOp::IsFinite => "is_finite",
            ClassifyOp::IsInf => "is_inf",
        }
    }

    /// The class test of one value.
    pub fn apply(self, x: f32) -> bool {
        match self {
            ClassifyOp::IsNan => x.is_nan(),
            ClassifyOp::IsFinite => x.is_finite(),
            ClassifyOp::IsInf => x.is_infinite(),
        }
    }
}

/// One operand of a run: elements, one per output, or one value for all of them.
#[derive(Debug, Clone, Copy)]
pub enum Side<'a, T> {
    /// Elements, one per output.
    Run(&'a [T]),
    /// One value for every output.
    Splat(T),
}

impl<T: Copy> Side<'_, T> {
    /// Element `i`.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> T {
        match self {
            Side::Run(v) => v[i],
            Side::Splat(v) => *v,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------

kernel! {
    /// `dst[i] = op(a[i], b[i])` on f32, 16 lanes at a time.
    pub fn compare_f32<'a>(op: CompareOp, a: Side<'a, f32>, b: Side<'a, f32>, dst: &'a mut [u8]) => compare_f32_body;
}

#[inline(always)]
fn compare_f32_body<S: Simd>(s: S, op: CompareOp, a: Side<'_, f32>, b: Side<'_, f32>, dst: &mut [u8]) {
    match op {
        CompareOp::Equal => compare_f32_runs::<S, 0>(s, a, b, dst),
        CompareOp::NotEqual => compare_f32_runs::<S, 1>(s, a, b, dst),
        CompareOp::Less => compare_f32_runs::<S, 2>(s, a, b, dst),
        CompareOp::LessEqual => compare_f32_runs::<S, 3>(s, a, b, dst),
        CompareOp::Greater => compare_f32_runs::<S, 4>(s, a, b, dst),
        CompareOp::GreaterEqual => compare_f32_runs::<S, 5>(s, a, b, dst),
    }
}

/// The lane mask of comparison number `OP` (in [`CompareOp::ALL`]'s order).
#[inline(always)]
fn compare_vec<S: Simd, const OP: u8>(x: S::F, y: S::F) -> <S::F as F32s>::M {
    match OP {
        0 => x.simd_eq(y),
        1 => x.simd_ne(y),
        2 => x.simd_lt(y),
        3 => x.simd_le(y),
        4 => x.simd_gt(y),
        _ => x.simd_ge(y),
    }
}

/// Writes a 16-lane mask as 16 bool bytes (0 or 1): each half of the bit mask spread to
/// eight bytes by one multiplication (bit i lands in the low bit of byte i).
#[inline(always)]
fn store_mask<M: Mask>(mask: M, out: &mut [u8; LANES]) {
    const SPREAD: u64 = 0x0002_0408_1020_4081;
    const LOW_BITS: u64 = 0x0101_0101_0101_0101;
    let bits = u64::from(mask.bitmask());
    let low = (((bits & 0x7F) * SPREAD) | ((bits & 0x80) << 49)) & LOW_BITS;
    let high = ((((bits >> 8) & 0x7F) * SPREAD) | ((bits & 0x8000) << 41)) & LOW_BITS;
    out[..8].copy_from_slice(&low.to_le_bytes());
    out[8..].copy_from_slice(&high.to_le_bytes());
}

#[inline(always)]
fn compare_f32_runs<S: Simd, const OP: u8>(s: S, a: Side<'_, f32>, b: Side<'_, f32>, dst: &mut [u8]) {
    let op = CompareOp::ALL[OP as usize];
    let n = dst.len();
    let (dv, dt) = dst.as_chunks_mut::<LANES>();
    for (k, out) in dv.iter_mut().enumerate() {
        store_mask(compare_vec::<S, OP>(side_vector(s, &a, k), side_vector(s, &b, k)), out);
    }
    let start = n - dt.len();
    for (i, o) in dt.iter_mut().enumerate() {
        *o = u8::from(op.apply(a.at(start + i), b.at(start + i)));
    }
}

/// Vector `k` (lanes `16k .. 16k + 16`) of one side of a run.
#[inline(always)]
pub(crate) fn side_vector<S: Simd>(s: S, side: &Side<'_, f32>, k: usize) -> S::F {
    match side {
        Side::Run(v) => match v[k * LANES..].first_chunk::<LANES>() {
            Some(chunk) => s.load(chunk),
            None => s.zero(),
        },
        Side::Splat(v) => s.splat(*v),
    }
}

kernel! {
    /// `dst[i] = op(a[i], b[i])` on int32.
    pub fn compare_i32<'a>(op: CompareOp, a: Side<'a, i32>, b: Side<'a, i32>, dst: &'a mut [u8]) => compare_plain_body;
}

kernel! {
    /// `dst[i] = op(a[i], b[i])` on bool bytes (equal and not_equal).
    pub fn compare_bool<'a>(op: CompareOp, a: Side<'a, u8>, b: Side<'a, u8>, dst: &'a mut [u8]) => compare_plain_body;
}

/// A comparison loop the compiler vectorizes at the level it is compiled for.
#[inline(always)]
fn compare_plain_body<S: Simd, T: Copy + PartialOrd>(
    _: S,
    op: CompareOp,
    a: Side<'_, T>,
    b: Side<'_, T>,
    dst: &mut [u8],
) {
    match op {
        CompareOp::Equal => plain_loop(a, b, dst, |x, y| u8::from(x == y)),
        CompareOp::NotEqual => plain_loop(a, b, dst, |x, y| u8::from(x != y)),
        CompareOp::Less => plain_loop(a, b, dst, |x, y| u8::from(x < y)),
        CompareOp::LessEqual => plain_loop(a, b, dst, |x, y| u8::from(x <= y)),
        CompareOp::Greater => plain_loop(a, b, dst, |x, y| u8::from(x > y)),
        CompareOp::GreaterEqual => plain_loop(a, b, dst, |x, y| u8::from(x >= y)),
    }
}

/// `dst[i] = f(a[i], b[i])` in scalar code (no vector type involved: the compiler
/// vectorizes the loop itself, for the level of the kernel it is inlined into).
#[inline(always)]
fn plain_loop<T: Copy, U: Copy>(a: Side<'_, T>, b: Side<'_, T>, dst: &mut [U], f: impl Fn(T, T) -> U) {
    match (a, b) {
        (Side::Run(x), Side::Run(y)) => {
            dst.iter_mut().zip(x.iter().zip(y)).for_each(|(o, (&p, &q))| *o = f(p, q));
        }
        (Side::Run(x), Side::Splat(q)) => dst.iter_mut().zip(x).for_each(|(o, &p)| *o = f(p, q)),
        (Side::Splat(p), Side::Run(y)) => dst.iter_mut().zip(y).for_each(|(o, &q)| *o = f(p, q)),
        (Side::Splat(p), Side::Splat(q)) => dst.fill(f(p, q)),
    }
}

kernel! {
    /// `dst[i] = op(a[i], b[i])` on bool bytes (0 or 1).
    pub fn logical_bool<'a>(op: LogicalOp, a: Side<'a, u8>, b: Side<'a, u8>, dst: &'a mut [u8]) => logical_body;
}

#[inline(always)]
fn logical_body<S: Simd>(_: S, op: LogicalOp, a: Side<'_, u8>, b: Side<'_, u8>, dst: &mut [u8]) {
    match op {
        LogicalOp::And => plain_loop(a, b, dst, |x, y| x & y),
        LogicalOp::Or => plain_loop(a, b, dst, |x, y| x | y),
        LogicalOp::Xor => plain_loop(a, b, dst, |x, y| x ^ y),
    }
}

kernel! {
    /// `dst[i] = !src[i]` on bool bytes (0 or 1).
    pub fn not_bool<'a>(src: &'a [u8], dst: &'a mut [u8]) => not_body;
}

#[inline(always)]
fn not_body<S: Simd>(_: S, src: &[u8], dst: &mut [u8]) {
    dst.iter_mut().zip(src).for_each(|(o, &v)| *o = v ^ 1);
}

kernel! {
    /// `dst[i] = op(src[i])` on f32, 16 lanes at a time.
    pub fn classify_f32<'a>(op: ClassifyOp, src: &'a [f32], dst: &'a mut [u8]) => classify_body;
}

#[inline(always)]
fn classify_body<S: Simd>(s: S, op: ClassifyOp, src: &[f32], dst: &mut [u8]) {
    let n = dst.len().min(src.len());
    let (xv, xt) = src[..n].as_chunks::<LANES>();
    let (dv, dt) = dst[..n].as_chunks_mut::<LANES>();
    let inf = s.splat(f32::INFINITY);
    for (x, out) in xv.iter().zip(dv) {
        let x = s.load(x);
        let mask = match op {
            ClassifyOp::IsNan => x.is_nan(),
            // |x| < inf is false for ±inf and for NaN.
            ClassifyOp::IsFinite => x.abs().simd_lt(inf),
            ClassifyOp::IsInf => x.abs().simd_eq(inf),
        };
        store_mask(mask, out);
    }
    for (o, &x) in dt.iter_mut().zip(xt) {
        *o = u8::from(op.apply(x));
    }
}

// ---------------------------------------------------------------------------------------
// Ops on tensors
// ---------------------------------------------------------------------------------------

/// Elements converted to f32 per block for float16 operands (4 KiB on the stack).
const BLOCK: usize = 1024;

/// `op(a, b)` with NumPy broadcasting, a bool tensor. Both operands share a dtype; bool
/// operands only for `equal` and `not_equal`.
pub fn compare<R>(op: CompareOp, a: &Tensor<R>, b: &Tensor<R>) -> Result<Tensor<R>> {
    if a.dtype() != b.dtype() {
        return Err(Error::dtype_mismatch(op.name(), a, b));
    }
    if a.dtype() == DType::Bool && !op.takes_bool() {
        return Err(Error::UnsupportedDType { op: op.name(), shape: a.shape().clone(), dtype: a.dtype() });
    }
    let level = isa::current();
    match a.dtype() {
        DType::F32 => broadcast_to_bool(op.name(), a, b, a.as_slice::<f32>()?, b.as_slice::<f32>()?, |p, q, out| {
            compare_f32(level, op, p, q, out)
        }),
        DType::F16 => broadcast_to_bool(op.name(), a, b, a.as_slice::<f16>()?, b.as_slice::<f16>()?, |p, q, out| {
            compare_f16(level, op, p, q, out)
        }),
        DType::I32 => broadcast_to_bool(op.name(), a, b, a.as_slice::<i32>()?, b.as_slice::<i32>()?, |p, q, out| {
            compare_i32(level, op, p, q, out)
        }),
        DType::Bool => broadcast_to_bool(op.name(), a, b, a.bool_bytes()?, b.bool_bytes()?, |p, q, out| {
            compare_bool(level, op, p, q, out)
        }),
    }
}

/// A float16 comparison: both sides widened to f32 in blocks (exactly), then compared.
fn compare_f16(level: Level, op: CompareOp, a: Side<'_, f16>, b: Side<'_, f16>, dst: &mut [u8]) {
    let (mut wa, mut wb) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    for (k, out) in dst.chunks_mut(BLOCK).enumerate() {
        let len = out.len();
        let p = widen_side(level, &a, k, len, &mut wa);
        let q = widen_side(level, &b, k, len, &mut wb);
        compare_f32(level, op, p, q, out);
    }
}

/// Block `k` (of `len` elements) of one float16 side, as f32 (in `wide` for a run).
fn widen_side<'w>(
    level: Level,
    side: &Side<'_, f16>,
    k: usize,
    len: usize,
    wide: &'w mut [f32; BLOCK],
) -> Side<'w, f32> {
    match side {
        Side::Run(v) => {
            simd::widen_f16(level, &v[k * BLOCK..][..len], &mut wide[..len]);
            Side::Run(&wide[..len])
        }
        Side::Splat(v) => Side::Splat(v.to_f32()),
    }
}

/// `op(a, b)` on bool tensors with NumPy broadcasting, a bool tensor.
pub fn logical<R>(op: LogicalOp, a: &Tensor<R>, b: &Tensor<R>) -> Result<Tensor<R>> {
    for t in [a, b] {
        if t.dtype() != DType::Bool {
            return Err(Error::UnsupportedDType { op: op.name(), shape: t.shape().clone(), dtype: t.dtype() });
        }
    }
    let level = isa::current();
    broadcast_to_bool(op.name(), a, b, a.bool_bytes()?, b.bool_bytes()?, |p, q, out| logical_bool(level, op, p, q, out))
}

/// `!x` on a bool tensor.
pub fn logical_not<R>(x: &Tensor<R>) -> Result<Tensor<R>> {
    if x.dtype() != DType::Bool {
        return Err(Error::UnsupportedDType { op: "logical_not", shape: x.shape().clone(), dtype: x.dtype() });
    }
    let (level, src) = (isa::current(), x.bool_bytes()?);
    let storage = Storage::for_overwrite_bool_bytes(src.len(), |dst| {
        for_each_chunk(dst, 1, |start, out| not_bool(level, &src[start..start + out.len()], out))
    });
    Tensor::from_storage(storage, x.shape().clone())
}

/// `is_nan`, `is_finite` or `is_inf` of a float tensor, a bool tensor of its shape.
pub fn classify<R>(op: ClassifyOp, x: &Tensor<R>) -> Result<Tensor<R>> {
    let level = isa::current();
    let values: Cow<'_, [f32]> = match x.dtype() {
        DType::F32 => Cow::Borrowed(x.as_slice::<f32>()?),
        // Widening keeps NaN, ±inf and every finite value.
        DType::F16 => {
            let h = x.as_slice::<f16>()?;
            let mut wide = vec![0.0f32; h.len()];
            simd::widen_f16(level, h, &mut wide);
            Cow::Owned(wide)
        }
        _ => return Err(Error::UnsupportedDType { op: op.name(), shape: x.shape().clone(), dtype: x.dtype() }),
    };
    let storage = Storage::for_overwrite_bool_bytes(values.len(), |dst| {
        for_each_chunk(dst, 1, |start, out| classify_f32(level, op, &values[start..start + out.len()], out))
    });
    Tensor::from_storage(storage, x.shape().clone())
}

/// The output of broadcasting `a` and `b`, walked in runs over which each operand is
/// contiguous or one repeated element; `run` fills each run.
fn broadcast_to_bool<R, T: Copy + Send + Sync>(
    op: &'static str,
    a: &Tensor<R>,
    b: &Tensor<R>,
    x: &[T],
    y: &[T],
    run: impl Fn(Side<'_, T>, Side<'_, T>, &mut [u8]) + Sync + Send,
) -> Result<Tensor<R>> {
    let (out, plan) = match BroadcastPlan::trivial(a, b) {
        Some(found) => found,
        None => {
            let out = broadcast_shapes(op, a, b)?;
            let plan = BroadcastPlan::new(a.dims(), b.dims(), out.dims());
            (out, plan)
        }
    };
    crate::layout::checked_output_len(op, a, &out)?;
    let storage = Storage::for_overwrite_bool_bytes(out.num_elements(), |dst| {
        for_each_chunk(dst, 1, |start, chunk| {
            plan.for_each_run(start, chunk, |a_run, b_run, out| {
                let p = a_run.map_or_else(|i| Side::Splat(x[i]), |r| Side::Run(&x[r]));
                let q = b_run.map_or_else(|i| Side::Splat(y[i]), |r| Side::Run(&y[r]));
                run(p, q, out);
            })
        })
    });
    Tensor::from_storage(storage, out)
}

/// `tf.reduce_any` (`all = false`) or `tf.reduce_all` over `axes` (already resolved, see
/// [`resolve_axes`](crate::resolve_axes)) of a bool tensor; with `keepdims` the reduced
/// axes stay as length 1. An empty reduction is false for `any`, true for `all`.
pub fn any_all<R>(all: bool, x: &Tensor<R>, axes: &[usize], keepdims: bool) -> Result<Tensor<R>> {
    let op = if all { "all" } else { "any" };
    if x.dtype() != DType::Bool {
        return Err(Error::UnsupportedDType { op, shape: x.shape().clone(), dtype: x.dtype() });
    }
    if let Some(&axis) = axes.iter().find(|&&a| a >= x.rank()) {
        return Err(Error::InvalidAxis { op, axis: axis as isize, shape: x.shape().clone(), dtype: x.dtype() });
    }
    let kept: Vec<usize> = x.dims().iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    let out_shape = if keepdims {
        Shape::from(kept.clone())
    } else {
        Shape::from(x.dims().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect::<Vec<_>>())
    };
    let m = crate::layout::checked_output_len(op, x, &out_shape)?;
    let src = x.as_slice::<bool>()?;
    let to_out = broadcast_strides(&kept, x.dims());
    let contiguous = x.shape().strides();
    let storage = Storage::for_overwrite::<bool>(m, |dst| {
        dst.fill(all);
        if !src.is_empty() {
            for_each_strided(x.dims(), [&contiguous[..], &to_out[..]], |_, [i, o]| {
                dst[o] = if all { dst[o] & src[i] } else { dst[o] | src[i] };
            });
        }
    });
    Tensor::from_storage(storage, out_shape)
}

#[cfg(test)]
mod tests;
