//! What ops, tapes and gradients accept as arguments.

use std::borrow::Borrow;

use tapeflow_dtype::{DType, Literal, Result, ScalarLiteral, Shape, TensorId};

use crate::runtime::Tensor;
use crate::variable::Variable;

/// A tensor argument of an op: a tensor, a variable (read when the op runs) or a Rust
/// scalar, which adopts the other operand's dtype as TensorFlow converts Python numbers.
#[derive(Debug, Clone)]
pub enum Operand {
    /// A tensor value.
    Tensor(Tensor),
    /// A Rust literal waiting for a dtype.
    Literal(ScalarLiteral),
}

impl Operand {
    /// The operand as a tensor of `like`'s dtype when it is a literal.
    pub(crate) fn resolve(self, like: DType, op: &'static str) -> Result<Tensor> {
        match self {
            Operand::Tensor(t) => Ok(t),
            Operand::Literal(l) => l.to_tensor(like, op),
        }
    }
}

/// Converts an argument into an [`Operand`]: `Tensor`, `&Tensor`, `Variable`, `&Variable`,
/// `f64`, `f32`, `f16`, `i32`, `i64`, `bool`.
pub trait IntoOperand {
    /// The operand.
    fn into_operand(self) -> Operand;
}

impl IntoOperand for Tensor {
    fn into_operand(self) -> Operand {
        Operand::Tensor(self)
    }
}
impl IntoOperand for &Tensor {
    fn into_operand(self) -> Operand {
        Operand::Tensor(self.clone())
    }
}
impl IntoOperand for Variable {
    fn into_operand(self) -> Operand {
        Operand::Tensor(self.read())
    }
}
impl IntoOperand for &Variable {
    fn into_operand(self) -> Operand {
        Operand::Tensor(self.read())
    }
}
impl IntoOperand for Operand {
    fn into_operand(self) -> Operand {
        self
    }
}
macro_rules! literal_operand {
    ($($t:ty),*) => {$(
        impl IntoOperand for $t {
            fn into_operand(self) -> Operand {
                Operand::Literal(self.literal())
            }
        }
    )*};
}
literal_operand!(f64, f32, tapeflow_dtype::f16, i32, i64, bool);

/// What a gradient is taken with respect to: a tensor (watched, or produced on the tape) or
/// a variable.
pub trait GradSource {
    /// The id the tape knows the source by (a variable's handle id).
    fn source_id(&self) -> TensorId;
    /// Shape of the source's value.
    fn source_shape(&self) -> Shape;
    /// Dtype of the source's value.
    fn source_dtype(&self) -> DType;
    /// The variable, when the source is one (to explain a `None` gradient).
    #[doc(hidden)]
    fn source_variable(&self) -> Option<&Variable> {
        None
    }
}

impl GradSource for Tensor {
    fn source_id(&self) -> TensorId {
        self.id()
    }
    fn source_shape(&self) -> Shape {
        self.shape().clone()
    }
    fn source_dtype(&self) -> DType {
        self.dtype()
    }
}

impl GradSource for Variable {
    fn source_id(&self) -> TensorId {
        self.handle_id()
    }
    fn source_shape(&self) -> Shape {
        self.shape()
    }
    fn source_dtype(&self) -> DType {
        self.dtype()
    }
    fn source_variable(&self) -> Option<&Variable> {
        Some(self)
    }
}

impl<T: GradSource + ?Sized> GradSource for &T {
    fn source_id(&self) -> TensorId {
        (**self).source_id()
    }
    fn source_shape(&self) -> Shape {
        (**self).source_shape()
    }
    fn source_dtype(&self) -> DType {
        (**self).source_dtype()
    }
    fn source_variable(&self) -> Option<&Variable> {
        (**self).source_variable()
    }
}

/// One thing a tape can watch.
pub enum WatchItem<'a> {
    /// A tensor, by id.
    Tensor(&'a Tensor),
    /// A variable, by handle.
    Variable(&'a Variable),
}

/// What [`GradientTape::watch`](crate::GradientTape::watch) accepts: a tensor or variable,
/// by value or reference, or an array, slice or `Vec` of them.
pub trait Watchable {
    /// Calls `f` for every tensor or variable to watch.
    fn each_watch_item(&self, f: &mut dyn FnMut(WatchItem<'_>));
}

impl Watchable for Tensor {
    fn each_watch_item(&self, f: &mut dyn FnMut(WatchItem<'_>)) {
        f(WatchItem::Tensor(self));
    }
}
impl Watchable for Variable {
    fn each_watch_item(&self, f: &mut dyn FnMut(WatchItem<'_>)) {
        f(WatchItem::Variable(self));
    }
}
impl<T: Watchable + ?Sized> Watchable for &T {
    fn each_watch_item(&self, f: &mut dyn FnMut(WatchItem<'_>)) {
        (**self).each_watch_item(f);
    }
}
impl<T: Watchable> Watchable for [T] {
    fn each_watch_item(&self, f: &mut dyn FnMut(WatchItem<'_>)) {
        self.iter().for_each(|t| t.each_watch_item(f));
    }
}
impl<T: Watchable, const N: usize> Watchable for [T; N] {
    fn each_watch_item(&self, f: &mut dyn FnMut(WatchItem<'_>)) {
        self.iter().for_each(|t| t.each_watch_item(f));
    }
}
impl<T: Watchable> Watchable for Vec<T> {
    fn each_watch_item(&self, f: &mut dyn FnMut(WatchItem<'_>)) {
        self.iter().for_each(|t| t.each_watch_item(f));
    }
}

/// Targets of `gradients`: anything that borrows as a tensor (`Tensor` or `&Tensor`).
pub(crate) fn target_tensors<T: Borrow<Tensor>>(targets: &[T]) -> Vec<Tensor> {
    targets.iter().map(|t| t.borrow().clone()).collect()
}
