//! Mutable, shared tensors: model parameters.

use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tapeflow_dtype::{DType, Error, Result, Shape, TensorId};
use tapeflow_kernels::BinaryOp;

use crate::context;
use crate::operand::IntoOperand;
use crate::runtime::Tensor;
use crate::trace;

struct VariableInner {
    handle: TensorId,
    name: String,
    trainable: bool,
    value: RwLock<Tensor>,
}

/// A mutable tensor with a fixed shape and dtype, like `tf.Variable`. Handles are cheap
/// clones sharing one value. Reading it inside a recording tape is an *access*: a
/// trainable variable is watched on first access (unless the tape was built with
/// `watch_accessed_variables(false)`).
#[derive(Clone)]
pub struct Variable {
    inner: Arc<VariableInner>,
}

impl Variable {
    /// A trainable variable named `Variable:0` holding `value` (a tensor or a Rust literal:
    /// `Variable::new(20.0)` is float32, `Variable::new(30)` int32).
    pub fn new(value: impl Into<Tensor>) -> Self {
        Self::create(value.into(), true, None)
    }

    /// Like `tf.Variable(value, dtype=...)`: the value converted to `dtype`. Converting a
    /// float that is not a whole number (or is NaN or out of range) to int32 is an `Err`.
    pub fn with_dtype(value: impl Into<Tensor>, dtype: DType) -> Result<Self> {
        Self::builder(value).dtype(dtype).build()
    }

    /// A builder for the name, trainability and dtype.
    pub fn builder(value: impl Into<Tensor>) -> VariableBuilder {
        VariableBuilder { value: value.into(), trainable: true, name: None, dtype: None }
    }

    fn create(value: Tensor, trainable: bool, name: Option<String>) -> Self {
        let name = match name {
            Some(n) if n.contains(':') => n,
            Some(n) => format!("{n}:0"),
            None => "Variable:0".to_string(),
        };
        // A fresh id: the variable's value is never the same tensor as the caller's.
        let value = value.with_new_id();
        Variable {
            inner: Arc::new(VariableInner { handle: TensorId::fresh(), name, trainable, value: RwLock::new(value) }),
        }
    }

    /// The value, read as an access on every active tape (see the type's docs).
    pub fn read(&self) -> Tensor {
        let value = self.value_lock().clone();
        let value = context::read_variable(self, value);
        trace::read_variable(self, &value);
        value
    }

    /// The value, as TensorFlow's `Variable.value()`: inside a recording tape a read,
    /// recorded as an access exactly as [`read`](Self::read).
    pub fn value(&self) -> Tensor {
        self.read()
    }

    /// TensorFlow's `Variable.read_value()`: the same recorded read as [`read`](Self::read).
    pub fn read_value(&self) -> Tensor {
        self.read()
    }

    /// A snapshot of the current value that no tape or accumulator sees: not an access,
    /// never watched, no gradient flows through it (for metrics, logging, checkpoints).
    pub fn unrecorded_value(&self) -> Tensor {
        let value = self.current();
        trace::read_variable(self, &value);
        value
    }

    /// The current value, seen by no tape and no trace: the library's own reads inside a
    /// captured call (an optimizer's state, a generator's counter).
    pub(crate) fn current(&self) -> Tensor {
        self.value_lock().clone()
    }

    /// Puts `value` back (a failed trace or call undoing its writes); `value` is one this
    /// variable held, so its dtype and shape are the variable's.
    pub(crate) fn restore(&self, value: Tensor) {
        *self.value_write() = value;
    }

    /// The name, as TensorFlow shows it (`Variable:0` by default; a user name `w` is `w:0`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether tapes watch it automatically on access.
    pub fn trainable(&self) -> bool {
        self.inner.trainable
    }

    /// The id tapes know the variable by (stable across assignments).
    pub fn handle_id(&self) -> TensorId {
        self.inner.handle
    }

    /// The shape (fixed).
    pub fn shape(&self) -> Shape {
        self.value_lock().shape().clone()
    }

    /// The dimensions (fixed).
    pub fn dims(&self) -> Vec<usize> {
        self.value_lock().dims().to_vec()
    }

    /// The dtype (fixed).
    pub fn dtype(&self) -> DType {
        self.value_lock().dtype()
    }

    /// Replaces the value. The new value must have the variable's shape and dtype (a Rust
    /// literal adopts the dtype and works for scalar variables); otherwise `Err`, and the
    /// variable is unchanged.
    pub fn assign(&self, value: impl IntoOperand) -> Result<()> {
        let current = self.current();
        let new = value.into_operand().resolve(current.dtype(), "assign")?;
        check_same_kind("assign", &current, &new)?;
        let var = self.clone();
        trace::effect("AssignVariableOp", [&new], &[self], move |[new]| {
            *var.value_write() = new.with_new_id();
            Ok(())
        })
    }

