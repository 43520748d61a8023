//! Differentiable ops, one file per family, each op's backward rule beside its forward.
//!
//! Every op computes its value with `tapeflow-kernels` and calls
//! [`record`](crate::context::record) with a backward rule. Backward rules are written with
//! these same ops, so gradients are differentiable again (higher order to any order).

pub(crate) mod activation;
pub(crate) mod binary;
pub(crate) mod einsum;
#[cfg(test)]
mod first_order_tests;
pub(crate) mod gather;
pub(crate) mod mask;
pub(crate) mod matmul;
pub(crate) mod nn;
pub(crate) mod reduce;
pub(crate) mod scan;
pub(crate) mod shape;
pub(crate) mod slicing;
pub(crate) mod unary;

use tapeflow_dtype::{DType, Result, Shape};
use tapeflow_kernels::{ArgOp, BinaryOp, ClassifyOp, CompareOp, LogicalOp, PadMode, ReduceOp, ScanOp, UnaryOp};

use crate::operand::IntoOperand;
use crate::runtime::Tensor;
use crate::trace;
use crate::variable::Variable;

/// The math of the op catalog, as methods on [`Tensor`] and [`Variable`] (a variable is
/// read when the op runs, which counts as an access on active tapes). Every tensor argument
/// accepts a `Tensor`, a `Variable` or a Rust scalar, by reference or by value; a scalar
/// adopts the receiver's dtype.
pub trait TensorMath {
    /// The receiver's value as a tensor (a variable read).
    fn to_tensor(&self) -> Tensor;

