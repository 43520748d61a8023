//! Forward mode: `ForwardAccumulator` (TensorFlow's `tf.autodiff.ForwardAccumulator`).
//!
//! An accumulator holds a tangent per tensor id. While it records, every op whose inputs
//! have tangents computes its output's tangent at once, by the op's JVP rule, which sits
//! beside the op's backward rule in its family file and is written with the same
//! differentiable ops. So JVP computations are themselves ops: an outer accumulator
//! differentiates an inner one's (higher-order forward derivatives), a tape records them
//! (reverse over forward), and an accumulator sees the ops a tape's backward pass runs
//! (forward over reverse: Hessian-vector products).
//!
//! Nesting follows TensorFlow's: an accumulator's JVP ops are hidden from itself and from the
//! accumulators inside it, and seen by those outside (`context::record_forward`).

use std::sync::{Arc, Mutex, MutexGuard};

use tapeflow_dtype::{Error, Result, TensorId};

use crate::backward::UnconnectedGradients;
use crate::context::{self, CustomRule, IdMap, Rule};
use crate::operand::GradSource;
use crate::ops::binary::add_gradients;
use crate::ops::{TensorMath, binary, matmul, reduce, shape, unary};
use crate::runtime::Tensor;
use crate::tape::GradientTape;

/// A tangent as an accumulator keeps it: the tensor, or the error of the op on the way
/// that had no JVP rule (reported by `jvp` of anything computed from it).
pub(crate) type Tangent = std::result::Result<Tensor, Error>;

/// An accumulator's shared state: the tangent of every tensor (and watched variable
/// handle) it has one for.
#[derive(Default)]
pub(crate) struct AccCore {
    tangents: Mutex<IdMap<Tangent>>,
}

impl AccCore {
    fn lock(&self) -> MutexGuard<'_, IdMap<Tangent>> {
        // Every update is one insert: the map stays valid after a panic elsewhere.
        self.tangents.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tangents of `inputs`, one per input (`None`: zero).
    pub(crate) fn tangents_of(&self, inputs: &[&Tensor]) -> Vec<Option<Tangent>> {
        let map = self.lock();
        if map.is_empty() {
            return vec![None; inputs.len()];
        }
        inputs.iter().map(|t| map.get(&t.id()).cloned()).collect()
    }

    /// The tangent of `id`, if any.
    pub(crate) fn tangent(&self, id: TensorId) -> Option<Tangent> {
        self.lock().get(&id).cloned()
    }

    /// Sets the tangent of `id`.
    pub(crate) fn set_tangent(&self, id: TensorId, tangent: Tangent) {
        self.lock().insert(id, tangent);
    }
}

/// TensorFlow's `tf.autodiff.ForwardAccumulator`: Jacobian-vector products in one forward
/// pass. Give each primal (a tensor or a variable) its tangent, run the computation inside
/// [`record`](Self::record), and read any result's tangent with [`jvp`](Self::jvp).
///
/// ```
/// use tapeflow_tape::{ForwardAccumulator, TensorMath, constant};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let x = constant([1.0, 2.0]);
/// let acc = ForwardAccumulator::new().primal(&x, &constant([1.0, 1.0]))?;
/// let y = acc.record(|| x.square()?.sum_all())?;           // y = Σ x²
/// assert_eq!(acc.jvp(&y)?.unwrap().to_scalar::<f32>()?, 6.0); // Σ 2x·v
/// # Ok(()) }
/// ```
pub struct ForwardAccumulator {
    core: Arc<AccCore>,
}

impl Default for ForwardAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

/// Takes the accumulator off this thread when its `record` scope ends, also on unwinding.
struct RecordGuard<'a> {
    core: &'a Arc<AccCore>,
    pushed: bool,
}

impl Drop for RecordGuard<'_> {
    fn drop(&mut self) {
        if self.pushed {
            context::with_active(|a| {
                if let Some(i) = a.accs.iter().rposition(|c| Arc::ptr_eq(c, self.core)) {
                    a.accs.remove(i);
                }
            });
        }
    }
}

impl ForwardAccumulator {
    /// An accumulator with no primals.
    pub fn new() -> Self {
        ForwardAccumulator { core: Arc::new(AccCore::default()) }
    }

