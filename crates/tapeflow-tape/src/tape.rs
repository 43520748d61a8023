//! `GradientTape`: what records, what is watched, and the user-facing gradient calls.

use std::borrow::Borrow;
use std::sync::Arc;

use tapeflow_dtype::{Error, Result};

use crate::backward::{self, GradientOptions, GradientSink, Request};
use crate::context::{self, TapeCore};
use crate::jacobian::{self, JacobianOptions};
use crate::operand::{GradSource, WatchItem, Watchable, target_tensors};
use crate::runtime::Tensor;
use crate::variable::Variable;

/// TensorFlow's `tf.GradientTape`. The `with tf.GradientTape() as tape:` block is a
/// closure passed to [`record`](Self::record); ops run inside it on watched tensors and
/// variables are recorded, and [`gradient`](Self::gradient) differentiates through them.
///
/// ```
/// use tapeflow_tape::{GradientTape, TensorMath, Variable};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let x = Variable::new(3.0);
/// let tape = GradientTape::new();
/// let y = tape.record(|| x.pow(2.0))?;              // y = x²
/// let dy_dx = tape.gradient(&y, &x)?.unwrap();       // dy/dx = 2x = 6
/// assert_eq!(dy_dx.to_scalar::<f32>()?, 6.0);
/// # Ok(()) }
/// ```
pub struct GradientTape {
    core: Arc<TapeCore>,
}

impl Default for GradientTape {
    fn default() -> Self {
        Self::new()
    }
}

/// Restores the active-tape stack when a scope ends, also on unwinding.
struct ScopeGuard<'a> {
    core: &'a Arc<TapeCore>,
    pushed: bool,
}

impl Drop for ScopeGuard<'_> {
    fn drop(&mut self) {
        let depth = {
            let mut state = self.core.state();
            state.scope_depth = state.scope_depth.saturating_sub(1);
            state.scope_depth
        };
        if self.pushed || depth == 0 {
            context::remove(self.core);
        }
    }
}

/// Re-activates a paused tape when `stop_recording` ends, also on unwinding.
struct ResumeGuard<'a> {
    core: &'a Arc<TapeCore>,
    was_active: bool,
}

impl Drop for ResumeGuard<'_> {
    fn drop(&mut self) {
        if self.was_active {
            context::with_active(|a| {
                if let Some(i) = a.paused.iter().rposition(|t| Arc::ptr_eq(t, self.core)) {
                    a.paused.remove(i);
                }
            });
            context::push(self.core);
        }
    }
}

impl GradientTape {
    /// A non-persistent tape that watches accessed trainable variables.
    pub fn new() -> Self {
        GradientTape { core: Arc::new(TapeCore::new(false, true)) }
    }

    fn reconfigure(self, persistent: bool, watch_accessed: bool) -> Self {
        // Configuration is set before the tape first records, while it is still empty.
        GradientTape { core: Arc::new(TapeCore::new(persistent, watch_accessed)) }
    }

    /// A persistent tape may compute any number of gradients; it keeps what it recorded
    /// until it is dropped. Call before recording: reconfiguring starts a fresh tape.
    pub fn persistent(self, persistent: bool) -> Self {
        let watch = self.core.watch_accessed_variables;
        self.reconfigure(persistent, watch)
    }

    /// Whether trainable variables read inside `record` are watched automatically
    /// (default true). Call before recording: reconfiguring starts a fresh tape.
    pub fn watch_accessed_variables(self, watch: bool) -> Self {
        let persistent = self.core.persistent;
        self.reconfigure(persistent, watch)
    }

    /// Whether the tape is persistent.
    pub fn is_persistent(&self) -> bool {
        self.core.persistent
    }