    /// `-x`
    fn neg(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Neg, &self.to_tensor())
    }
    /// `|x|`; the gradient at 0 is 0.
    fn abs(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Abs, &self.to_tensor())
    }
    /// `e^x`
    fn exp(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Exp, &self.to_tensor())
    }
    /// Natural logarithm; `log(0) = -inf`.
    fn log(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Log, &self.to_tensor())
    }
    /// Square root; the gradient at 0 is +inf.
    fn sqrt(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Sqrt, &self.to_tensor())
    }
    /// `1 / sqrt(x)`
    fn rsqrt(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Rsqrt, &self.to_tensor())
    }
    /// `x * x`
    fn square(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Square, &self.to_tensor())
    }
    /// Hyperbolic tangent.
    fn tanh(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Tanh, &self.to_tensor())
    }
    /// Logistic sigmoid `1 / (1 + e^-x)`.
    fn sigmoid(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Sigmoid, &self.to_tensor())
    }
    /// `max(x, 0)`, NaN propagating; the gradient at 0 (and at NaN) is 0.
    fn relu(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Relu, &self.to_tensor())
    }
    /// Sine.
    fn sin(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Sin, &self.to_tensor())
    }
    /// Cosine.
    fn cos(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Cos, &self.to_tensor())
    }
    /// `log(1 + e^x)`
    fn softplus(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Softplus, &self.to_tensor())
    }
    /// `log(1 + x)`
    fn log1p(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Log1p, &self.to_tensor())
    }
    /// `e^x - 1`
    fn expm1(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Expm1, &self.to_tensor())
    }
    /// `1 / x`
    fn reciprocal(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Reciprocal, &self.to_tensor())
    }

    /// `x + y`, broadcasting.
    fn add(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::Add, &self.to_tensor(), other)
    }
    /// `x - y`, broadcasting.
    fn sub(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::Sub, &self.to_tensor(), other)
    }
    /// `x * y`, broadcasting.
    fn mul(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::Mul, &self.to_tensor(), other)
    }
    /// `x / y`, broadcasting; int32 truncates toward zero, and divides by zero as an `Err`.
    fn div(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::Div, &self.to_tensor(), other)
    }
    /// `x ** y`, broadcasting.
    fn pow(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::Pow, &self.to_tensor(), other)
    }
    /// Elementwise maximum, NaN propagating; on ties the gradient goes to `self`.
    fn maximum(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::Maximum, &self.to_tensor(), other)
    }
    /// Elementwise minimum, NaN propagating; on ties the gradient goes to `self`.
    fn minimum(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::Minimum, &self.to_tensor(), other)
    }

    /// Sum over `axes` (negative count from the end; `&[]` reduces nothing).
    fn sum(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Sum, &self.to_tensor(), Some(axes), keepdims)
    }
    /// Mean over `axes`.
    fn mean(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Mean, &self.to_tensor(), Some(axes), keepdims)
    }
    /// Maximum over `axes`; ties share the gradient equally.
    fn max(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Max, &self.to_tensor(), Some(axes), keepdims)
    }
    /// Sum of all elements (a scalar).
    fn sum_all(&self) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Sum, &self.to_tensor(), None, false)
    }
    /// Mean of all elements.
    fn mean_all(&self) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Mean, &self.to_tensor(), None, false)
    }
    /// Maximum of all elements.
    fn max_all(&self) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Max, &self.to_tensor(), None, false)
    }

    // ---- Catalog II: reductions and scans (ops/reduce.rs, ops/scan.rs) ----

    /// Minimum over `axes`; ties share the gradient equally; empty → +inf.
    fn min(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Min, &self.to_tensor(), Some(axes), keepdims)
    }
    /// Minimum of all elements.
    fn min_all(&self) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Min, &self.to_tensor(), None, false)
    }
    /// Product over `axes` (`tf.reduce_prod`); the gradient handles zeros exactly; empty → 1.
    fn prod(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Prod, &self.to_tensor(), Some(axes), keepdims)
    }
    /// Product of all elements.
    fn prod_all(&self) -> Result<Tensor> {
        reduce::reduce(ReduceOp::Prod, &self.to_tensor(), None, false)
    }
    /// `log(sum(exp(x)))` over `axes`, shifted by the maximum so it never overflows.
    fn logsumexp(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        reduce::logsumexp(&self.to_tensor(), axes, keepdims)
    }
    /// Population variance over `axes` (`tf.math.reduce_variance`).
    fn variance(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        reduce::variance("variance", &self.to_tensor(), axes, keepdims)
    }
    /// Population standard deviation over `axes` (`tf.math.reduce_std`).
    fn std(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        reduce::std(&self.to_tensor(), axes, keepdims)
    }
    /// Int32 index of the maximum along `axis` (ties: the first; NaN skipped, as TF's CPU
    /// kernel); an empty axis is an `Err`.
    fn argmax(&self, axis: isize) -> Result<Tensor> {
        reduce::arg_reduce(ArgOp::Max, &self.to_tensor(), axis)
    }
    /// Int32 index of the minimum along `axis`, as [`argmax`](Self::argmax).
    fn argmin(&self, axis: isize) -> Result<Tensor> {
        reduce::arg_reduce(ArgOp::Min, &self.to_tensor(), axis)
    }
    /// Cumulative sum along `axis` (`exclusive`: each total leaves its own element out;
    /// `reverse`: from the end).
    fn cumsum(&self, axis: isize, exclusive: bool, reverse: bool) -> Result<Tensor> {
        scan::scan(ScanOp::Sum, &self.to_tensor(), axis, exclusive, reverse)
    }
    /// Cumulative product along `axis`, as [`cumsum`](Self::cumsum).
    fn cumprod(&self, axis: isize, exclusive: bool, reverse: bool) -> Result<Tensor> {
        scan::scan(ScanOp::Prod, &self.to_tensor(), axis, exclusive, reverse)
    }

    // ---- end of catalog II: reductions and scans ----

    /// Matrix product (rank ≥ 2; batch dimensions broadcast).
    fn matmul(&self, other: impl IntoOperand) -> Result<Tensor> {
        self.matmul_transposed(other, false, false)
    }
    /// `tf.linalg.matmul(a, b, transpose_a, transpose_b)`.
    fn matmul_transposed(&self, other: impl IntoOperand, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
        let a = self.to_tensor();
        let b = other.into_operand().resolve(a.dtype(), "matmul")?;
        matmul::matmul(&a, &b, transpose_a, transpose_b)
    }

    /// The same elements in a new shape; one dimension may be -1.
    fn reshape(&self, dims: impl AsRef<[isize]>) -> Result<Tensor> {
        shape::reshape(&self.to_tensor(), dims.as_ref())
    }
    /// Permutes the dimensions: output dimension `i` is input dimension `perm[i]`.
    fn transpose(&self, perm: &[usize]) -> Result<Tensor> {
        shape::transpose(&self.to_tensor(), perm)
    }
    /// Broadcasts to `shape` (NumPy rules).
    fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        shape::broadcast_to(&self.to_tensor(), &shape.into())
    }
    /// Converts to `dtype`; float → int32 truncates toward zero. Gradients flow between
    /// float dtypes only.
    fn cast(&self, dtype: DType) -> Result<Tensor> {
        shape::cast(&self.to_tensor(), dtype)
    }

    // --- Elementwise math of the second catalog (TensorFlow's names and formulas) ---

    /// Largest integer ≤ x (tf.math.floor); no gradient (TensorFlow: None).
    fn floor(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Floor, &self.to_tensor())
    }
    /// Smallest integer ≥ x (tf.math.ceil); no gradient.
    fn ceil(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Ceil, &self.to_tensor())
    }
    /// Nearest integer, ties to even (tf.math.round); no gradient; int32 unchanged.
    fn round(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Round, &self.to_tensor())
    }
    /// −1, 0 or 1 by the sign of x (NaN stays NaN); the gradient is zeros.
    fn sign(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Sign, &self.to_tensor())
    }
    /// Tangent.
    fn tan(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Tan, &self.to_tensor())
    }
    /// Arcsine; NaN outside [−1, 1].
    fn asin(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Asin, &self.to_tensor())
    }
    /// Arccosine; NaN outside [−1, 1].
    fn acos(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Acos, &self.to_tensor())
    }
    /// Arctangent.
    fn atan(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Atan, &self.to_tensor())
    }
    /// Hyperbolic sine.
    fn sinh(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Sinh, &self.to_tensor())
    }
    /// Hyperbolic cosine.
    fn cosh(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Cosh, &self.to_tensor())
    }
    /// Inverse hyperbolic sine.
    fn asinh(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Asinh, &self.to_tensor())
    }
    /// Inverse hyperbolic cosine; NaN below 1.
    fn acosh(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Acosh, &self.to_tensor())
    }
    /// Inverse hyperbolic tangent; ±inf at ±1, NaN beyond.
    fn atanh(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Atanh, &self.to_tensor())
    }
    /// The error function.
    fn erf(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Erf, &self.to_tensor())
    }
    /// The complementary error function `1 − erf(x)`, accurate where it is tiny.
    fn erfc(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Erfc, &self.to_tensor())
    }
    /// `log(sigmoid(x)) = −softplus(−x)` (tf.math.log_sigmoid), without overflow.
    fn log_sigmoid(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::LogSigmoid, &self.to_tensor())
    }
    /// `x / (1 + |x|)` (tf.nn.softsign).
    fn softsign(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Softsign, &self.to_tensor())
    }
    /// `x < 0 ? e^x − 1 : x` (tf.nn.elu); the gradient at 0 is 1.
    fn elu(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Elu, &self.to_tensor())
    }
    /// Scaled ELU with TensorFlow's constants (tf.nn.selu).
    fn selu(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Selu, &self.to_tensor())
    }
    /// `min(max(x, 0), 6)`, NaN propagating (tf.nn.relu6); the gradient at 0 and 6 is 0.
    fn relu6(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Relu6, &self.to_tensor())
    }
    /// `x · sigmoid(x)` (tf.nn.silu, also swish).
    fn silu(&self) -> Result<Tensor> {
        unary::unary(UnaryOp::Silu, &self.to_tensor())
    }
    /// tf.nn.gelu: `x/2 · (1 + erf(x/√2))`, or with `approximate` its tanh form
    /// `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    fn gelu(&self, approximate: bool) -> Result<Tensor> {
        let op = if approximate { UnaryOp::GeluTanh } else { UnaryOp::Gelu };
        unary::unary(op, &self.to_tensor())
    }
    /// `x > 0 ? x : alpha·x` (tf.nn.leaky_relu; int32 becomes float32 first, as in
    /// TensorFlow); the gradient at 0 is alpha.
    fn leaky_relu(&self, alpha: f64) -> Result<Tensor> {
        activation::leaky_relu(&self.to_tensor(), alpha)
    }
    /// `maximum(minimum(x, max), min)` (tf.clip_by_value with scalar bounds); the
    /// gradient passes where `min ≤ x ≤ max`, both bounds included.
    fn clip_by_value(&self, min: f64, max: f64) -> Result<Tensor> {
        activation::clip_by_value(&self.to_tensor(), min, max)
    }
    /// `(x − y)²`, broadcasting (tf.math.squared_difference).
    fn squared_difference(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::SquaredDifference, &self.to_tensor(), other)
    }
    /// `floor(x / y)`, broadcasting (tf.math.floordiv; int32 rounds toward −inf, and
    /// divides by zero as an `Err`); no gradient (TensorFlow: None).
    fn floordiv(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::FloorDiv, &self.to_tensor(), other)
    }
    /// `x − floor(x / y)·y` with the sign of y, broadcasting (tf.math.floormod; int32 too,
    /// zero divisors an `Err`).
    fn floormod(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::FloorMod, &self.to_tensor(), other)
    }
    /// The angle of the point (other, self): `atan2(self, other)`, broadcasting
    /// (tf.math.atan2(y, x) with self as y).
    fn atan2(&self, other: impl IntoOperand) -> Result<Tensor> {
        binary::with_operand(BinaryOp::Atan2, &self.to_tensor(), other)
    }

    // --- end of the elementwise math of the second catalog ---

    // ---- Catalog II: shapes, slicing and indexing (ops/shape.rs, ops/slicing.rs,
    // ops/gather.rs). Axes may be negative; indices are int32 (a Rust integer works too).

    /// Drops the listed axes, each of size 1 (`&[]`: every axis of size 1), as `tf.squeeze`.
    fn squeeze(&self, axes: &[isize]) -> Result<Tensor> {
        shape::squeeze(&self.to_tensor(), axes)
    }
    /// Inserts an axis of size 1 at `axis` (in `-(rank + 1)..=rank`), as `tf.expand_dims`.
    fn expand_dims(&self, axis: isize) -> Result<Tensor> {
        shape::expand_dims(&self.to_tensor(), axis)
    }
    /// The slices along `axis`, that axis dropped, as `tf.unstack`.
    fn unstack(&self, axis: isize) -> Result<Vec<Tensor>> {
        shape::unstack(&self.to_tensor(), axis)
    }
    /// Consecutive pieces along `axis` of the given sizes (adding up to its length), as `tf.split`.
    fn split(&self, sizes: &[usize], axis: isize) -> Result<Vec<Tensor>> {
        shape::split(&self.to_tensor(), sizes, axis)
    }
    /// Repeats the tensor `multiples[i]` times along each axis `i`, as `tf.tile`.
    fn tile(&self, multiples: &[usize]) -> Result<Tensor> {
        shape::tile(&self.to_tensor(), multiples)
    }
    /// Pads by `[before, after]` per axis with a constant or mirrored values, as `tf.pad`.
    fn pad(&self, paddings: &[[usize; 2]], mode: PadMode) -> Result<Tensor> {
        slicing::pad(&self.to_tensor(), paddings, mode)
    }
    /// Reverses the listed axes, as `tf.reverse`.
    fn reverse(&self, axes: &[isize]) -> Result<Tensor> {
        slicing::reverse(&self.to_tensor(), axes)
    }
    /// The block at `begin` of `size` (`-1`: to the end of the axis), as `tf.slice`.
    fn slice(&self, begin: &[usize], size: &[isize]) -> Result<Tensor> {
        slicing::slice(&self.to_tensor(), begin, size)
    }
    /// `x[begin:end:strides]` per axis with Python's rules (negative and out-of-range bounds
    /// clamp, negative strides walk back; no masks), as `tf.strided_slice`.
    fn strided_slice(&self, begin: &[isize], end: &[isize], strides: &[isize]) -> Result<Tensor> {
        slicing::strided_slice(&self.to_tensor(), begin, end, strides)
    }
    /// The slices at `indices` along `axis` (shape `x[:axis] + indices + x[axis+1:]`), as
    /// `tf.gather`; an index out of range is an `Err`.
    fn gather(&self, indices: impl IntoOperand, axis: isize) -> Result<Tensor> {
        let indices = indices.into_operand().resolve(DType::I32, "gather")?;
        gather::gather(&self.to_tensor(), &indices, axis)
    }
    /// The slices at the index vectors along `indices`' last axis, as `tf.gather_nd`.
    fn gather_nd(&self, indices: impl IntoOperand) -> Result<Tensor> {
        let indices = indices.into_operand().resolve(DType::I32, "gather_nd")?;
        gather::gather_nd_lead(&self.to_tensor(), &indices, 0)
    }

    /// Softmax along `axis`.
    fn softmax(&self, axis: isize) -> Result<Tensor> {
        nn::softmax(&self.to_tensor(), axis)
    }
    /// Log-softmax along `axis`.
    fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        nn::log_softmax(&self.to_tensor(), axis)
    }
    /// Per-example cross-entropy of logits `[N, C]` against int32 class labels `[N]`; a
    /// label outside `[0, C)` is an `Err`.
    fn sparse_softmax_cross_entropy(&self, labels: impl IntoOperand) -> Result<Tensor> {
        let logits = self.to_tensor();
        let labels = labels.into_operand().resolve(DType::I32, "sparse_softmax_cross_entropy")?;
        nn::sparse_softmax_cross_entropy(&logits, &labels)
    }

    // ---- Masks (catalog II): comparisons, logical ops, classification, any / all. Bool
    // results, broadcasting, never recorded (no gradient flows through a bool). ----

    /// `self == other` elementwise, a bool tensor (`tf.math.equal`; bool operands too).
    fn equal(&self, other: impl IntoOperand) -> Result<Tensor> {
        mask::compare(CompareOp::Equal, &self.to_tensor(), other)
    }
    /// `self != other` elementwise (`tf.math.not_equal`; bool operands too; NaN != NaN).
    fn not_equal(&self, other: impl IntoOperand) -> Result<Tensor> {
        mask::compare(CompareOp::NotEqual, &self.to_tensor(), other)
    }
    /// `self < other` elementwise (`tf.math.less`).
    fn less(&self, other: impl IntoOperand) -> Result<Tensor> {
        mask::compare(CompareOp::Less, &self.to_tensor(), other)
    }
    /// `self <= other` elementwise (`tf.math.less_equal`).
    fn less_equal(&self, other: impl IntoOperand) -> Result<Tensor> {
        mask::compare(CompareOp::LessEqual, &self.to_tensor(), other)
    }
    /// `self > other` elementwise (`tf.math.greater`).
    fn greater(&self, other: impl IntoOperand) -> Result<Tensor> {
        mask::compare(CompareOp::Greater, &self.to_tensor(), other)
    }
    /// `self >= other` elementwise (`tf.math.greater_equal`).
    fn greater_equal(&self, other: impl IntoOperand) -> Result<Tensor> {
        mask::compare(CompareOp::GreaterEqual, &self.to_tensor(), other)
    }
    /// Both true, elementwise with broadcasting; bool operands only.
    fn logical_and(&self, other: impl IntoOperand) -> Result<Tensor> {
        mask::logical(LogicalOp::And, &self.to_tensor(), other)
    }
    /// Either true; bool operands only.
    fn logical_or(&self, other: impl IntoOperand) -> Result<Tensor> {
        mask::logical(LogicalOp::Or, &self.to_tensor(), other)
    }
    /// Exactly one true; bool operands only.
    fn logical_xor(&self, other: impl IntoOperand) -> Result<Tensor> {
        mask::logical(LogicalOp::Xor, &self.to_tensor(), other)
    }
    /// Not; a bool operand only.
    fn logical_not(&self) -> Result<Tensor> {
        trace::op("logical_not", [&self.to_tensor()], |[x]| tapeflow_kernels::logical_not(x))
    }
    /// Which elements are NaN (float operands only).
    fn is_nan(&self) -> Result<Tensor> {
        mask::classify(ClassifyOp::IsNan, &self.to_tensor())
    }
    /// Which elements are neither NaN nor ±inf (float operands only).
    fn is_finite(&self) -> Result<Tensor> {
        mask::classify(ClassifyOp::IsFinite, &self.to_tensor())
    }
    /// Which elements are ±inf (float operands only).
    fn is_inf(&self) -> Result<Tensor> {
        mask::classify(ClassifyOp::IsInf, &self.to_tensor())
    }
    /// Whether any element over `axes` is true (`tf.reduce_any`; `&[]` reduces nothing;
    /// an empty reduction is false); bool only.
    fn any(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        mask::any_all(false, &self.to_tensor(), Some(axes), keepdims)
    }
    /// Whether every element over `axes` is true (`tf.reduce_all`; an empty reduction is
    /// true); bool only.
    fn all(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        mask::any_all(true, &self.to_tensor(), Some(axes), keepdims)
    }
}