    /// Watches `primal` (a tensor or a variable) with `tangent`, which must have its shape
    /// and dtype (a float dtype).
    pub fn primal(self, primal: impl GradSource, tangent: &Tensor) -> Result<Self> {
        const OP: &str = "ForwardAccumulator.primal";
        let (shape, dtype) = (primal.source_shape(), primal.source_dtype());
        if !dtype.is_float() {
            return Err(Error::UnsupportedDType { op: OP, shape, dtype });
        }
        if tangent.shape() != &shape || tangent.dtype() != dtype {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: shape,
                lhs_dtype: dtype,
                rhs: tangent.shape().clone(),
                rhs_dtype: tangent.dtype(),
                reason: "a tangent must have its primal's shape and dtype".into(),
            });
        }
        self.core.set_tangent(primal.source_id(), Ok(tangent.clone()));
        Ok(self)
    }

    /// Runs `f` with this accumulator recording and returns what `f` returns: every op `f`
    /// runs on a tensor with a tangent gives its output one. Scopes nest with tapes' and
    /// other accumulators' scopes.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        let pushed = context::with_active(|a| {
            if a.accs.iter().any(|c| Arc::ptr_eq(c, &self.core)) {
                return false;
            }
            a.accs.push(Arc::clone(&self.core));
            true
        });
        let _guard = RecordGuard { core: &self.core, pushed };
        f()
    }

    /// The tangent of `target` (the Jacobian-vector product of the recorded computation
    /// with the primals' tangents): `None` where `target` was not computed from a primal
    /// (or is int32), an `Err` where it was computed through an op without a JVP rule.
    pub fn jvp(&self, target: impl GradSource) -> Result<Option<Tensor>> {
        self.jvp_with(target, UnconnectedGradients::None)
    }

    /// [`jvp`](Self::jvp), with zeros of `target`'s shape instead of `None` when
    /// `unconnected` is [`UnconnectedGradients::Zero`].
    pub fn jvp_with(&self, target: impl GradSource, unconnected: UnconnectedGradients) -> Result<Option<Tensor>> {
        let tangent = if target.source_dtype().is_float() { self.core.tangent(target.source_id()) } else { None };
        match (tangent, unconnected) {
            (Some(Ok(t)), _) => Ok(Some(t)),
            (Some(Err(e)), _) => Err(e),
            (None, UnconnectedGradients::None) => Ok(None),
            (None, UnconnectedGradients::Zero) => Ok(Some(Tensor::zeros(target.source_shape(), target.source_dtype()))),
        }
    }
}

/// A computed tangent brought to the op output's shape and dtype: rules may return a
/// tangent that still broadcasts (`a + b` with a tangent for the smaller operand only).
pub(crate) fn fit_tangent(t: Tensor, output: &Tensor) -> Result<Tensor> {
    let t = if t.dtype() == output.dtype() { t } else { shape::cast(&t, output.dtype())? };
    if t.shape() == output.shape() { Ok(t) } else { shape::broadcast_to(&t, output.shape()) }
}

/// The tangent of input `i`; an `Err` if it has none (a JVP rule of an op whose only float
/// input is `i` runs only when that input has a tangent).
pub(crate) fn tangent_at(tangents: &[Option<Tensor>], i: usize) -> Result<&Tensor> {
    tangents.get(i).and_then(Option::as_ref).ok_or_else(|| Error::InvalidArgument {
        op: "ForwardAccumulator",
        reason: format!("a JVP rule needs the tangent of input {i}, which has none"),
    })
}

