//! `std::ops` arithmetic with `&Variable` operands (a variable is read as an access).
//! Operators between tensors and literals live beside `Tensor` in `tapeflow-dtype`.

use std::ops::{Add, Div, Mul, Neg, Sub};

use tapeflow_dtype::{Result, f16};
use tapeflow_kernels::UnaryOp;

use crate::ops::unary::unary;
use crate::runtime::Tensor;
use crate::variable::Variable;

macro_rules! variable_operator {
    ($Trait:ident, $method:ident) => {
        impl $Trait<&Variable> for &Variable {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Variable) -> Result<Tensor> {
                $Trait::$method(&self.read(), &rhs.read())
            }
        }
        impl $Trait<&Variable> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Variable) -> Result<Tensor> {
                $Trait::$method(self, &rhs.read())
            }
        }
        impl $Trait<&Variable> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Variable) -> Result<Tensor> {
                $Trait::$method(&self, &rhs.read())
            }
        }
        impl $Trait<&Tensor> for &Variable {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                $Trait::$method(&self.read(), rhs)
            }
        }
        impl $Trait<Tensor> for &Variable {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                $Trait::$method(&self.read(), &rhs)
            }
        }
        impl $Trait<&Variable> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Variable) -> Result<Tensor> {
                $Trait::$method(&self?, &rhs.read())
            }
        }
        impl $Trait<Result<Tensor>> for &Variable {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Result<Tensor>) -> Result<Tensor> {
                $Trait::$method(&self.read(), &rhs?)
            }
        }
        variable_operator!(@literals $Trait, $method, f64, f16, i32);
    };
    (@literals $Trait:ident, $method:ident, $($lit:ty),*) => {$(
        impl $Trait<$lit> for &Variable {
            type Output = Result<Tensor>;
            fn $method(self, rhs: $lit) -> Result<Tensor> {
                $Trait::$method(&self.read(), rhs)
            }
        }
        impl $Trait<&Variable> for $lit {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Variable) -> Result<Tensor> {
                $Trait::$method(self, &rhs.read())
            }
        }
    )*};
}

variable_operator!(Add, add);
variable_operator!(Sub, sub);
variable_operator!(Mul, mul);
variable_operator!(Div, div);

impl Neg for &Variable {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        unary(UnaryOp::Neg, &self.read())
    }
}
