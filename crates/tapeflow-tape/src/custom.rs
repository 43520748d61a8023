//! User-defined differentiation: `custom_gradient` (TensorFlow's `tf.custom_gradient`) and
//! `recompute_grad` (`tf.recompute_grad`, gradient checkpointing). Both record one op whose
//! backward rule is a user closure; both compose with nested tapes and accumulators because
//! what the closures run are ordinary differentiable ops.

use std::sync::{Arc, Mutex};

use tapeflow_dtype::{Error, Result, Shape};

use crate::backward::GradientOptions;
use crate::context::{self, Rule};
use crate::forward::transposed_vjp;
use crate::operand::GradSource;
use crate::ops::TensorMath;
use crate::runtime::Tensor;
use crate::tape::GradientTape;
use crate::trace;
use crate::variable::Variable;

/// The gradient function of [`custom_gradient`]: the upstream gradient (of the value's
/// shape and dtype) to one gradient per input (`None`: no gradient for that input).
pub type GradFn = dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync;

/// `tf.custom_gradient`: `f` computes the value from `inputs` with recording paused (its ops
/// are not recorded on any tape or accumulator) and returns it with its gradient function,
/// which maps the upstream gradient to one gradient per input. The op records once, on
/// every active tape that watches an input.
///
/// The gradient function runs during `gradient`, as ordinary ops: when an outer tape
/// records there, they are recorded on it (second order through a custom gradient). A
/// wrong number of gradients, or one of another shape or dtype than its input, is an `Err`
/// naming `custom_gradient`. Forward mode (`ForwardAccumulator`) pushes tangents through the
/// gradient function transposed, as TensorFlow does: it must be linear in the upstream
/// gradient and written with differentiable ops.
pub fn custom_gradient<T, F, G>(inputs: &[T], f: F) -> Result<Tensor>
where
    T: TensorMath,
    F: FnOnce(&[Tensor]) -> Result<(Tensor, G)>,
    G: Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
{
    let xs: Vec<Tensor> = inputs.iter().map(TensorMath::to_tensor).collect();
    let (value, grad_fn) = {
        let _paused = context::pause(true);
        f(&xs)?
    };
    // An op's output of its own, also when `f` hands back an input unchanged.
    let value = trace::op("custom_gradient", [&value], |[value]| Ok(value.with_new_id()))?;
    let grad_fn: Arc<GradFn> = Arc::new(grad_fn);
    let signature: Arc<[(Shape, tapeflow_dtype::DType)]> =
        xs.iter().map(|x| (x.shape().clone(), x.dtype())).collect::<Vec<_>>().into();
    let checked = {
        let (grad_fn, signature) = (Arc::clone(&grad_fn), Arc::clone(&signature));
        move |g: &Tensor| checked_gradients(&*grad_fn, &signature, g)
    };
    let checked = Arc::new(checked);
    let refs: Vec<&Tensor> = xs.iter().collect();
    let jvp = {
        let checked = Arc::clone(&checked);
        let value = value.clone();
        move |t: &[Option<Tensor>]| transposed_vjp("custom_gradient", &|u| checked(u), &value, t)
    };
    context::record_closure(&refs, &value, jvp, || {
        Arc::new(move |g: &Tensor, needs: &[bool]| {
            let mut grads = checked(g)?;
            for (grad, &need) in grads.iter_mut().zip(needs) {
                if !need {
                    *grad = None;
                }
            }
            Ok(grads)
        })
    });
    Ok(value)
}

/// `grad_fn(g)`, checked against the inputs' shapes and dtypes.
fn checked_gradients(
    grad_fn: &GradFn,
    signature: &[(Shape, tapeflow_dtype::DType)],
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    const OP: &str = "custom_gradient";
    let grads = grad_fn(g)?;
    if grads.len() != signature.len() {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "the gradient function returned {} gradients for {} inputs (upstream {} {})",
                grads.len(),
                signature.len(),
                g.shape(),
                g.dtype()
            ),
        });
    }
    for (i, (grad, (shape, dtype))) in grads.iter().zip(signature).enumerate() {
        if let Some(grad) = grad
            && (grad.shape() != shape || grad.dtype() != *dtype)
        {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: shape.clone(),
                lhs_dtype: *dtype,
                rhs: grad.shape().clone(),
                rhs_dtype: grad.dtype(),
                reason: format!("the gradient of input {i} must have that input's shape and dtype"),
            });
        }
    }
    Ok(grads)
}

/// The variables a running `recompute_grad` block reads, in the order first read.
#[derive(Default)]
pub(crate) struct AccessLog {
    read: Mutex<Vec<Variable>>,
}

impl AccessLog {
    /// Notes a read of `variable`.
    pub(crate) fn note(&self, variable: &Variable) {
        let mut read = self.read.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !read.iter().any(|v| v.handle_id() == variable.handle_id()) {
            read.push(variable.clone());
        }
    }