/// `tf.where(cond, x, y)` with three arguments (SelectV2): `x` where the bool `cond` holds,
/// else `y`, all three broadcasting together. The gradient goes to `x` where `cond` holds
/// and to `y` elsewhere (summed back to each one's shape); none to `cond`.
pub fn select(cond: impl IntoOperand, x: impl IntoOperand, y: impl IntoOperand) -> Result<Tensor> {
    mask::select(cond, x, y)
}

impl TensorMath for Tensor {
    fn to_tensor(&self) -> Tensor {
        self.clone()
    }
}

impl TensorMath for Variable {
    fn to_tensor(&self) -> Tensor {
        self.read()
    }
}

/// References work too, so `concat(&[&a, &b], 0)` needs no clones.
impl<T: TensorMath + ?Sized> TensorMath for &T {
    fn to_tensor(&self) -> Tensor {
        (**self).to_tensor()
    }
}

/// A tensor from a Rust literal, as `tf.constant`: `constant(3.0)` is a float32 scalar,
/// `constant(30)` int32, `constant([1.0, 2.0])` shape (2,), nested arrays for rank 2 and 3.
pub fn constant(value: impl Into<Tensor>) -> Tensor {
    value.into()
}

/// The same value with no gradient path: `tf.stop_gradient`.
pub fn stop_gradient(x: &impl TensorMath) -> Tensor {
    // The call always returns `Ok` with one output, so neither running nor capturing it can
    // fail (`stop_gradient` returns a plain tensor, as `tf.stop_gradient`).
    trace::op("stop_gradient", [&x.to_tensor()], |[x]| Ok(x.with_new_id()))
        .expect("a new id for the same value cannot fail")
}

