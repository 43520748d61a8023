//! What a compiled function takes and returns.

use tapeflow_dtype::{DType, Error, Result, Shape};

use crate::runtime::Tensor;

/// The argument of a [`Function`](super::Function)'s closure: `()`, a [`Tensor`], a tuple
/// of tensors (up to eight) or a `Vec<Tensor>`, by value (clones are O(1)).
pub trait FunctionArgs: Clone {
    /// Calls `f` on each tensor, in order.
    fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor));
}

/// What a [`Function`](super::Function)'s closure returns: `()`, a [`Tensor`], a tuple of
/// tensors (up to eight) or a `Vec<Tensor>`.
pub trait FunctionOutput: Sized {
    /// The tensors, in order.
    fn tensors(&self) -> Vec<Tensor>;
    /// The value from its tensors (as many as [`tensors`](Self::tensors) gave when traced).
    fn from_tensors(tensors: &mut dyn Iterator<Item = Tensor>) -> Result<Self>;
}

impl FunctionArgs for () {
    fn for_each_tensor(&self, _: &mut dyn FnMut(&Tensor)) {}
}

impl FunctionArgs for Tensor {
    fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor)) {
        f(self);
    }
}

/// A list of tensors: its length is part of the signature.
impl FunctionArgs for Vec<Tensor> {
    fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor)) {
        self.iter().for_each(f);
    }
}

impl FunctionOutput for () {
    fn tensors(&self) -> Vec<Tensor> {
        Vec::new()
    }
    fn from_tensors(_: &mut dyn Iterator<Item = Tensor>) -> Result<Self> {
        Ok(())
    }
}

impl FunctionOutput for Tensor {
    fn tensors(&self) -> Vec<Tensor> {
        vec![self.clone()]
    }
    fn from_tensors(tensors: &mut dyn Iterator<Item = Tensor>) -> Result<Self> {
        tensors.next().ok_or_else(too_few)
    }
}

impl FunctionOutput for Vec<Tensor> {
    fn tensors(&self) -> Vec<Tensor> {
        self.clone()
    }
    fn from_tensors(tensors: &mut dyn Iterator<Item = Tensor>) -> Result<Self> {
        Ok(tensors.collect())
    }
}

fn too_few() -> Error {
    Error::InvalidArgument { op: "function", reason: "the program returned fewer results than traced".into() }
}

macro_rules! tuples {
    ($($name:ident)+) => {
        impl<$($name),+> FunctionArgs for ($($name,)+) where $($name: FunctionArgs,)+ {
            #[allow(non_snake_case)]
            fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor)) {
                let ($($name,)+) = self;
                $($name.for_each_tensor(f);)+
            }
        }

        impl<$($name),+> FunctionOutput for ($($name,)+) where $($name: FunctionOutput,)+ {
            #[allow(non_snake_case)]
            fn tensors(&self) -> Vec<Tensor> {
                let ($($name,)+) = self;
                let mut all = Vec::new();
                $(all.extend($name.tensors());)+
                all
            }
            fn from_tensors(tensors: &mut dyn Iterator<Item = Tensor>) -> Result<Self> {
                Ok(($($name::from_tensors(tensors)?,)+))
            }
        }
    };
}

tuples!(A);
tuples!(A B);
tuples!(A B C);
tuples!(A B C D);
tuples!(A B C D E);
tuples!(A B C D E G);
tuples!(A B C D E G H);
tuples!(A B C D E G H I);

/// The input signature of one call: each argument tensor's dtype and shape, and which
/// arguments are the same tensor (a program reads an aliased argument from one slot).
/// Variables are not part of it: a variable's dtype and shape never change (`assign`
/// refuses others), and the program holds the variables themselves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Signature {
    args: Vec<(DType, Shape)>,
    /// For each argument, the position of its first occurrence.
    aliases: Vec<usize>,
}

impl Signature {
    pub fn of(args: &[&Tensor]) -> Self {
        Signature {
            args: args.iter().map(|t| (t.dtype(), t.shape().clone())).collect(),
            aliases: first_occurrences(args),
        }
    }

    /// Whether `args` have this signature (compared in place: nothing is built).
    pub fn matches(&self, args: &[&Tensor]) -> bool {
        self.args.len() == args.len()
            && self.args.iter().zip(args).all(|((dtype, shape), t)| *dtype == t.dtype() && shape == t.shape())
            && first_occurrences_match(args, &self.aliases)
    }

    /// What differs from `args`, for the log line that says why a trace happened.
    pub fn difference(&self, args: &[&Tensor]) -> String {
        if self.args.len() != args.len() {
            return format!("{} arguments instead of {}", args.len(), self.args.len());
        }
        for (i, ((dtype, shape), t)) in self.args.iter().zip(args).enumerate() {
            if *dtype != t.dtype() || shape != t.shape() {
                return format!("argument {i} is {} {} (was {shape} {dtype})", t.shape(), t.dtype());
            }
        }
        "other arguments are the same tensor".into()
    }
}

fn first_occurrences_match(args: &[&Tensor], aliases: &[usize]) -> bool {
    args.iter().enumerate().all(|(i, t)| args[..i].iter().position(|u| u.id() == t.id()).unwrap_or(i) == aliases[i])
}

fn first_occurrences(args: &[&Tensor]) -> Vec<usize> {
    args.iter().enumerate().map(|(i, t)| args[..i].iter().position(|u| u.id() == t.id()).unwrap_or(i)).collect()
}
