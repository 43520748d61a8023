//! Gradients handed out as the backward pass finishes them
//! ([`GradientTape::gradients_streaming`](crate::GradientTape::gradients_streaming)): what a
//! data-parallel tape needs to start reducing the last layers' gradients while the first
//! layers' are still being computed (PyTorch DDP's bucket hooks).
//!
//! A watched leaf (a variable or a watched tensor) is finished when every live op that
//! consumes it has run: no contribution can arrive after that. Its contributions are then
//! summed in the same order as at the end of a pass, so a streamed gradient is bitwise the
//! one the plain call returns.

use smallvec::SmallVec;
use tapeflow_dtype::Result;

use super::{Pass, Request, UnconnectedGradients, sum_in_order};
use crate::runtime::Tensor;

/// Receives each source's gradient as soon as the backward pass has finished it.
///
/// Called on the thread that asked for the gradients. [`ready`](Self::ready) is called once
/// per source (by its position in the caller's list) before the call returns `Ok`: a
/// watched leaf's as soon as its last consumer has run (after the op that finished it, or
/// after a stretch of the pass that ran on rayon), every other source's at the end, in
/// order. [`between_ops`](Self::between_ops) is called after each op the calling thread runs
/// itself, a chance to make progress on work that `ready` started. If the pass fails, the
/// remaining sources are never delivered and the call returns the `Err`.
pub trait GradientSink {
    /// Source `index`'s final gradient (`None` if it is unconnected and the options say so).
    fn ready(&mut self, index: usize, gradient: Option<&Tensor>);

    /// Between two backward ops on the calling thread. Does nothing unless overridden.
    fn between_ops(&mut self) {}
}

/// The pass's side of streaming: per watched leaf, the live consumers that have not run
/// yet; the leaves whose count reached zero wait in `done` for the calling thread.
#[derive(Default)]
pub(super) struct Stream {
    pending: SmallVec<[u32; 4]>,
    pub(super) done: Vec<usize>,
}

impl Stream {
    pub(super) fn new(leaves: usize) -> Self {
        Stream { pending: SmallVec::from_elem(0, leaves), done: Vec::new() }
    }

    /// One more live op consumes leaf `k`.
    pub(super) fn count(&mut self, k: usize) {
        self.pending[k] += 1;
    }

    /// One live consumer of leaf `k` has run.
    pub(super) fn consumed(&mut self, k: usize) {
        self.pending[k] -= 1;
        if self.pending[k] == 0 {
            self.done.push(k);
        }
    }
}

/// The calling thread's side: the sink, which sources each leaf stands for, and the
/// finished leaves' gradients (which the end of the pass then does not sum again).
pub(super) struct Delivery<'s> {
    sink: &'s mut dyn GradientSink,
    /// Per leaf, the positions of the sources that are that leaf (a source may be listed
    /// more than once).
    sources_of: Vec<SmallVec<[usize; 1]>>,
    /// Per leaf, its gradient once finished.
    pub(super) finished: Vec<Option<Option<Tensor>>>,
    /// Per source, whether `ready` was called for it.
    pub(super) delivered: Vec<bool>,
}

impl<'s> Delivery<'s> {
    pub(super) fn new(sink: &'s mut dyn GradientSink, pass: &Pass<'_>, request: &Request) -> Self {
        let leaves = pass.leaves.ids.len();
        let mut sources_of = vec![SmallVec::new(); leaves];
        for (j, s) in request.sources.iter().enumerate() {
            // Integer sources never flow (their gradient is `None`, delivered at the end).
            if let (true, Some(k)) = (s.dtype.is_float(), pass.leaves.position(&s.id)) {
                sources_of[k].push(j);
            }
        }
        Delivery { sink, sources_of, finished: vec![None; leaves], delivered: vec![false; request.sources.len()] }
    }

    /// Sums the leaves finished since the last call and hands them to the sink.
    pub(super) fn deliver(&mut self, pass: &mut Pass<'_>, request: &Request) -> Result<()> {
        while let Some(k) = pass.stream.as_mut().and_then(|stream| stream.done.pop()) {
            // Every leaf stands for at least one float source (the leaves are made from them).
            let Some(&first) = self.sources_of[k].first() else { continue };
            let parts = std::mem::take(&mut pass.leaves.grads[k]);
            let gradient = finalize(sum_in_order(parts, pass.first_order)?, request, first);
            for &j in &self.sources_of[k] {
                self.sink.ready(j, gradient.as_ref());
                self.delivered[j] = true;
            }
            self.finished[k] = Some(gradient);
        }
        Ok(())
    }

    pub(super) fn between_ops(&mut self) {
        self.sink.between_ops();
    }

    /// The sources not yet delivered, in order, at the end of the pass.
    pub(super) fn deliver_rest(&mut self, results: &[Option<Tensor>]) {
        for (j, g) in results.iter().enumerate() {
            if !self.delivered[j] {
                self.sink.ready(j, g.as_ref());
                self.delivered[j] = true;
            }
        }
    }
}

/// A source's result from its summed contributions: zeros or `None` when nothing flowed,
/// as the options say.
pub(super) fn finalize(sum: Option<Tensor>, request: &Request, source: usize) -> Option<Tensor> {
    let s = &request.sources[source];
    match (sum, request.unconnected) {
        (Some(g), _) => Some(g),
        (None, UnconnectedGradients::Zero) => Some(Tensor::zeros(s.shape.clone(), s.dtype)),
        (None, UnconnectedGradients::None) => None,
    }
}
