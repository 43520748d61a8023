//! Elementwise ops: unary, broadcasting binary, and `select`.

use std::borrow::Cow;

use half::f16;
use tapeflow_dtype::{DType, Element, Error, Result, Shape, Storage, Tensor};

use crate::isa::{self, F32s, LANES, Level, Mask, Simd, kernel};
use crate::layout::{broadcast_dims, broadcast_shapes, broadcast_strides, for_each_strided};
use crate::mask::Side;
use crate::parallel::{CHUNK, for_each_chunk};
use crate::reference;
use crate::simd::{self, IntOperand, Operand};

mod activation;
mod plan;
pub use activation::{MaskedGrad, clip_by_value, leaky_relu, mask_grad};
pub(crate) use plan::BroadcastPlan;

/// The unary ops of the catalog. `Gelu` is tf.nn.gelu's exact (erf) form, `GeluTanh` its
/// tanh approximation (`approximate=True`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Square,
    Tanh,
    Sigmoid,
    Relu,
    Sin,
    Cos,
    Softplus,
    Log1p,
    Expm1,
    Reciprocal,
    Sign,
    Floor,
    Ceil,
    Round,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Erf,
    Erfc,
    LogSigmoid,
    Softsign,
    Elu,
    Selu,
    Relu6,
    Silu,
    Gelu,
    GeluTanh,
}

impl UnaryOp {
    /// Every unary op, in declaration order (tests run each of them).
    pub const ALL: [UnaryOp; 39] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Square,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Softplus,
        UnaryOp::Log1p,
        UnaryOp::Expm1,
        UnaryOp::Reciprocal,
        UnaryOp::Sign,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Tan,
        UnaryOp::Asin,
        UnaryOp::Acos,
        UnaryOp::Atan,
        UnaryOp::Sinh,
        UnaryOp::Cosh,
        UnaryOp::Asinh,
        UnaryOp::Acosh,
        UnaryOp::Atanh,
        UnaryOp::Erf,
        UnaryOp::Erfc,
        UnaryOp::LogSigmoid,
        UnaryOp::Softsign,
        UnaryOp::Elu,
        UnaryOp::Selu,
        UnaryOp::Relu6,
        UnaryOp::Silu,
        UnaryOp::Gelu,
        UnaryOp::GeluTanh,
    ];

    /// Relative cost per element, an add being 1 (decides when splitting pays).
    pub const fn cost(self) -> usize {
        match self {
            UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Square
            | UnaryOp::Relu
            | UnaryOp::Sign
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::Relu6 => 1,
            UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Reciprocal | UnaryOp::Softsign => 2,
            _ => 5,
        }
    }

    /// The op's TensorFlow name.
    pub const fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Square => "square",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Reciprocal => "reciprocal",
            UnaryOp::Sign => "sign",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
            UnaryOp::Tan => "tan",
            UnaryOp::Asin => "asin",
            UnaryOp::Acos => "acos",
            UnaryOp::Atan => "atan",
            UnaryOp::Sinh => "sinh",
            UnaryOp::Cosh => "cosh",
            UnaryOp::Asinh => "asinh",
            UnaryOp::Acosh => "acosh",
            UnaryOp::Atanh => "atanh",
            UnaryOp::Erf => "erf",
            UnaryOp::Erfc => "erfc",
            UnaryOp::LogSigmoid => "log_sigmoid",
            UnaryOp::Softsign => "softsign",
            UnaryOp::Elu => "elu",
            UnaryOp::Selu => "selu",
            UnaryOp::Relu6 => "relu6",
            UnaryOp::Silu => "silu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::GeluTanh => "gelu",
        }
    }
}

/// The broadcasting binary ops of the catalog, plus comparisons (1 or 0 in the operands'
/// dtype), which gradients use as masks. `FloorDiv` and `FloorMod` round the quotient
/// toward −inf (TensorFlow's FloorDiv and FloorMod, int32 too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    Equal,
    SquaredDifference,
    FloorDiv,
    FloorMod,
    Atan2,
}

