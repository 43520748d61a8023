//! The one error type of tapeflow.

use crate::dtype::DType;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// `Result<T, tapeflow::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in tapeflow. Each variant names the op and carries the
/// shapes and dtypes involved, so a message alone says what was called with what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two operands whose shapes cannot be combined (broadcasting, matmul, concat, assign).
    #[error("{op}: incompatible shapes {lhs} {lhs_dtype} and {rhs} {rhs_dtype}: {reason}")]
    ShapeMismatch {
        /// The op.
        op: &'static str,
        /// Shape of the first operand.
        lhs: Shape,
        /// Dtype of the first operand.
        lhs_dtype: DType,
        /// Shape of the second operand.
        rhs: Shape,
        /// Dtype of the second operand.
        rhs_dtype: DType,
        /// What rule the shapes break.
        reason: String,
    },
    /// Two operands of different dtypes where one dtype is required.
    #[error("{op}: dtype mismatch between {lhs_dtype} {lhs} and {rhs_dtype} {rhs}")]
    DTypeMismatch {
        /// The op.
        op: &'static str,
        /// Shape of the first operand.
        lhs: Shape,
        /// Dtype of the first operand.
        lhs_dtype: DType,
        /// Shape of the second operand.
        rhs: Shape,
        /// Dtype of the second operand.
        rhs_dtype: DType,
    },
    /// The op has no kernel for this dtype (e.g. `exp` of int32).
    #[error("{op}: dtype {dtype} is not supported (operand of shape {shape})")]
    UnsupportedDType {
        /// The op.
        op: &'static str,
        /// Shape of the operand.
        shape: Shape,
        /// The refused dtype.
        dtype: DType,
    },
    /// An axis outside `-rank..rank`, or repeated.
    #[error("{op}: invalid axis {axis} for a tensor of shape {shape} {dtype} (rank {})", shape.rank())]
    InvalidAxis {
        /// The op.
        op: &'static str,
        /// The axis as given.
        axis: isize,
        /// Shape of the operand.
        shape: Shape,
        /// Dtype of the operand.
        dtype: DType,
    },
    /// A permutation that is not a permutation of `0..rank`.
    #[error("{op}: {perm:?} is not a permutation of the axes of shape {shape} {dtype}")]
    InvalidPermutation {
        /// The op.
        op: &'static str,
        /// The permutation as given.
        perm: Vec<usize>,
        /// Shape of the operand.
        shape: Shape,
        /// Dtype of the operand.
        dtype: DType,
    },
    /// A target shape that cannot hold the operand's elements (reshape, broadcast_to).
    #[error("{op}: cannot turn shape {shape} {dtype} into {target:?}: {reason}")]
    InvalidShape {
        /// The op.
        op: &'static str,
        /// Shape of the operand.
        shape: Shape,
        /// Dtype of the operand.
        dtype: DType,
        /// The requested dimensions as given (-1 = inferred).
        target: Vec<isize>,
        /// What is wrong with it.
        reason: String,
    },
    /// A data buffer whose length does not match the shape.
    #[error("{op}: {len} values of {dtype} do not fill shape {shape} ({expected} elements)")]
    DataLength {
        /// The op.
        op: &'static str,
        /// Number of values given.
        len: usize,
        /// Number of values the shape needs.
        expected: usize,
        /// The requested shape.
        shape: Shape,
        /// Dtype of the values.
        dtype: DType,
    },
    /// Integer division (or remainder) by zero.
    #[error("{op}: integer division by zero ({lhs} {dtype} by {rhs} {dtype})")]
    DivisionByZero {
        /// The op.
        op: &'static str,
        /// Shape of the dividend.
        lhs: Shape,
        /// Shape of the divisor.
        rhs: Shape,
        /// Dtype of both.
        dtype: DType,
    },
    /// A value the op cannot accept (NaN where an integer is needed, a label out of
    /// range, a negative integer exponent, ...).
    #[error("{op}: invalid value in operand of shape {shape} {dtype}: {reason}")]
    InvalidValue {
        /// The op.
        op: &'static str,
        /// Shape of the operand.
        shape: Shape,
        /// Dtype of the operand.
        dtype: DType,
        /// What is wrong.
        reason: String,
    },
    /// A host read (`to_vec`, `to_scalar`, `as_slice`) of a tensor that, while
    /// `tapeflow::function` traces, stands for a value of the program: it has no value
    /// until the program runs (TensorFlow: "numpy() is only available when eager execution
    /// is enabled").
    #[error(
        "function: `{op}` of a symbolic tensor of shape {shape} {dtype} made by `{made_by}` while tracing: a compiled \
         program cannot branch on data or read values; compute both sides and `select`, or return the tensor"
    )]
    SymbolicValue {
        /// The read (`to_vec`, `to_scalar`, `as_slice`).
        op: &'static str,
        /// The op of the program that made the tensor.
        made_by: &'static str,
        /// Shape of the tensor.
        shape: Shape,
        /// Dtype of the tensor.
        dtype: DType,
    },
    /// A call that is wrong for reasons other than one operand's shape or dtype.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The op or function.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A file that could not be read or written.
    #[error("{op}: {path}: {reason}")]
    Io {
        /// The op or function.
        op: &'static str,
        /// The file.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// Serialized data that is malformed, truncated, or holds what tapeflow cannot
    /// represent (a dtype other than float32, float16 and int32).
    #[error("{op}: invalid data: {reason}")]
    Format {
        /// The op or function.
        op: &'static str,
        /// What is wrong, naming the tensor when one is at fault.
        reason: String,
    },
    /// A second `gradient`/`jacobian` call on a non-persistent tape (TensorFlow's message).
    #[error("A non-persistent GradientTape can only be used to compute one set of gradients (or jacobians)")]
    TapeReused,
}

impl Error {
    /// [`Error::ShapeMismatch`] between two tensors, naming `op` and why.
    pub fn shape_mismatch<R>(op: &'static str, lhs: &Tensor<R>, rhs: &Tensor<R>, reason: impl Into<String>) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.shape().clone(),
            lhs_dtype: lhs.dtype(),
            rhs: rhs.shape().clone(),
            rhs_dtype: rhs.dtype(),
            reason: reason.into(),
        }
    }

    /// [`Error::DTypeMismatch`] between two tensors.
    pub fn dtype_mismatch<R>(op: &'static str, lhs: &Tensor<R>, rhs: &Tensor<R>) -> Self {
        Error::DTypeMismatch {
            op,
            lhs: lhs.shape().clone(),
            lhs_dtype: lhs.dtype(),
            rhs: rhs.shape().clone(),
            rhs_dtype: rhs.dtype(),
        }
    }
}
