//! Elementwise ops: unary, broadcasting binary, and `select`.

use std::borrow::Cow;

use half::f16;
use tapeflow_dtype::{DType, Element, Error, Result, Shape, Storage, Tensor};

use crate::isa::{self, F32s, LANES, Level, Mask, Simd, kernel};
use crate::layout::{broadcast_dims, broadcast_shapes, broadcast_strides, for_each_strided};
use crate::parallel::{CHUNK, for_each_chunk};
use crate::reference;
use crate::simd::{self, IntOperand, Operand};

/// The unary ops of the catalog (plus `sign`, used by gradients).
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
}

impl UnaryOp {
    /// Relative cost per element, an add being 1 (decides when splitting pays).
    pub const fn cost(self) -> usize {
        match self {
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Square | UnaryOp::Relu | UnaryOp::Sign => 1,
            UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Reciprocal => 2,
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
        }
    }
}

/// The broadcasting binary ops of the catalog, plus comparisons (1 or 0 in the operands'
/// dtype), which gradients use as masks.
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
}

impl BinaryOp {
    /// Relative cost per element, an add being 1 (pow runs per element: 20).
    pub const fn cost(self) -> usize {
        match self {
            BinaryOp::Pow => 20,
            BinaryOp::Div => 2,
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
        }
    }
}