impl BinaryOp {
    /// Every binary op, in declaration order (tests run each of them).
    pub const ALL: [BinaryOp; 16] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Greater,
        BinaryOp::GreaterEqual,
        BinaryOp::Less,
        BinaryOp::LessEqual,
        BinaryOp::Equal,
        BinaryOp::SquaredDifference,
        BinaryOp::FloorDiv,
        BinaryOp::FloorMod,
        BinaryOp::Atan2,
    ];

    /// Relative cost per element, an add being 1 (pow runs per element: 20).
    pub const fn cost(self) -> usize {
        match self {
            BinaryOp::Pow => 20,
            BinaryOp::Atan2 | BinaryOp::FloorMod => 8,
            BinaryOp::Div | BinaryOp::FloorDiv => 2,
            _ => 1,
        }
    }

    /// The op's TensorFlow name.
    pub const fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Greater => "greater",
            BinaryOp::GreaterEqual => "greater_equal",
            BinaryOp::Less => "less",
            BinaryOp::LessEqual => "less_equal",
            BinaryOp::Equal => "equal",
            BinaryOp::SquaredDifference => "squared_difference",
            BinaryOp::FloorDiv => "floordiv",
            BinaryOp::FloorMod => "floormod",
            BinaryOp::Atan2 => "atan2",
        }
    }
}

/// A float tensor's elements as f32: borrowed for float32, converted in one slice pass
/// (F16C) for float16. `None` for int32 and bool.
pub(crate) fn float_view<R>(x: &Tensor<R>) -> Option<Cow<'_, [f32]>> {
    match x.dtype() {
        DType::F32 => x.as_slice::<f32>().ok().map(Cow::Borrowed),
        DType::F16 => x.as_slice::<f16>().ok().map(|h| {
            let mut out = vec![0.0f32; h.len()];
            simd::widen_f16(isa::current(), h, &mut out);
            Cow::Owned(out)
        }),
        DType::I32 | DType::Bool => None,
    }
}

/// Storage of `n` float elements of `dtype`, computed in f32 by `fill` and rounded once
/// to float16 when `dtype` is float16.
pub(crate) fn float_storage(dtype: DType, n: usize, fill: impl FnOnce(&mut [f32])) -> Storage {
    match dtype {
        DType::F16 => {
            let mut wide = vec![0.0f32; n];
            fill(&mut wide);
            Storage::for_overwrite::<f16>(n, |out| simd::narrow_f16(isa::current(), &wide, out))
        }
        _ => Storage::for_overwrite::<f32>(n, fill),
    }
}

/// `op(x)` elementwise. int32 supports neg, abs, square, relu, sign, round (the identity)
/// and relu6.
pub fn unary<R>(op: UnaryOp, x: &Tensor<R>) -> Result<Tensor<R>> {
    let n = x.num_elements();
    let storage = match x.dtype() {
        DType::F32 => unary_float(isa::current(), op, x.as_slice::<f32>()?),
        DType::F16 => unary_float(isa::current(), op, x.as_slice::<f16>()?),
        DType::I32 => {
            let src = x.as_slice::<i32>()?;
            if reference::unary_i32(op, 0).is_none() {
                return Err(Error::UnsupportedDType { op: op.name(), shape: x.shape().clone(), dtype: x.dtype() });
            }
            Storage::for_overwrite::<i32>(n, |dst| {
                for_each_chunk(dst, 1, |start, out| {
                    let src = &src[start..start + out.len()];
                    out.iter_mut().zip(src).for_each(|(o, &v)| *o = reference::unary_i32(op, v).unwrap_or(0))
                })
            })
        }
        DType::Bool => {
            return Err(Error::UnsupportedDType { op: op.name(), shape: x.shape().clone(), dtype: x.dtype() });
        }
    };
    Tensor::from_storage(storage, x.shape().clone())
}

/// Elements converted to f32 per block when the tensor is float16 (4 KiB on the stack).
const BLOCK: usize = 1024;