/// `tf.concat(values, axis)`: joins tensors (or variables) along an existing axis.
pub fn concat<T: TensorMath>(values: &[T], axis: isize) -> Result<Tensor> {
    let tensors: Vec<Tensor> = values.iter().map(TensorMath::to_tensor).collect();
    shape::concat(&tensors, axis)
}

/// `tf.stack(values, axis)`: tensors of one shape and dtype joined along a new axis.
pub fn stack<T: TensorMath>(values: &[T], axis: isize) -> Result<Tensor> {
    let tensors: Vec<Tensor> = values.iter().map(TensorMath::to_tensor).collect();
    shape::stack(&tensors, axis)
}

/// `tf.scatter_nd(indices, updates, shape)`: zeros of `shape` with the updates added at
/// the index vectors along `indices`' last axis (duplicates add up, in index order).
pub fn scatter_nd(indices: impl IntoOperand, updates: impl TensorMath, shape: impl Into<Shape>) -> Result<Tensor> {
    let indices = indices.into_operand().resolve(DType::I32, "scatter_nd")?;
    gather::scatter_nd_lead(&indices, &updates.to_tensor(), 0, &shape.into())
}

/// `tf.one_hot(indices, depth)`: float32 `indices.shape + [depth]`, 1 at each index; an
/// index outside `[0, depth)` gives a row of zeros.
pub fn one_hot(indices: impl IntoOperand, depth: usize) -> Result<Tensor> {
    let indices = indices.into_operand().resolve(DType::I32, "one_hot")?;
    trace::op("one_hot", [&indices], move |[indices]| tapeflow_kernels::one_hot_indices(indices, depth))
}