/// A float tensor's elements as f32: borrowed for float32, converted in one slice pass
/// (F16C) for float16. `None` for int32.
pub(crate) fn float_view<R>(x: &Tensor<R>) -> Option<Cow<'_, [f32]>> {
    match x.dtype() {
        DType::F32 => x.as_slice::<f32>().ok().map(Cow::Borrowed),
        DType::F16 => x.as_slice::<f16>().ok().map(|h| {
            let mut out = vec![0.0f32; h.len()];
            simd::widen_f16(isa::current(), h, &mut out);
            Cow::Owned(out)
        }),
        DType::I32 => None,
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

/// `op(x)` elementwise. int32 supports neg, abs, square, relu and sign.
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
        DType::I32 => {
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
    T: tapeflow_dtype::Element,
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

/// `op(a, b)` with NumPy broadcasting; both operands must share a dtype. int32 `div` by
/// zero and `pow` with a negative exponent are an `Err` (TensorFlow refuses both).
///
/// The broadcast operand is never materialised: the output is walked in runs along which
/// each operand is either contiguous or a single repeated element (tensor–scalar, row and
/// column broadcasts are one run per row), and each run goes to a SIMD kernel.
pub fn binary<R>(op: BinaryOp, a: &Tensor<R>, b: &Tensor<R>) -> Result<Tensor<R>> {
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
            if n > 0 {
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
    };
    Tensor::from_storage(storage, out)
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

/// How a broadcasting binary op walks its output: the trailing dimensions along which each
/// operand is either contiguous or constant form one run of `inner` elements; the leading
/// dimensions index runs.
pub(crate) struct BroadcastPlan {
    inner: usize,
    outer_dims: Vec<usize>,
    /// Per operand: element strides over the outer dims, and whether it is contiguous
    /// along a run (else one element repeats).
    strides: [Vec<usize>; 2],
    contiguous: [bool; 2],
}

impl BroadcastPlan {
    /// The allocation-free plan of the common cases: equal shapes, or one operand a single
    /// element (a scalar) of no higher rank. `None` otherwise.
    pub(crate) fn trivial<R>(a: &Tensor<R>, b: &Tensor<R>) -> Option<(Shape, Self)> {
        let plan = |n: usize, contiguous: [bool; 2]| BroadcastPlan {
            inner: n,
            outer_dims: Vec::new(),
            strides: [Vec::new(), Vec::new()],
            contiguous,
        };
        if a.shape() == b.shape() {
            Some((a.shape().clone(), plan(a.num_elements(), [true, true])))
        } else if b.num_elements() == 1 && b.rank() <= a.rank() {
            Some((a.shape().clone(), plan(a.num_elements(), [true, false])))
        } else if a.num_elements() == 1 && a.rank() <= b.rank() {
            Some((b.shape().clone(), plan(b.num_elements(), [false, true])))
        } else {
            None
        }
    }

    pub(crate) fn new(a: &[usize], b: &[usize], out: &[usize]) -> Self {
        let rank = out.len();
        let padded = |d: &[usize]| -> Vec<usize> {
            let mut p = vec![1; rank - d.len()];
            p.extend_from_slice(d);
            p
        };
        let dims = [padded(a), padded(b)];
        // Grow the run from the last dimension while each operand keeps one kind
        // (contiguous or repeated); a dimension of length 1 fits either kind.
        let mut kinds: [Option<bool>; 2] = [None, None];
        let mut split = rank;
        while split > 0 {
            let d = split - 1;
            let fits = (0..2).all(|k| out[d] == 1 || kinds[k].is_none_or(|contig| contig == (dims[k][d] == out[d])));
            if !fits {
                break;
            }
            for k in 0..2 {
                if out[d] != 1 && kinds[k].is_none() {
                    kinds[k] = Some(dims[k][d] == out[d]);
                }
            }
            split = d;
        }
        // Saturating: an empty output (a zero dimension) is never walked.
        let inner: usize = out[split..].iter().fold(1, |a, &d| a.saturating_mul(d));
        let contiguous = [kinds[0].unwrap_or(true), kinds[1].unwrap_or(true)];
        let strides = std::array::from_fn(|k| {
            let run = if contiguous[k] { inner } else { 1 };
            let mut s = broadcast_strides(&dims[k][..split], &out[..split]).to_vec();
            s.iter_mut().for_each(|v| *v = v.saturating_mul(run));
            s
        });
        BroadcastPlan { inner, outer_dims: out[..split].to_vec(), strides, contiguous }
    }

    /// Offsets of run number `o` in each operand.
    fn run_offsets(&self, mut o: usize) -> [usize; 2] {
        let mut offsets = [0usize; 2];
        for d in (0..self.outer_dims.len()).rev() {
            let len = self.outer_dims[d];
            let idx = o % len;
            o /= len;
            offsets[0] += idx * self.strides[0][d];
            offsets[1] += idx * self.strides[1][d];
        }
        offsets
    }

    /// Calls `f(a, b, out)` for each run piece of `chunk` (output elements `start..`), where
    /// each operand is `Ok(range)` of contiguous elements or `Err(index)` of one element.
    pub(crate) fn for_each_run<T>(
        &self,
        start: usize,
        chunk: &mut [T],
        mut f: impl FnMut(
            std::result::Result<std::ops::Range<usize>, usize>,
            std::result::Result<std::ops::Range<usize>, usize>,
            &mut [T],
        ),
    ) {
        if self.inner == 0 {
            return;
        }
        let mut done = 0;
        while done < chunk.len() {
            let pos = start + done;
            let (run, within) = (pos / self.inner, pos % self.inner);
            let len = (self.inner - within).min(chunk.len() - done);
            let offsets = self.run_offsets(run);
            let piece = |k: usize| {
                if self.contiguous[k] { Ok(offsets[k] + within..offsets[k] + within + len) } else { Err(offsets[k]) }
            };
            f(piece(0), piece(1), &mut chunk[done..done + len]);
            done += len;
        }
    }
}

fn check_int_operands<R>(op: BinaryOp, a: &Tensor<R>, b: &Tensor<R>, divisor: &[i32]) -> Result<()> {
    match op {
        BinaryOp::Div if divisor.contains(&0) => Err(Error::DivisionByZero {
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
    let truth: Vec<bool> = match cond.dtype() {
        // NaN != 0, so NaN counts as true.
        DType::F32 => cond.as_slice::<f32>()?.iter().map(|&c| c != 0.0).collect(),
        DType::F16 => cond.as_slice::<f16>()?.iter().map(|&c| c != f16::ZERO).collect(),
        DType::I32 => cond.as_slice::<i32>()?.iter().map(|&c| c != 0).collect(),
    };
    // Every operand either has the output's shape or is one element (relu's and the
    // comparison ops' gradients): a flat loop, without the strided walk.
    let whole = |t: &Tensor<R>| t.shape() == &out;
    let single = |t: &Tensor<R>| t.num_elements() == 1 && t.rank() <= out.rank();
    if [cond, a, b].iter().all(|t| whole(t) || single(t)) {
        let n = out.num_elements();
        fn flat<T: tapeflow_dtype::Element>(n: usize, truth: &[bool], x: &[T], y: &[T]) -> Storage {
            let pick = |k: usize, v: &[T]| if v.len() == 1 { v[0] } else { v[k] };
            Storage::for_overwrite::<T>(n, |dst| match (truth.len() == 1, x.len() == 1, y.len() == 1) {
                (false, false, false) => dst
                    .iter_mut()
                    .zip(truth)
                    .zip(x.iter().zip(y))
                    .for_each(|((d, &t), (&p, &q))| *d = if t { p } else { q }),
                (false, false, true) => {
                    dst.iter_mut().zip(truth).zip(x).for_each(|((d, &t), &p)| *d = if t { p } else { y[0] })
                }
                (false, true, false) => {
                    dst.iter_mut().zip(truth).zip(y).for_each(|((d, &t), &q)| *d = if t { x[0] } else { q })
                }
                _ => dst.iter_mut().enumerate().for_each(|(k, d)| {
                    *d = if truth[if truth.len() == 1 { 0 } else { k }] { pick(k, x) } else { pick(k, y) }
                }),
            })
        }
        let storage = match a.dtype() {
            DType::F32 => flat(n, &truth, a.as_slice::<f32>()?, b.as_slice::<f32>()?),
            DType::F16 => flat(n, &truth, a.as_slice::<f16>()?, b.as_slice::<f16>()?),
            DType::I32 => flat(n, &truth, a.as_slice::<i32>()?, b.as_slice::<i32>()?),
        };
        return Tensor::from_storage(storage, out);
    }
    let strides = [
        broadcast_strides(cond.dims(), out.dims()),
        broadcast_strides(a.dims(), out.dims()),
        broadcast_strides(b.dims(), out.dims()),
    ];
    let strides = [&strides[0][..], &strides[1][..], &strides[2][..]];
    fn run<T: tapeflow_dtype::Element>(
        out: &Shape,
        strides: [&[usize]; 3],
        truth: &[bool],
        x: &[T],
        y: &[T],
    ) -> Storage {
        Storage::for_overwrite::<T>(out.num_elements(), |dst| {
            for_each_strided(out.dims(), strides, |o, [c, i, j]| dst[o] = if truth[c] { x[i] } else { y[j] });
        })
    }
    let storage = match a.dtype() {
        DType::F32 => run(&out, strides, &truth, a.as_slice::<f32>()?, b.as_slice::<f32>()?),
        DType::F16 => run(&out, strides, &truth, a.as_slice::<f16>()?, b.as_slice::<f16>()?),
        DType::I32 => run(&out, strides, &truth, a.as_slice::<i32>()?, b.as_slice::<i32>()?),
    };
    Tensor::from_storage(storage, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    type T = Tensor<()>;

    /// Ops large enough to split over rayon's threads give, at every level, the bits of the
    /// level's slice kernel run over the whole input on this thread: the level reaches the
    /// worker threads (the baseline of a plain build has no FMA, so a worker at another
    /// level would change the transcendentals' last bits), and chunking changes nothing.
    #[test]
    fn split_ops_give_the_kernels_bits_at_every_level() {
        let n = 3 * CHUNK + 37;
        let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 / 97.0 - 10.0).collect();
        let ys: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 1999) as f32 / 13.0 + 0.5).collect();
        let (x, y) = (T::from_slice(&xs, [n]).unwrap(), T::from_slice(&ys, [n]).unwrap());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        for level in isa::supported_levels() {
            isa::with_isa(level.isa(), || {
                for op in [UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Log, UnaryOp::Sin, UnaryOp::Sigmoid] {
                    let got = unary(op, &x).unwrap().to_vec::<f32>().unwrap();
                    let mut want = vec![0.0f32; n];
                    simd::unary_f32(level, op, &xs, &mut want);
                    assert_eq!(bits(&got), bits(&want), "{op:?} at {level:?}");
                }
                for op in [BinaryOp::Add, BinaryOp::Div, BinaryOp::Maximum] {
                    let got = binary(op, &x, &y).unwrap().to_vec::<f32>().unwrap();
                    let mut want = vec![0.0f32; n];
                    simd::binary_f32(level, op, Operand::Run(&xs), Operand::Run(&ys), &mut want);
                    assert_eq!(bits(&got), bits(&want), "{op:?} at {level:?}");
                }
                // float16: widened, computed and rounded per level, split the same way.
                let h = x.to_dtype(DType::F16);
                let got = unary(UnaryOp::Exp, &h).unwrap().to_vec::<f16>().unwrap();
                let wide: Vec<f32> = h.to_vec::<f16>().unwrap().iter().map(|v| v.to_f32()).collect();
                let mut e = vec![0.0f32; n];
                simd::unary_f32(level, UnaryOp::Exp, &wide, &mut e);
                let want: Vec<f16> = e.iter().map(|&v| f16::from_f32(v)).collect();
                assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "f16 exp at {level:?}");
            });
        }
    }

    /// relu_grad against its definition (`g` where `x > 0`, else +0) over special values,
    /// every length from 0 to 80 (vector tails) and one length on the parallel path, in
    /// both float dtypes, and bit for bit against the select/greater composition it fuses.
    #[test]
    fn relu_grad_matches_its_definition() {
        let specials =
            [0.0f32, -0.0, 1.0, -1.0, f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-45, -1e-45, 3.5];
        for len in (0..=80).chain([(1 << 18) + 17]) {
            let xv: Vec<f32> = (0..len).map(|k| specials[(k * 7 + len) % specials.len()]).collect();
            let gv: Vec<f32> = (0..len).map(|k| specials[(k * 3 + 1) % specials.len()] - 0.25).collect();
            for dtype in [DType::F32, DType::F16] {
                let x = T::from_vec(xv.clone(), [len]).unwrap().to_dtype(dtype);
                let g = T::from_vec(gv.clone(), [len]).unwrap().to_dtype(dtype);
                let got = relu_grad(&x, &g).unwrap();
                assert_eq!((got.dtype(), got.dims()), (dtype, &[len][..]));
                let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                let (xs, gs, out) = (x.to_f64_vec(), g.to_f64_vec(), got.to_f64_vec());
                let zero = T::scalar(0.0f32).to_dtype(dtype);
                let composed = select(&binary(BinaryOp::Greater, &x, &zero).unwrap(), &g, &zero).unwrap().to_f64_vec();
                for k in 0..len {
                    let want = if xs[k] > 0.0 { gs[k] } else { 0.0 };
                    assert!(same(out[k], want), "len {len} {dtype:?} [{k}]: {} vs {want}", out[k]);
                    assert!(same(out[k], composed[k]), "len {len} {dtype:?} [{k}]: {} vs {}", out[k], composed[k]);
                }
            }
        }
        let (x, g) = (T::from_vec(vec![1.0f32; 6], [2, 3]).unwrap(), T::from_vec(vec![1.0f32; 6], [3, 2]).unwrap());
        let err = relu_grad(&x, &g).unwrap_err().to_string();
        assert!(err.contains("relu_grad") && err.contains("(2, 3) float32"), "{err}");
        assert!(relu_grad(&x, &x.to_dtype(DType::F16)).is_err());
        assert!(relu_grad(&x.to_dtype(DType::I32), &x.to_dtype(DType::I32)).is_err());
    }

    /// Every mix of full-shape and one-element operands (the flat path) and of broadcast
    /// rows and columns (the strided path), in every dtype of the condition, against the
    /// element-by-element definition.
    #[test]
    fn select_matches_its_definition_on_flat_and_strided_paths() {
        let shapes: [&[usize]; 5] = [&[2, 3], &[], &[1, 3], &[2, 1], &[1]];
        let values = |shape: &[usize], base: f32| {
            let n: usize = shape.iter().product();
            T::from_vec((0..n).map(|k| base + k as f32).collect::<Vec<_>>(), shape.to_vec()).unwrap()
        };
        let conds = |shape: &[usize]| {
            let n: usize = shape.iter().product();
            let pattern: Vec<f32> = (0..n).map(|k| [0.0, 1.0, f32::NAN, -0.0, 2.0, 0.0][k % 6]).collect();
            let f = T::from_vec(pattern, shape.to_vec()).unwrap();
            [f.to_dtype(DType::F16), f.to_dtype(DType::I32), f]
        };
        for cs in shapes {
            for cond in conds(cs) {
                for xs in shapes {
                    for ys in shapes {
                        let (x, y) = (values(xs, 10.0), values(ys, 100.0));
                        let got = select(&cond, &x, &y).unwrap();
                        let full = |t: &T| crate::layout::broadcast_to(t, got.shape()).unwrap().to_f64_vec();
                        let (c, xv, yv) = (full(&cond), full(&x), full(&y));
                        for (k, g) in got.to_f64_vec().iter().enumerate() {
                            let want = if c[k] != 0.0 { xv[k] } else { yv[k] };
                            assert_eq!(*g, want, "cond {:?} {cs:?}, x {xs:?}, y {ys:?}, element {k}", cond.dtype());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn binary_broadcasts_rows_and_columns() {
        let a = T::from_vec(vec![1.0f32, 2.0, 3.0], [3, 1]).unwrap();
        let b = T::from_vec(vec![10.0f32, 20.0], [2]).unwrap();
        let c = binary(BinaryOp::Add, &a, &b).unwrap();
        assert_eq!(c.dims(), &[3, 2]);
        assert_eq!(c.to_vec::<f32>().unwrap(), vec![11.0, 21.0, 12.0, 22.0, 13.0, 23.0]);
    }

    #[test]
    fn int_division_truncates_and_refuses_zero() {
        let a = T::from_vec(vec![7i32, -7, i32::MIN], [3]).unwrap();
        let b = T::from_vec(vec![2i32, 2, -1], [3]).unwrap();
        assert_eq!(binary(BinaryOp::Div, &a, &b).unwrap().to_vec::<i32>().unwrap(), vec![3, -3, i32::MIN]);
        let z = T::from_vec(vec![1i32, 0, 1], [3]).unwrap();
        let err = binary(BinaryOp::Div, &a, &z).unwrap_err().to_string();
        assert!(err.contains("div") && err.contains("int32"), "{err}");
    }

    #[test]
    fn maximum_propagates_nan() {
        let a = T::from_vec(vec![f32::NAN, 1.0], [2]).unwrap();
        let b = T::from_vec(vec![0.0f32, f32::NAN], [2]).unwrap();
        let m = binary(BinaryOp::Maximum, &a, &b).unwrap().to_vec::<f32>().unwrap();
        assert!(m[0].is_nan() && m[1].is_nan());
    }

    #[test]
    fn mismatches_are_errors() {
        let a = T::from_vec(vec![1.0f32; 6], [2, 3]).unwrap();
        let b = T::from_vec(vec![1.0f32; 4], [4]).unwrap();
        let msg = binary(BinaryOp::Mul, &a, &b).unwrap_err().to_string();
        assert!(msg.contains("mul") && msg.contains("(2, 3)") && msg.contains("(4,)"), "{msg}");
        let i = T::from_vec(vec![1i32; 3], [3]).unwrap();
        assert!(binary(BinaryOp::Add, &a, &i).is_err());
        assert!(unary(UnaryOp::Exp, &i).is_err());
    }

    #[test]
    fn f16_rounds_once() {
        let a = T::from_vec(vec![f16::from_f32(0.1); 3], [3]).unwrap();
        let s = binary(BinaryOp::Add, &a, &a).unwrap();
        assert_eq!(s.dtype(), DType::F16);
        assert_eq!(s.to_vec::<f16>().unwrap()[0], f16::from_f32(f16::from_f32(0.1).to_f32() * 2.0));
    }
}
