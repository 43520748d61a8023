//! Masks: comparisons, logical ops, float classification, `any` / `all`, and the public
//! `select` (tf.where with three arguments).
//!
//! Every op here but `select` has a bool result, through which no gradient flows: they are
//! never recorded (TensorFlow registers them as not differentiable). `select` records the
//! rule of [`binary::select`](crate::ops::binary): the gradient goes to `x` where the
//! condition holds and to `y` elsewhere, each summed back to its operand's shape.

use tapeflow_dtype::{DType, Error, Result};
use tapeflow_kernels::{self as kernels, ClassifyOp, CompareOp, LogicalOp};

use crate::operand::{IntoOperand, Operand};
use crate::ops::binary;
use crate::runtime::Tensor;
use crate::trace;

/// `op(a, b)` with broadcasting, a bool tensor; a literal `b` adopts `a`'s dtype.
pub(crate) fn compare(op: CompareOp, a: &Tensor, b: impl IntoOperand) -> Result<Tensor> {
    let b = b.into_operand().resolve(a.dtype(), op.name())?;
    trace::op(op.name(), [a, &b], move |[a, b]| kernels::compare(op, a, b))
}

/// `op(a, b)` on bool tensors with broadcasting; a literal `b` must be a bool.
pub(crate) fn logical(op: LogicalOp, a: &Tensor, b: impl IntoOperand) -> Result<Tensor> {
    if a.dtype() != DType::Bool {
        return Err(Error::UnsupportedDType { op: op.name(), shape: a.shape().clone(), dtype: a.dtype() });
    }
    let b = b.into_operand().resolve(DType::Bool, op.name())?;
    trace::op(op.name(), [a, &b], move |[a, b]| kernels::logical(op, a, b))
}

/// `is_nan`, `is_finite` or `is_inf`.
pub(crate) fn classify(op: ClassifyOp, x: &Tensor) -> Result<Tensor> {
    trace::op(op.name(), [x], move |[x]| kernels::classify(op, x))
}

/// `any` (`all = false`) or `all` over `axes` (`None`: every axis).
pub(crate) fn any_all(all: bool, x: &Tensor, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
    let name = if all { "all" } else { "any" };
    let axes = kernels::resolve_axes(name, x, axes)?;
    trace::op(name, [x], move |[x]| kernels::any_all(all, x, &axes, keepdims))
}

/// `tf.where(cond, x, y)` (SelectV2): `x` where the bool `cond` holds, else `y`; the three
/// broadcast together. A literal `x` or `y` adopts the other's dtype (float32 if both are
/// literals); a literal `cond` must be a bool.
pub(crate) fn select(cond: impl IntoOperand, x: impl IntoOperand, y: impl IntoOperand) -> Result<Tensor> {
    const OP: &str = "select";
    let cond = cond.into_operand().resolve(DType::Bool, OP)?;
    if cond.dtype() != DType::Bool {
        return Err(Error::UnsupportedDType { op: OP, shape: cond.shape().clone(), dtype: cond.dtype() });
    }
    let (x, y) = match (x.into_operand(), y.into_operand()) {
        (Operand::Literal(x), y) => {
            let y = y.resolve(x.default_dtype(), OP)?;
            (Operand::Literal(x).resolve(y.dtype(), OP)?, y)
        }
        (Operand::Tensor(x), y) => {
            let y = y.resolve(x.dtype(), OP)?;
            (x, y)
        }
    };
    binary::select(&cond, &x, &y)
}