    fn take(&self) -> Vec<Variable> {
        std::mem::take(&mut *self.read.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// Takes an access log off this thread when the block ends, also on unwinding.
struct LogGuard<'a>(&'a Arc<AccessLog>);

impl Drop for LogGuard<'_> {
    fn drop(&mut self) {
        context::with_active(|a| {
            if let Some(i) = a.access_logs.iter().rposition(|l| Arc::ptr_eq(l, self.0)) {
                a.access_logs.remove(i);
            }
        });
    }
}

/// A block for [`recompute_grad`]: from its inputs, its output.
pub type Block = dyn Fn(&[Tensor]) -> Result<Tensor> + Send + Sync;

/// `tf.recompute_grad` (gradient checkpointing): `f(inputs)`, recorded as one op that keeps
/// only its inputs and the variables `f` reads (found by watching its accesses), not `f`'s
/// intermediates. The backward pass runs `f` again under a tape of its own and takes its
/// vector-Jacobian product, so gradients equal those of plain `f` bit for bit (the same ops
/// on the same values), at the cost of a second forward pass of the block.
///
/// Variables are read again when the backward pass runs: assigning one in between changes
/// what the recomputation sees (as in TensorFlow). Inside a `ForwardAccumulator`, the block
/// runs and records as plain `f` does (the tangents flow through its own ops), so it saves no
/// memory there.
pub fn recompute_grad<T, F>(inputs: &[T], f: F) -> Result<Tensor>
where
    T: TensorMath,
    F: Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
{
    let xs: Vec<Tensor> = inputs.iter().map(TensorMath::to_tensor).collect();
    if context::with_active(|a| !a.accs.is_empty()) || context::nothing_records() {
        // Nothing to save memory on (nothing records), or tangents must flow through the
        // block's own ops.
        return f(&xs);
    }
    let log = Arc::new(AccessLog::default());
    let out = {
        let _paused = context::pause(false);
        context::with_active(|a| a.access_logs.push(Arc::clone(&log)));
        let _log = LogGuard(&log);
        f(&xs)?
    };
    let variables = log.take();
    // The reads, now as accesses on the active tapes (which watch trainable variables read
    // in their scope), so that the variables' gradients flow through them.
    let reads: Vec<Tensor> = variables.iter().map(Variable::read).collect();
    let out = trace::op("recompute_grad", [&out], |[out]| Ok(out.with_new_id()))?;
    let block: Arc<Block> = Arc::new(f);
    let mut refs: Vec<&Tensor> = xs.iter().collect();
    refs.extend(reads.iter());
    let (saved, seed_like) = (xs.clone(), out.clone());
    context::record_on_tapes_only(&refs, &out, || {
        Rule::Custom(Arc::new(move |g: &Tensor, needs: &[bool]| {
            recomputed_gradients(&*block, &saved, &variables, &seed_like, g, needs)
        }))
    });
    Ok(out)
}

/// The backward rule of a [`recompute_grad`] block: runs it again on fresh copies of its
/// inputs under a tape of its own and returns the VJP with `g`, inputs' gradients first,
/// then the variables'.
fn recomputed_gradients(
    block: &Block,
    inputs: &[Tensor],
    variables: &[Variable],
    out: &Tensor,
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    // Fresh ids for the block's own tape to watch, linked to the saved inputs by identity
    // ops on the tapes recording now (so a higher-order gradient reaches the inputs).
    let fresh: Vec<Tensor> = inputs
        .iter()
        .map(|x| {
            let copy = trace::op("identity", [x], |[x]| Ok(x.with_new_id()))?;
            context::record(&[x], &copy, || Rule::Identity);
            Ok(copy)
        })
        .collect::<Result<_>>()?;
    let tape = GradientTape::new().watch_accessed_variables(false);
    tape.watch(&fresh[..]);
    tape.watch(variables);
    let y = tape.record(|| block(&fresh))?;
    if y.shape() != out.shape() || y.dtype() != out.dtype() {
        return Err(Error::ShapeMismatch {
            op: "recompute_grad",
            lhs: out.shape().clone(),
            lhs_dtype: out.dtype(),
            rhs: y.shape().clone(),
            rhs_dtype: y.dtype(),
            reason: "the block gave another shape or dtype when run again".into(),
        });
    }
    let mut sources: Vec<&dyn GradSource> = Vec::with_capacity(fresh.len() + variables.len());
    sources.extend(fresh.iter().map(|t| t as &dyn GradSource));
    sources.extend(variables.iter().map(|v| v as &dyn GradSource));
    let mut grads =
        tape.gradients_with(&[&y], &sources, GradientOptions::default().output_gradients(vec![g.clone()]))?;
    for (grad, &need) in grads.iter_mut().zip(needs) {
        if !need {
            *grad = None;
        }
    }
    Ok(grads)
}