/// `Σᵢ term(i, tᵢ)` over the inputs that have a tangent: the JVP of an op that is linear in
/// each input separately (`conv(x, w)`: `conv(tₓ, w) + conv(x, t_w)`).
pub(crate) fn sum_of_terms(
    tangents: &[Option<Tensor>],
    mut term: impl FnMut(usize, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (i, t) in tangents.iter().enumerate() {
        if let Some(t) = t {
            let part = term(i, t)?;
            total = Some(match total {
                None => part,
                Some(sum) => add_gradients(&sum, &part)?,
            });
        }
    }
    total.ok_or_else(|| Error::InvalidArgument {
        op: "ForwardAccumulator",
        reason: "a JVP rule ran without any input tangent".into(),
    })
}

/// `Σ` of a binary rule's two JVP terms (either may be absent), for `binary::jvp` and
/// `matmul::jvp`.
pub(crate) fn two_terms(a: Option<Result<Tensor>>, b: Option<Result<Tensor>>) -> Result<Tensor> {
    match (a.transpose()?, b.transpose()?) {
        (Some(a), Some(b)) => add_gradients(&a, &b),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => {
            Err(Error::InvalidArgument { op: "ForwardAccumulator", reason: "a JVP rule produced no term".into() })
        }
    }
}

/// The JVP of an op known only by its VJP (`vjp(u)`, one gradient per input, linear in
/// `u`): `J·t = ∂/∂u ⟨vjpᵢ(u), tᵢ⟩`, the gradient with respect to `u` of the VJP paired with
/// the tangents (TensorFlow's "double-backward" trick). Exact at any `u`, since the pairing is
/// linear in it; zeros are used. `op` names the op when the VJP is not differentiable in `u`.
pub(crate) fn transposed_vjp(
    op: &'static str,
    vjp: &dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>>,
    output: &Tensor,
    tangents: &[Option<Tensor>],
) -> Result<Tensor> {
    let u = Tensor::zeros(output.shape().clone(), output.dtype());
    let tape = GradientTape::new();
    tape.watch(&u);
    let paired = tape.record(|| -> Result<Option<Tensor>> {
        let grads = vjp(&u)?;
        let mut total: Option<Tensor> = None;
        for (g, t) in grads.iter().zip(tangents) {
            if let (Some(g), Some(t)) = (g, t) {
                let term = (g * t)?.sum_all()?;
                total = Some(match total {
                    None => term,
                    Some(sum) => add_gradients(&sum, &term)?,
                });
            }
        }
        Ok(total)
    })?;
    let Some(paired) = paired else {
        // No input with a tangent gets a gradient: the output does not depend on them.
        return Ok(Tensor::zeros(output.shape().clone(), output.dtype()));
    };
    tape.gradient(&paired, &u)?.ok_or_else(|| Error::InvalidArgument {
        op,
        reason: "its gradient function is not differentiable in the upstream gradient (it must be written \
                 with differentiable ops), so ForwardAccumulator cannot push a tangent through it"
            .into(),
    })
}

impl Rule {
    /// The JVP of the op this rule goes back through: from the tangents of its `inputs`
    /// (`None`: zero), the tangent of `output`. Each variant's rule is its family's `jvp`.
    pub(crate) fn jvp(&self, inputs: &[&Tensor], output: &Tensor, t: &[Option<Tensor>]) -> Result<Tensor> {
        let at = |i: usize| t.get(i).and_then(Option::as_ref);
        match self {
            Rule::Identity => tangent_at(t, 0).cloned(),
            Rule::Unary { op, x, y } => unary::jvp(*op, x, y, tangent_at(t, 0)?),
            Rule::Binary { op, a, b, out } => binary::jvp(*op, a, b, out.as_deref(), at(0), at(1)),
            Rule::AddSub { sub, .. } => binary::add_sub_jvp(*sub, at(0), at(1)),
            Rule::Matmul { a, b, transpose_a, transpose_b } => {
                matmul::jvp(a, b, *transpose_a, *transpose_b, at(0), at(1))
            }
            Rule::Reduce { op, x, y, axes } => reduce::jvp(*op, x, y, axes, tangent_at(t, 0)?),
            Rule::Reshape { .. } => shape::reshape(tangent_at(t, 0)?, &shape::signed(output.shape())),
            Rule::BroadcastTo { .. } => shape::broadcast_to(tangent_at(t, 0)?, output.shape()),
            Rule::Transpose { inverse } => shape::transpose_jvp(tangent_at(t, 0)?, inverse),
            Rule::Cast { .. } => shape::cast(tangent_at(t, 0)?, output.dtype()),
            Rule::Custom(rule) => custom_rule_jvp(rule, inputs, output, t),
            Rule::Batchable(rule) => {
                let needs = vec![true; inputs.len()];
                transposed_vjp("batchable op", &|u| rule(u, &needs, false), output, t)
            }
        }
    }
}

/// The JVP of a closure rule by [`transposed_vjp`].
fn custom_rule_jvp(rule: &CustomRule, inputs: &[&Tensor], output: &Tensor, t: &[Option<Tensor>]) -> Result<Tensor> {
    let needs: Vec<bool> = t.iter().map(Option::is_some).collect();
    debug_assert_eq!(needs.len(), inputs.len());
    transposed_vjp("custom op", &|u| rule(u, &needs), output, t)
}
