//! `std::ops` arithmetic on tensors: `+ - * /` and unary `-`.
//!
//! Operators live beside the `Tensor` type (Rust's orphan rule), but the work is done by
//! the tensor's [`Runtime`]: tapeflow's runtime computes the op and records it on every
//! active gradient tape. Every operator returns `Result<Tensor>`, and a `Result<Tensor>`
//! is accepted beside a tensor operand, so an expression chains with a single `?`.

use std::ops::{Add, Div, Mul, Neg, Sub};

use half::f16;

use crate::error::Result;
use crate::literal::Literal;
use crate::tensor::Tensor;

/// The four arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
}

impl ArithOp {
    /// The op's name as TensorFlow spells it (`add`, `sub`, `mul`, `div`).
    pub const fn name(self) -> &'static str {
        match self {
            ArithOp::Add => "add",
            ArithOp::Sub => "sub",
            ArithOp::Mul => "mul",
            ArithOp::Div => "div",
        }
    }
}

/// What executes the operators of `Tensor<Self>`. Implemented by the layer that owns the
/// kernels and the tape; this crate only routes the calls.
pub trait Runtime: Sized + 'static {
    /// `lhs op rhs` with broadcasting.
    fn arith(op: ArithOp, lhs: &Tensor<Self>, rhs: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// `-x`.
    fn neg(x: &Tensor<Self>) -> Result<Tensor<Self>>;
}

fn with_literal<R: Runtime, L: Literal>(
    op: ArithOp,
    tensor: &Tensor<R>,
    literal: L,
    literal_first: bool,
) -> Result<Tensor<R>> {
    let other = literal.literal().to_tensor(tensor.dtype(), op.name())?;
    if literal_first { R::arith(op, &other, tensor) } else { R::arith(op, tensor, &other) }
}

macro_rules! arith_operator {
    ($Trait:ident, $method:ident, $op:expr) => {
        impl<R: Runtime> $Trait<&Tensor<R>> for &Tensor<R> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: &Tensor<R>) -> Self::Output {
                R::arith($op, self, rhs)
            }
        }
        impl<R: Runtime> $Trait<Tensor<R>> for &Tensor<R> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: Tensor<R>) -> Self::Output {
                R::arith($op, self, &rhs)
            }
        }
        impl<R: Runtime> $Trait<&Tensor<R>> for Tensor<R> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: &Tensor<R>) -> Self::Output {
                R::arith($op, &self, rhs)
            }
        }
        impl<R: Runtime> $Trait<Tensor<R>> for Tensor<R> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: Tensor<R>) -> Self::Output {
                R::arith($op, &self, &rhs)
            }
        }
        impl<R: Runtime> $Trait<&Tensor<R>> for Result<Tensor<R>> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: &Tensor<R>) -> Self::Output {
                R::arith($op, &self?, rhs)
            }
        }
        impl<R: Runtime> $Trait<Tensor<R>> for Result<Tensor<R>> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: Tensor<R>) -> Self::Output {
                R::arith($op, &self?, &rhs)
            }
        }
        impl<R: Runtime> $Trait<Result<Tensor<R>>> for &Tensor<R> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: Result<Tensor<R>>) -> Self::Output {
                R::arith($op, self, &rhs?)
            }
        }
        impl<R: Runtime> $Trait<Result<Tensor<R>>> for Tensor<R> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: Result<Tensor<R>>) -> Self::Output {
                R::arith($op, &self, &rhs?)
            }
        }
        // One float and one integer type only, so a bare literal (`x * 2.0`, `x + 1`) infers its
        // type from the single candidate impl.
        arith_operator!(@literals $Trait, $method, $op, f64, f16, i32);
    };
    (@literals $Trait:ident, $method:ident, $op:expr, $($lit:ty),*) => {$(
        impl<R: Runtime> $Trait<$lit> for &Tensor<R> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: $lit) -> Self::Output {
                with_literal($op, self, rhs, false)
            }
        }
        impl<R: Runtime> $Trait<$lit> for Tensor<R> {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: $lit) -> Self::Output {
                with_literal($op, &self, rhs, false)
            }
        }
        impl<R: Runtime> $Trait<&Tensor<R>> for $lit {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: &Tensor<R>) -> Self::Output {
                with_literal($op, rhs, self, true)
            }
        }
        impl<R: Runtime> $Trait<Tensor<R>> for $lit {
            type Output = Result<Tensor<R>>;
            fn $method(self, rhs: Tensor<R>) -> Self::Output {
                with_literal($op, &rhs, self, true)
            }
        }
    )*};
}

arith_operator!(Add, add, ArithOp::Add);
arith_operator!(Sub, sub, ArithOp::Sub);
arith_operator!(Mul, mul, ArithOp::Mul);
arith_operator!(Div, div, ArithOp::Div);

impl<R: Runtime> Neg for &Tensor<R> {
    type Output = Result<Tensor<R>>;
    fn neg(self) -> Self::Output {
        R::neg(self)
    }
}

impl<R: Runtime> Neg for Tensor<R> {
    type Output = Result<Tensor<R>>;
    fn neg(self) -> Self::Output {
        R::neg(&self)
    }
}