    /// Runs `f` with this tape recording (the body of TensorFlow's `with` block) and returns
    /// what `f` returns. Scopes may be re-entered and nested with other tapes' scopes.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        let pushed = !context::is_active(&self.core);
        self.core.state().scope_depth += 1;
        if pushed {
            context::push(&self.core);
        }
        let _guard = ScopeGuard { core: &self.core, pushed };
        f()
    }

    /// Runs `f` with this tape paused: nothing `f` does is recorded on it.
    pub fn stop_recording<T>(&self, f: impl FnOnce() -> T) -> T {
        let was_active = context::remove(&self.core);
        if was_active {
            context::with_active(|a| a.paused.push(Arc::clone(&self.core)));
        }
        let _guard = ResumeGuard { core: &self.core, was_active };
        f()
    }

    /// Watches tensors and variables (one, or an array/slice/`Vec` of them): gradients can
    /// then be taken with respect to them. Watching an int32 value logs a warning and has no
    /// effect on gradients.
    pub fn watch(&self, items: impl Watchable) {
        let mut state = self.core.state();
        items.each_watch_item(&mut |item| match item {
            WatchItem::Tensor(t) => {
                if warn_if_int("watched", t.dtype()) {
                    state.track_leaf(t.id());
                }
            }
            WatchItem::Variable(v) => {
                if warn_if_int("watched", v.dtype()) && state.track_leaf(v.handle_id()) {
                    state.variables.push(v.clone());
                }
            }
        });
    }

    /// The variables this tape watches, in the order they were first watched.
    pub fn watched_variables(&self) -> Vec<Variable> {
        self.core.state().variables.clone()
    }

    /// Forgets everything recorded and watched; the tape may be used again.
    pub fn reset(&self) {
        let mut state = self.core.state();
        state.entries.clear();
        state.tracked.clear();
        state.variables.clear();
        state.read_while_paused.clear();
        state.used = false;
    }

    /// The gradient of `target` (summed over its elements if not a scalar) with respect to
    /// `source`: `None` if they are not connected on this tape, or if either is int32.
    pub fn gradient(&self, target: &Tensor, source: impl GradSource) -> Result<Option<Tensor>> {
        self.gradient_with(target, source, GradientOptions::default())
    }

    /// [`gradient`](Self::gradient) with options (output gradients, unconnected gradients).
    pub fn gradient_with(
        &self,
        target: &Tensor,
        source: impl GradSource,
        options: GradientOptions,
    ) -> Result<Option<Tensor>> {
        let mut grads = self.gradients_with(&[target], &[source], options)?;
        Ok(grads.pop().flatten())
    }

    /// The gradients of the sum of `targets` with respect to each of `sources`.
    pub fn gradients<T: Borrow<Tensor>, S: GradSource>(
        &self,
        targets: &[T],
        sources: &[S],
    ) -> Result<Vec<Option<Tensor>>> {
        self.gradients_with(targets, sources, GradientOptions::default())
    }

    /// [`gradients`](Self::gradients) with options.
    pub fn gradients_with<T: Borrow<Tensor>, S: GradSource>(
        &self,
        targets: &[T],
        sources: &[S],
        options: GradientOptions,
    ) -> Result<Vec<Option<Tensor>>> {
        self.gradients_inner(targets, sources, options, None)
    }

    /// [`gradients_with`](Self::gradients_with), handing each source's gradient to `sink`
    /// as soon as the backward pass has finished it (a variable's once every op that read
    /// it has run its backward rule), while the pass goes on. The result is the same as
    /// `gradients_with`'s, bit for bit. A data-parallel tape uses it to start all-reducing
    /// the last layers' gradients before the first layers' are computed.
    pub fn gradients_streaming<T: Borrow<Tensor>, S: GradSource>(
        &self,
        targets: &[T],
        sources: &[S],
        options: GradientOptions,
        sink: &mut dyn GradientSink,
    ) -> Result<Vec<Option<Tensor>>> {
        self.gradients_inner(targets, sources, options, Some(sink))
    }

    fn gradients_inner<T: Borrow<Tensor>, S: GradSource>(
        &self,
        targets: &[T],
        sources: &[S],
        options: GradientOptions,
        sink: Option<&mut dyn GradientSink>,
    ) -> Result<Vec<Option<Tensor>>> {
        let targets = target_tensors(targets);
        let request = Request::new(&targets, sources, &options)?;
        let snapshot = self.take_for_gradient()?;
        // The snapshot is this computation's own (a copy, for persistent tapes): the pass
        // drops each op's saved tensors as soon as the op has run.
        let grads = backward::run(std::borrow::Cow::Owned(snapshot.entries), &snapshot.tracked, &request, sink);
        if let Ok(grads) = &grads
            && log::log_enabled!(log::Level::Debug)
        {
            for (source, grad) in sources.iter().zip(grads) {
                if grad.is_none() {
                    log::debug!("{}", self.why_none(source, &snapshot.tracked));
                }
            }
        }
        context::recycle(context::Entries::default(), snapshot.tracked);
        grads
    }

    /// Why `gradient` gives `None` for `source`, in TensorFlow's terms (the debug log line).
    fn why_none(&self, source: &impl GradSource, tracked: &context::IdMap<context::Link>) -> String {
        let what = match source.source_variable() {
            Some(v) => format!("variable '{}' ({} {})", v.name(), v.shape(), v.dtype()),
            None => format!("tensor {} {}", source.source_shape(), source.source_dtype()),
        };
        let why = if !source.source_dtype().is_float() {
            format!("its dtype is {}: gradients flow through float dtypes only", source.source_dtype())
        } else if tracked.contains_key(&source.source_id()) {
            "it is not connected to the target: no recorded op links them (the path goes through stop_gradient, \
             an integer cast, an op without a gradient such as floor, argmax or a comparison, or the target was \
             computed outside record)"
                .to_string()
        } else {
            match source.source_variable() {
                Some(v) if !v.trainable() => {
                    "it was never watched: it is not trainable, so reading it does not watch it (watch it with \
                     tape.watch)"
                        .to_string()
                }
                Some(_) if !self.core.watch_accessed_variables => {
                    "it was never watched: the tape has watch_accessed_variables(false) and it was not passed to \
                     tape.watch"
                        .to_string()
                }
                Some(v) if self.core.state().read_while_paused.contains(&v.handle_id()) => {
                    "it was never watched: it was read only under stop_recording".to_string()
                }
                Some(_) => "it was never watched: it was not read while the tape recorded".to_string(),
                None => {
                    "it was never watched: call tape.watch on it (only variables are watched when read)".to_string()
                }
            }
        };
        format!("gradient is None for {what}: {why}")
    }

    /// `jacobian(target, source)`: shape `target.shape ++ source.shape`, row `i` the
    /// gradient of element `i` of `target`.
    pub fn jacobian(&self, target: &Tensor, source: impl GradSource) -> Result<Option<Tensor>> {
        self.jacobian_with(target, source, JacobianOptions::default())
    }

    /// [`jacobian`](Self::jacobian) with options.
    pub fn jacobian_with(
        &self,
        target: &Tensor,
        source: impl GradSource,
        options: JacobianOptions,
    ) -> Result<Option<Tensor>> {
        let snapshot = self.take_for_gradient()?;
        jacobian::jacobian(&snapshot, target, &source, &options)
    }

    /// `batch_jacobian(target, source)` for `target = [B, ...]`, `source = [B, ...]` where
    /// row `b` of `target` depends only on row `b` of `source`: shape
    /// `[B] ++ target.shape[1:] ++ source.shape[1:]`.
    pub fn batch_jacobian(&self, target: &Tensor, source: impl GradSource) -> Result<Option<Tensor>> {
        self.batch_jacobian_with(target, source, JacobianOptions::default())
    }

    /// [`batch_jacobian`](Self::batch_jacobian) with options.
    pub fn batch_jacobian_with(
        &self,
        target: &Tensor,
        source: impl GradSource,
        options: JacobianOptions,
    ) -> Result<Option<Tensor>> {
        jacobian::check_batch(target, &source)?;
        let snapshot = self.take_for_gradient()?;
        jacobian::batch_jacobian(&snapshot, target, &source, &options)
    }

    /// What a gradient computation reads: a snapshot of the entries (persistent tapes) or
    /// the entries themselves (non-persistent: the tape releases everything now).
    fn take_for_gradient(&self) -> Result<backward::Snapshot> {
        let mut state = self.core.state();
        if self.core.persistent {
            return Ok(backward::Snapshot { entries: state.entries.clone(), tracked: state.tracked.clone() });
        }
        if state.used {
            return Err(Error::TapeReused);
        }
        state.used = true;
        let snapshot = backward::Snapshot {
            entries: std::mem::take(&mut state.entries),
            tracked: std::mem::take(&mut state.tracked),
        };
        drop(state);
        // As TensorFlow does: a non-persistent tape asked for gradients inside its own
        // scope stops recording, so the gradient computation is not recorded on it.
        context::remove(&self.core);
        Ok(snapshot)
    }
}

/// Logs TensorFlow's warning for an int32 value where a float is needed; true if float.
pub(crate) fn warn_if_int(role: &str, dtype: tapeflow_dtype::DType) -> bool {
    if dtype.is_float() {
        return true;
    }
    match role {
        "watched" => log::warn!("The dtype of the watched tensor must be floating (e.g. float32), got {dtype}"),
        _ => log::warn!(
            "The dtype of the {role} tensor must be floating (e.g. float32) when calling GradientTape::gradient, got {dtype}"
        ),
    }
    false
}