/// A float element type as the SIMD kernels see it: f32 directly, f16 converted in blocks
/// with the dispatched slice conversions (F16C), never element by element.
pub(crate) trait FloatIo: Element {
    /// The slice as f32, when it already is.
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    /// The slice as mutable f32, when it already is.
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
    /// Widens `src` into `dst` (same length).
    fn load(level: Level, src: &[Self], dst: &mut [f32]);
    /// Narrows `src` into `dst` (same length), rounding once.
    fn store(level: Level, src: &[f32], dst: &mut [Self]);
    /// One element as f32.
    fn to_f32(self) -> f32;
}

impl FloatIo for f32 {
    fn as_f32(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }
    fn load(_: Level, src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn store(_: Level, src: &[f32], dst: &mut [Self]) {
        dst.copy_from_slice(src);
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl FloatIo for f16 {
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
    fn load(level: Level, src: &[Self], dst: &mut [f32]) {
        simd::widen_f16(level, src, dst);
    }
    fn store(level: Level, src: &[f32], dst: &mut [Self]) {
        simd::narrow_f16(level, src, dst);
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

fn unary_float<T: FloatIo>(level: Level, op: UnaryOp, src: &[T]) -> Storage {
    Storage::for_overwrite::<T>(src.len(), |dst| {
        for_each_chunk(dst, op.cost(), |start, out| {
            let src = &src[start..start + out.len()];
            if let (Some(s), Some(o)) = (T::as_f32(src), T::as_f32_mut(out)) {
                simd::unary_f32(level, op, s, o);
                return;
            }
            let (mut wide_in, mut wide_out) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
            for (s, o) in src.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
                let len = s.len();
                T::load(level, s, &mut wide_in[..len]);
                simd::unary_f32(level, op, &wide_in[..len], &mut wide_out[..len]);
                T::store(level, &wide_out[..len], o);
            }
        })
    })
}

/// ReLU's gradient `where(x > 0, g, 0)` in one pass (TensorFlow's `ReluGrad`): `g` where
/// `x` is positive, `+0` where `x` is zero, negative or NaN. Bit for bit what
/// `select(greater(x, 0), g, 0)` gives, without the mask tensor in between. `x` and `g`
/// must have the same shape and the same float dtype.
pub fn relu_grad<R>(x: &Tensor<R>, g: &Tensor<R>) -> Result<Tensor<R>> {
    check_same_dtype("relu_grad", x, g)?;
    if x.shape() != g.shape() {
        return Err(Error::shape_mismatch("relu_grad", x, g, "the gradient must have the input's shape"));
    }
    let storage = match x.dtype() {
        DType::F32 => relu_grad_f32(isa::current(), x.as_slice()?, g.as_slice()?),
        DType::F16 => relu_grad_bits::<f16, u16>(x.as_slice()?, g.as_slice()?, 0x7c00),
        DType::I32 | DType::Bool => {
            return Err(Error::UnsupportedDType { op: "relu_grad", shape: x.shape().clone(), dtype: x.dtype() });
        }
    };
    Tensor::from_storage(storage, x.shape().clone())
}

/// [`relu_grad`] on f32, 16 lanes at a time: an ordered `x > 0` compare (false for NaN)
/// selects `g` or +0.
fn relu_grad_f32(level: Level, x: &[f32], g: &[f32]) -> Storage {
    Storage::for_overwrite::<f32>(x.len(), |out| {
        for_each_chunk(out, 1, |start, out| {
            let end = start + out.len();
            relu_grad_run(level, &x[start..end], &g[start..end], out);
        })
    })
}

kernel! {
    /// One run of [`relu_grad_f32`].
    fn relu_grad_run<'a>(x: &'a [f32], g: &'a [f32], out: &'a mut [f32]) => relu_grad_body;
}

#[inline(always)]
fn relu_grad_body<S: Simd>(s: S, x: &[f32], g: &[f32], out: &mut [f32]) {
    let n = out.len().min(x.len()).min(g.len());
    let (xv, xt) = x[..n].as_chunks::<LANES>();
    let (gv, gt) = g[..n].as_chunks::<LANES>();
    let (ov, ot) = out[..n].as_chunks_mut::<LANES>();
    let zero = s.zero();
    for ((x, g), o) in xv.iter().zip(gv).zip(ov) {
        s.load(x).simd_gt(zero).select(s.load(g), zero).store(o);
    }
    for ((o, &x), &g) in ot.iter_mut().zip(xt).zip(gt) {
        *o = if x > 0.0 { g } else { 0.0 };
    }
}

/// The bit-level rule of [`relu_grad`] for IEEE floats whose positive infinity is `inf`:
/// `x > 0` exactly when the bits, read as an unsigned integer, lie in `1 ..= inf` (sign
/// clear, not zero, not NaN). Integer compares vectorize into masked moves.
fn relu_grad_bits<T, B>(x: &[T], g: &[T], inf: B) -> Storage
where
    T: tapeflow_dtype::Element + bytemuck::Pod,
    B: bytemuck::Pod + Default + PartialOrd + From<u8> + Send + Sync,
{
    let (x, g): (&[B], &[B]) = (bytemuck::cast_slice(x), bytemuck::cast_slice(g));
    let one = B::from(1u8);
    Storage::for_overwrite::<T>(x.len(), |out| {
        for_each_chunk(bytemuck::cast_slice_mut::<T, B>(out), 1, |start, out| {
            let (x, g) = (&x[start..start + out.len()], &g[start..start + out.len()]);
            for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
                *o = if x >= one && x <= inf { g } else { B::default() };
            }
        })
    })
}

fn check_same_dtype<R>(op: &'static str, a: &Tensor<R>, b: &Tensor<R>) -> Result<()> {
    if a.dtype() == b.dtype() { Ok(()) } else { Err(Error::dtype_mismatch(op, a, b)) }
}

/// `op(a, b)` with NumPy broadcasting; both operands must share a dtype. int32 `div`,
/// `floordiv` and `floormod` by zero and `pow` with a negative exponent are an `Err`
/// (TensorFlow refuses them), as are `atan2` of int32 and a bool operand (arithmetic on
/// truth values; bool comparisons are `compare`'s).
///
/// The broadcast operand is never materialised: the output is walked in runs along which
/// each operand is either contiguous or a single repeated element (tensor–scalar, row and
/// column broadcasts are one run per row), and each run goes to a SIMD kernel.
pub fn binary<R>(op: BinaryOp, a: &Tensor<R>, b: &Tensor<R>) -> Result<Tensor<R>> {
    if let Some(out) = scalar_binary(op, a, b) {
        return out;
    }
    check_same_dtype(op.name(), a, b)?;
    let (out, plan) = match BroadcastPlan::trivial(a, b) {
        Some(found) => found,
        None => {
            let out = broadcast_shapes(op.name(), a, b)?;
            let plan = BroadcastPlan::new(a.dims(), b.dims(), out.dims());
            (out, plan)
        }
    };
    let n = out.num_elements();
    let level = isa::current();
    let storage = match a.dtype() {
        DType::F32 => binary_float(level, op, &plan, a.as_slice::<f32>()?, b.as_slice::<f32>()?, n),
        DType::F16 => binary_float(level, op, &plan, a.as_slice::<f16>()?, b.as_slice::<f16>()?, n),
        DType::I32 => {
            let (x, y) = (a.as_slice::<i32>()?, b.as_slice::<i32>()?);
            if n > 0 || op == BinaryOp::Atan2 {
                check_int_operands(op, a, b, y)?;
            }
            Storage::for_overwrite::<i32>(n, |dst| {
                for_each_chunk(dst, op.cost(), |start, chunk| {
                    plan.for_each_run(start, chunk, |a_run, b_run, out| {
                        let p = a_run.map_or_else(|o| IntOperand::Splat(x[o]), |r| IntOperand::Run(&x[r]));
                        let q = b_run.map_or_else(|o| IntOperand::Splat(y[o]), |r| IntOperand::Run(&y[r]));
                        simd::binary_i32(level, op, p, q, out);
                    })
                })
            })
        }
        DType::Bool => {
            return Err(Error::UnsupportedDType { op: op.name(), shape: a.shape().clone(), dtype: a.dtype() });
        }
    };
    Tensor::from_storage(storage, out)
}

/// `op(a, b)` of two one-element float32 operands (scalar code), where the broadcast plan
/// and a kernel entry cost more than the arithmetic: the vector kernel's lane operation
/// ([`simd::binary_vec`](crate::simd)) on one element, so the same bits. `None` otherwise.
fn scalar_binary<R>(op: BinaryOp, a: &Tensor<R>, b: &Tensor<R>) -> Option<Result<Tensor<R>>> {
    if a.dtype() != DType::F32 || b.dtype() != DType::F32 || a.num_elements() != 1 || b.num_elements() != 1 {
        return None;
    }
    let (x, y) = (a.as_slice::<f32>().ok()?[0], b.as_slice::<f32>().ok()?[0]);
    let flag = |c: bool| if c { 1.0 } else { 0.0 };
    let v = match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Pow => x.powf(y),
        BinaryOp::Maximum if x.is_nan() || y.is_nan() => f32::NAN,
        BinaryOp::Maximum => {
            if x >= y {
                x
            } else {
                y
            }
        }
        BinaryOp::Minimum if x.is_nan() || y.is_nan() => f32::NAN,
        BinaryOp::Minimum => {
            if x <= y {
                x
            } else {
                y
            }
        }
        BinaryOp::Greater => flag(x > y),
        BinaryOp::GreaterEqual => flag(x >= y),
        BinaryOp::Less => flag(x < y),
        BinaryOp::LessEqual => flag(x <= y),
        BinaryOp::Equal => flag(x == y),
        // Exact operations: the scalar code gives the vector lanes' bits.
        BinaryOp::SquaredDifference => (x - y) * (x - y),
        BinaryOp::FloorDiv => (x / y).floor(),
        BinaryOp::FloorMod => reference::floor_mod_f32(x, y),
        BinaryOp::Atan2 => return None,
    };
    // Shapes of one element broadcast to the one of higher rank (all dimensions are 1).
    let shape = if a.rank() >= b.rank() { a.shape() } else { b.shape() };
    Some(Tensor::from_storage(Storage::for_overwrite::<f32>(1, |out| out[0] = v), shape.clone()))
}

fn binary_float<T: FloatIo>(level: Level, op: BinaryOp, plan: &BroadcastPlan, x: &[T], y: &[T], n: usize) -> Storage {
    // One run of f32 within one chunk (scalars, small same-shape or tensor-scalar ops): the
    // kernel directly, without the chunk and run walks, which cost more than the arithmetic
    // on scalar code. Same kernel, so the same bits as the general path.
    if plan.outer_dims.is_empty()
        && n <= CHUNK
        && let (Some(x), Some(y)) = (T::as_f32(x), T::as_f32(y))
    {
        fn operand(v: &[f32], contiguous: bool) -> Operand<'_> {
            if contiguous { Operand::Run(v) } else { Operand::Splat(v.first().copied().unwrap_or(0.0)) }
        }
        let (p, q) = (operand(x, plan.contiguous[0]), operand(y, plan.contiguous[1]));
        return Storage::for_overwrite::<f32>(n, |dst| simd::binary_f32(level, op, p, q, dst));
    }
    Storage::for_overwrite::<T>(n, |dst| {
        for_each_chunk(dst, op.cost(), |start, chunk| {
            plan.for_each_run(start, chunk, |a_run, b_run, out| {
                if let Some(o) = T::as_f32_mut(out) {
                    let p = a_run.map_or_else(
                        |i| Operand::Splat(x[i].to_f32()),
                        |r| Operand::Run(T::as_f32(&x[r]).unwrap_or(&[])),
                    );
                    let q = b_run.map_or_else(
                        |i| Operand::Splat(y[i].to_f32()),
                        |r| Operand::Run(T::as_f32(&y[r]).unwrap_or(&[])),
                    );
                    simd::binary_f32(level, op, p, q, o);
                    return;
                }
                let (mut wa, mut wb, mut wo) = ([0.0f32; BLOCK], [0.0f32; BLOCK], [0.0f32; BLOCK]);
                for (k, o) in out.chunks_mut(BLOCK).enumerate() {
                    let len = o.len();
                    let p = match &a_run {
                        Ok(r) => {
                            T::load(level, &x[r.start + k * BLOCK..][..len], &mut wa[..len]);
                            Operand::Run(&wa[..len])
                        }
                        Err(i) => Operand::Splat(x[*i].to_f32()),
                    };
                    let q = match &b_run {
                        Ok(r) => {
                            T::load(level, &y[r.start + k * BLOCK..][..len], &mut wb[..len]);
                            Operand::Run(&wb[..len])
                        }
                        Err(i) => Operand::Splat(y[*i].to_f32()),
                    };
                    simd::binary_f32(level, op, p, q, &mut wo[..len]);
                    T::store(level, &wo[..len], o);
                }
            })
        })
    })
}

