//! The recording runtime behind `tapeflow::Tensor`'s operators.

use tapeflow_dtype::{ArithOp, Result, Runtime};
use tapeflow_kernels::{BinaryOp, UnaryOp};

use crate::ops::{binary, unary};

/// tapeflow's runtime: operators compute with the SIMD kernels and record on active tapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autodiff;

/// An immutable tensor whose operations are recorded on active gradient tapes.
pub type Tensor = tapeflow_dtype::Tensor<Autodiff>;

impl Runtime for Autodiff {
    fn arith(op: ArithOp, lhs: &Tensor, rhs: &Tensor) -> Result<Tensor> {
        let op = match op {
            ArithOp::Add => BinaryOp::Add,
            ArithOp::Sub => BinaryOp::Sub,
            ArithOp::Mul => BinaryOp::Mul,
            ArithOp::Div => BinaryOp::Div,
        };
        binary::binary(op, lhs, rhs)
    }

    fn neg(x: &Tensor) -> Result<Tensor> {
        unary::unary(UnaryOp::Neg, x)
    }
}