/// `tf.math.unsorted_segment_sum(data, segment_ids, num_segments)`: the rows of `data`
/// with each id summed (ids' shape is a prefix of data's); negative ids are dropped, an id
/// `≥ num_segments` is an `Err`.
pub fn unsorted_segment_sum(
    data: impl TensorMath,
    segment_ids: impl IntoOperand,
    num_segments: usize,
) -> Result<Tensor> {
    let ids = segment_ids.into_operand().resolve(DType::I32, "unsorted_segment_sum")?;
    gather::segment_sum_axis(&data.to_tensor(), &ids, 0, num_segments)
}

/// `tf.einsum(equation, *operands)` for one or two operands, without ellipsis; a label
/// repeated within an operand takes its diagonal.
pub fn einsum<T: TensorMath>(equation: &str, operands: &[T]) -> Result<Tensor> {
    let tensors: Vec<Tensor> = operands.iter().map(TensorMath::to_tensor).collect();
    einsum::einsum(equation, &tensors)
}

/// A scalar of `like`'s dtype (for constants inside backward rules).
pub(crate) fn scalar_like(like: &Tensor, value: f64) -> Tensor {
    match like.dtype() {
        DType::F32 => Tensor::shared_scalar(value as f32),
        DType::F16 => Tensor::shared_scalar(tapeflow_dtype::f16::from_f64(value)),
        DType::I32 => Tensor::shared_scalar(value as i32),
        DType::Bool => Tensor::shared_scalar(value != 0.0),
    }
}
