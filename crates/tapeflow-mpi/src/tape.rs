//! `DistributedGradientTape`: a `GradientTape` whose gradients are the mean over ranks.

use std::borrow::Borrow;

use tapeflow_dtype::{Error, Result};
use tapeflow_tape::{GradSource, GradientOptions, GradientSink, GradientTape, Tensor, Variable, Watchable};

use crate::bucket::{DEFAULT_BUCKET_BYTES, Layout};
use crate::collective::describe;
use crate::meta::Signature;
use crate::stream::{self, Reducer};
use crate::world::World;

/// Horovod's `hvd.DistributedGradientTape`: TensorFlow's tape surface, whose
/// [`gradients`](Self::gradients) are the mean over every rank of each rank's gradients, so
/// an optimizer step after it is the same on every rank.
///
/// The gradients of one call are fused into buckets ([`bucket_bytes`](Self::bucket_bytes)),
/// one non-blocking all-reduce per bucket, laid out last source first: the backward pass
/// finishes the last layers' gradients first, and each bucket's all-reduce starts as soon
/// as its gradients are done, while the pass goes on ([`overlap`](Self::overlap)).
///
/// Before the pass, the ranks agree on the sources' shapes and dtypes (a difference is an
/// `Err` on every rank, and no pass runs). After it, flags in the last bucket tell every
/// rank whether each rank's own pass succeeded (a failure on one rank is an `Err` on every
/// rank) and which gradients exist: a gradient is `None` only if it is `None` on every
/// rank; where some ranks have one, the others count as zeros.
pub struct DistributedGradientTape<'w> {
    tape: GradientTape,
    world: &'w World,
    bucket_bytes: usize,
    overlap: bool,
}

impl<'w> DistributedGradientTape<'w> {
    /// Wraps `tape`; its gradients are averaged over `world`'s ranks.
    pub fn new(tape: GradientTape, world: &'w World) -> Self {
        DistributedGradientTape { tape, world, bucket_bytes: DEFAULT_BUCKET_BYTES, overlap: true }
    }

    /// The size of a fusion bucket in bytes (at least one f32 element; every rank must use
    /// the same, which the ranks check). Smaller buckets start the first all-reduce sooner
    /// and cost one more collective each; see docs/distributed.md for tuning.
    pub fn bucket_bytes(mut self, bytes: usize) -> Self {
        self.bucket_bytes = bytes;
        self
    }

    /// Whether buckets start during the backward pass, as soon as their gradients are done
    /// (the default), or only after the pass, all together. The gradients are the same bits
    /// either way; `false` is there to measure what the overlap gains (docs/distributed.md).
    pub fn overlap(mut self, overlap: bool) -> Self {
        self.overlap = overlap;
        self
    }

    /// A persistent tape may compute any number of gradients (each one a collective, so
    /// every rank asks for the same ones in the same order). Call before recording.
    pub fn persistent(self, persistent: bool) -> Self {
        DistributedGradientTape { tape: self.tape.persistent(persistent), ..self }
    }

    /// Whether the tape is persistent.
    pub fn is_persistent(&self) -> bool {
        self.tape.is_persistent()
    }