fn check_int_operands<R>(op: BinaryOp, a: &Tensor<R>, b: &Tensor<R>, divisor: &[i32]) -> Result<()> {
    match op {
        BinaryOp::Atan2 => Err(Error::UnsupportedDType { op: op.name(), shape: a.shape().clone(), dtype: a.dtype() }),
        BinaryOp::Div | BinaryOp::FloorDiv | BinaryOp::FloorMod if divisor.contains(&0) => Err(Error::DivisionByZero {
            op: op.name(),
            lhs: a.shape().clone(),
            rhs: b.shape().clone(),
            dtype: a.dtype(),
        }),
        BinaryOp::Pow if divisor.iter().any(|&e| e < 0) => Err(Error::InvalidValue {
            op: op.name(),
            shape: b.shape().clone(),
            dtype: b.dtype(),
            reason: "integers to negative integer powers are not allowed".into(),
        }),
        _ => Ok(()),
    }
}

/// `where(cond, a, b)`: `a` where `cond` is nonzero (NaN counts as true), else `b`; all
/// three broadcast together; `a` and `b` share a dtype, `cond` may be any dtype.
pub fn select<R>(cond: &Tensor<R>, a: &Tensor<R>, b: &Tensor<R>) -> Result<Tensor<R>> {
    check_same_dtype("select", a, b)?;
    let ab = broadcast_shapes("select", a, b)?;
    let out = broadcast_dims(cond.dims(), ab.dims()).ok_or_else(|| Error::ShapeMismatch {
        op: "select",
        lhs: cond.shape().clone(),
        lhs_dtype: cond.dtype(),
        rhs: ab.clone(),
        rhs_dtype: a.dtype(),
        reason: "the condition does not broadcast with the values".into(),
    })?;
    // The condition as bytes, 0 or 1 (a bool condition read in place, without the
    // validating pass of a `&[bool]` view).
    let truth: Cow<'_, [u8]> = match cond.dtype() {
        // NaN != 0, so NaN counts as true.
        DType::F32 => Cow::Owned(cond.as_slice::<f32>()?.iter().map(|&c| u8::from(c != 0.0)).collect()),
        DType::F16 => Cow::Owned(cond.as_slice::<f16>()?.iter().map(|&c| u8::from(c != f16::ZERO)).collect()),
        DType::I32 => Cow::Owned(cond.as_slice::<i32>()?.iter().map(|&c| u8::from(c != 0)).collect()),
        DType::Bool => Cow::Borrowed(cond.bool_bytes()?),
    };
    // Every operand either has the output's shape or is one element (relu's and the
    // comparison ops' gradients): a flat loop, without the strided walk.
    let whole = |t: &Tensor<R>| t.shape() == &out;
    let single = |t: &Tensor<R>| t.num_elements() == 1 && t.rank() <= out.rank();
    if [cond, a, b].iter().all(|t| whole(t) || single(t)) {
        let n = out.num_elements();
        fn flat<T: tapeflow_dtype::Element>(n: usize, truth: &[u8], x: &[T], y: &[T]) -> Storage {
            let pick = |k: usize, v: &[T]| if v.len() == 1 { v[0] } else { v[k] };
            Storage::for_overwrite::<T>(n, |dst| match (truth.len() == 1, x.len() == 1, y.len() == 1) {
                (false, false, false) => dst
                    .iter_mut()
                    .zip(truth)
                    .zip(x.iter().zip(y))
                    .for_each(|((d, &t), (&p, &q))| *d = if t != 0 { p } else { q }),
                (false, false, true) => {
                    dst.iter_mut().zip(truth).zip(x).for_each(|((d, &t), &p)| *d = if t != 0 { p } else { y[0] })
                }
                (false, true, false) => {
                    dst.iter_mut().zip(truth).zip(y).for_each(|((d, &t), &q)| *d = if t != 0 { x[0] } else { q })
                }
                _ => dst.iter_mut().enumerate().for_each(|(k, d)| {
                    *d = if truth[if truth.len() == 1 { 0 } else { k }] != 0 { pick(k, x) } else { pick(k, y) }
                }),
            })
        }
        let storage = match a.dtype() {
            DType::F32 => select_flat_f32(&truth, a.as_slice::<f32>()?, b.as_slice::<f32>()?, n),
            DType::F16 => flat(n, &truth, a.as_slice::<f16>()?, b.as_slice::<f16>()?),
            DType::I32 => flat(n, &truth, a.as_slice::<i32>()?, b.as_slice::<i32>()?),
            DType::Bool => flat(n, &truth, a.as_slice::<bool>()?, b.as_slice::<bool>()?),
        };
        return Tensor::from_storage(storage, out);
    }
    let strides = [
        broadcast_strides(cond.dims(), out.dims()),
        broadcast_strides(a.dims(), out.dims()),
        broadcast_strides(b.dims(), out.dims()),
    ];
    let strides = [&strides[0][..], &strides[1][..], &strides[2][..]];
    fn run<T: tapeflow_dtype::Element>(out: &Shape, strides: [&[usize]; 3], truth: &[u8], x: &[T], y: &[T]) -> Storage {
        Storage::for_overwrite::<T>(out.num_elements(), |dst| {
            for_each_strided(out.dims(), strides, |o, [c, i, j]| dst[o] = if truth[c] != 0 { x[i] } else { y[j] });
        })
    }
    let storage = match a.dtype() {
        DType::F32 => run(&out, strides, &truth, a.as_slice::<f32>()?, b.as_slice::<f32>()?),
        DType::F16 => run(&out, strides, &truth, a.as_slice::<f16>()?, b.as_slice::<f16>()?),
        DType::I32 => run(&out, strides, &truth, a.as_slice::<i32>()?, b.as_slice::<i32>()?),
        DType::Bool => run(&out, strides, &truth, a.as_slice::<bool>()?, b.as_slice::<bool>()?),
    };
    Tensor::from_storage(storage, out)
}

/// The flat `select` of float32 (each operand whole or one element), split over chunks,
/// each chunk one kernel call at the current level.
fn select_flat_f32(truth: &[u8], x: &[f32], y: &[f32], n: usize) -> Storage {
    let level = isa::current();
    Storage::for_overwrite::<f32>(n, |dst| {
        for_each_chunk(dst, 1, |start, out| {
            let len = out.len();
            let (cond, x, y) = (part(truth, n, start, len), part(x, n, start, len), part(y, n, start, len));
            simd::select_f32(level, cond, x, y, out);
        })
    })
}

/// An operand's part of the chunk `start..start + len` of `n` outputs: its elements, or
/// its one element for all.
fn part<T: Copy>(v: &[T], n: usize, start: usize, len: usize) -> Side<'_, T> {
    if v.len() == 1 && n != 1 { Side::Splat(v[0]) } else { Side::Run(&v[start..start + len]) }
}

#[cfg(test)]
mod tests;