    /// `self += delta`, atomically with respect to other `assign*` calls (no lost updates).
    /// `delta` must have the variable's dtype and broadcast to its shape without changing it.
    pub fn assign_add(&self, delta: impl IntoOperand) -> Result<()> {
        self.update("assign_add", BinaryOp::Add, delta)
    }

    /// `self -= delta`; see [`assign_add`](Self::assign_add).
    pub fn assign_sub(&self, delta: impl IntoOperand) -> Result<()> {
        self.update("assign_sub", BinaryOp::Sub, delta)
    }

    fn update(&self, op: &'static str, kind: BinaryOp, delta: impl IntoOperand) -> Result<()> {
        let current = self.current();
        let delta = delta.into_operand().resolve(current.dtype(), op)?;
        if delta.dtype() != current.dtype() {
            return Err(Error::dtype_mismatch(op, &current, &delta));
        }
        if current.dtype() == DType::Bool {
            // Truth values have no sum (TensorFlow has no bool AssignAdd either).
            return Err(Error::UnsupportedDType { op, shape: current.shape().clone(), dtype: current.dtype() });
        }
        let fits = tapeflow_kernels::layout::broadcast_dims(current.dims(), delta.dims())
            .is_some_and(|s| &s == current.shape());
        if !fits {
            return Err(Error::shape_mismatch(
                op,
                &current,
                &delta,
                "the update must broadcast to the variable's fixed shape",
            ));
        }
        drop(current);
        let var = self.clone();
        let name = if kind == BinaryOp::Add { "AssignAddVariableOp" } else { "AssignSubVariableOp" };
        trace::effect(name, [&delta], &[self], move |[delta]| {
            let mut guard = var.value_write();
            // Updates are not differentiable (as in TensorFlow): computed with the kernel.
            let new = tapeflow_kernels::binary(kind, &guard, delta)?;
            *guard = new;
            Ok(())
        })
    }

    /// Runs `f` on the value while holding the write lock, so the update is atomic with
    /// respect to `assign*` and other optimizer steps. `f` either overwrites the value's
    /// storage (when nothing else shares it) or replaces the value, keeping its shape and
    /// dtype, and changes nothing when it returns `Err`.
    pub(crate) fn update_in_place(&self, f: impl FnOnce(&mut Tensor) -> Result<()>) -> Result<()> {
        f(&mut self.value_write())
    }

    fn value_lock(&self) -> RwLockReadGuard<'_, Tensor> {
        self.inner.value.read().unwrap_or_else(|p| p.into_inner())
    }

    fn value_write(&self) -> RwLockWriteGuard<'_, Tensor> {
        self.inner.value.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn check_same_kind(op: &'static str, current: &Tensor, new: &Tensor) -> Result<()> {
    if current.dtype() != new.dtype() {
        return Err(Error::dtype_mismatch(op, current, new));
    }
    if current.shape() != new.shape() {
        return Err(Error::shape_mismatch(op, current, new, "a variable's shape is fixed"));
    }
    Ok(())
}

/// Builds a [`Variable`]: `Variable::builder(5.0).trainable(false).name("frozen").build()?`.
#[must_use]
pub struct VariableBuilder {
    value: Tensor,
    trainable: bool,
    name: Option<String>,
    dtype: Option<DType>,
}

impl VariableBuilder {
    /// Whether tapes watch the variable on access (default true).
    pub fn trainable(mut self, trainable: bool) -> Self {
        self.trainable = trainable;
        self
    }

    /// The name; TensorFlow's `:0` suffix is added unless the name has one.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Converts the initial value to `dtype`.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// The variable; `Err` if the value cannot be converted to the requested dtype exactly
    /// enough (a float that is not a whole int32 value into int32, a number other than 0
    /// and 1 into bool).
    pub fn build(self) -> Result<Variable> {
        let value = match self.dtype {
            Some(dtype) if dtype != self.value.dtype() => {
                let converted = self.value.to_dtype(dtype);
                if matches!(dtype, DType::I32 | DType::Bool) {
                    let exact = self.value.to_f64_vec().iter().zip(converted.to_f64_vec()).all(|(a, b)| *a == b);
                    if !exact {
                        return Err(Error::InvalidValue {
                            op: "Variable",
                            shape: self.value.shape().clone(),
                            dtype: self.value.dtype(),
                            reason: format!("the value has elements that are not {dtype} values"),
                        });
                    }
                }
                converted
            }
            _ => self.value,
        };
        Ok(Variable::create(value, self.trainable, self.name))
    }
}

impl fmt::Display for Variable {
    /// `<Variable 'Variable:0' shape=() dtype=float32, value=20.0>`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.unrecorded_value();
        write!(
            f,
            "<Variable '{}' shape={} dtype={}, value={}>",
            self.name(),
            value.shape(),
            value.dtype(),
            value.values_text()
        )
    }
}

impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