    /// Runs `f` with the tape recording (see [`GradientTape::record`]); local to the rank.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        self.tape.record(f)
    }

    /// Runs `f` with the tape paused (see [`GradientTape::stop_recording`]).
    pub fn stop_recording<T>(&self, f: impl FnOnce() -> T) -> T {
        self.tape.stop_recording(f)
    }

    /// Watches tensors and variables (see [`GradientTape::watch`]).
    pub fn watch(&self, items: impl Watchable) {
        self.tape.watch(items)
    }

    /// The variables the tape watches (see [`GradientTape::watched_variables`]).
    pub fn watched_variables(&self) -> Vec<Variable> {
        self.tape.watched_variables()
    }

    /// Forgets everything recorded and watched (see [`GradientTape::reset`]).
    pub fn reset(&self) {
        self.tape.reset()
    }

    /// The wrapped tape.
    pub fn tape(&self) -> &GradientTape {
        &self.tape
    }

    /// The gradient of `target` with respect to `source`, averaged over the ranks.
    pub fn gradient(&self, target: &Tensor, source: impl GradSource) -> Result<Option<Tensor>> {
        let mut grads = self.gradients_with(&[target], &[source], GradientOptions::default())?;
        Ok(grads.pop().flatten())
    }

    /// The gradients of the sum of `targets` with respect to each of `sources`, each the
    /// mean over the ranks (a collective: every rank calls it with the same sources).
    pub fn gradients<T: Borrow<Tensor>, S: GradSource>(
        &self,
        targets: &[T],
        sources: &[S],
    ) -> Result<Vec<Option<Tensor>>> {
        self.gradients_with(targets, sources, GradientOptions::default())
    }

    /// [`gradients`](Self::gradients) with options (output gradients, unconnected
    /// gradients as zeros), applied to each rank's own backward pass.
    pub fn gradients_with<T: Borrow<Tensor>, S: GradSource>(
        &self,
        targets: &[T],
        sources: &[S],
        options: GradientOptions,
    ) -> Result<Vec<Option<Tensor>>> {
        let op = "DistributedGradientTape::gradients";
        let signature = sources
            .iter()
            .fold(Signature::new(op).word(self.bucket_bytes as u64).word(sources.len() as u64), |s, src| {
                s.tensor(src.source_dtype(), src.source_shape().dims())
            })
            .value();
        let what = || {
            let shapes: Vec<String> =
                sources.iter().map(|s| describe(s.source_dtype(), s.source_shape().dims())).collect();
            format!("{} sources [{}] with buckets of {} bytes", sources.len(), shapes.join(", "), self.bucket_bytes)
        };
        // The ranks agree on the sources before the pass, so that buckets can move during it.
        self.world.agree(op, signature, false, what)?;
        if self.world.size() == 1 {
            // A world of one: its gradients are the mean.
            let local = self.tape.gradients_with(targets, sources, options)?;
            return check_local(op, local, sources);
        }
        // The float sources, last first: the backward pass finishes the last layers'
        // gradients first, so the first buckets fill (and start) first.
        let floats = sources.iter().filter(|s| s.source_dtype().is_float()).count();
        let layout = Layout::with_trailer(
            sources
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, s)| s.source_dtype().is_float())
                .map(|(k, s)| (k, s.source_dtype(), s.source_shape().dims().to_vec())),
            stream::trailer_len(floats, self.world.size()),
            self.bucket_bytes,
        );
        self.world.with_buffers(layout.total, |send, recv| {
            let own = mpi::request::scope(|scope| {
                let mut reducer = Reducer::new(op, self.world, &layout, scope, sources.len(), send, &mut *recv);
                let outcome = if self.overlap {
                    self.tape.gradients_streaming(targets, sources, options, &mut reducer)
                } else {
                    let outcome = self.tape.gradients_with(targets, sources, options);
                    for (k, g) in outcome.iter().flatten().enumerate() {
                        reducer.ready(k, g.as_ref());
                    }
                    outcome
                };
                reducer.finish(outcome)
            });
            let mut grads = own?;
            let present = stream::verdict(op, &layout, recv)?;
            let divisor = self.world.size() as f32;
            for (slot, present) in layout.slots.iter().zip(present) {
                if present {
                    grads[slot.index] = Some(layout.unpack(slot, recv, divisor)?);
                }
            }
            Ok(grads)
        })
    }
}

/// A world of one's gradients, checked as the fused buffer's layout checks them on more
/// ranks: each has its source's shape and dtype.
fn check_local<S: GradSource>(
    op: &'static str,
    grads: Vec<Option<Tensor>>,
    sources: &[S],
) -> Result<Vec<Option<Tensor>>> {
    for (g, s) in grads.iter().zip(sources) {
        if let Some(g) = g
            && (g.dtype() != s.source_dtype() || g.shape() != &s.source_shape())
        {
            return Err(Error::InvalidArgument {
                op,
                reason: format!(
                    "a gradient of {} for a source of {}",
                    describe(g.dtype(), g.dims()),
                    describe(s.source_dtype(), s.source_shape().dims())
                ),
            });
        }
    }
    Ok(grads)
}
