//! The backward pass: from the targets' seeds back to the sources, through the recorded
//! ops that connect them.

use std::collections::{HashMap, HashSet};

use tapeflow_dtype::{DType, Error, Result, Shape, TensorId};

use crate::context::Entry;
use crate::operand::GradSource;
use crate::ops::binary::add_gradients;
use crate::runtime::Tensor;
use crate::tape::warn_if_int;

/// What `gradient` returns for a source that the targets do not depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnconnectedGradients {
    /// `None` (TensorFlow's default).
    #[default]
    None,
    /// Zeros of the source's shape and dtype.
    Zero,
}

/// Options of [`GradientTape::gradient_with`](crate::GradientTape::gradient_with).
#[derive(Debug, Clone, Default)]
pub struct GradientOptions {
    pub(crate) output_gradients: Option<Vec<Tensor>>,
    pub(crate) unconnected: UnconnectedGradients,
}

impl GradientOptions {
    /// Seeds, one per target with the target's shape and dtype: the result is the
    /// vector–Jacobian product `sum(seed * d target / d source)`. Default: ones.
    pub fn output_gradients(mut self, seeds: Vec<Tensor>) -> Self {
        self.output_gradients = Some(seeds);
        self
    }

    /// What to return for unconnected sources.
    pub fn unconnected(mut self, unconnected: UnconnectedGradients) -> Self {
        self.unconnected = unconnected;
        self
    }
}

/// A tape's recorded ops and tracked ids, as one gradient computation reads them.
pub(crate) struct Snapshot {
    pub entries: Vec<Entry>,
    pub tracked: HashSet<TensorId>,
}

/// A source as the backward pass needs it.
#[derive(Clone)]
pub(crate) struct SourceInfo {
    pub id: TensorId,
    pub shape: Shape,
    pub dtype: DType,
}

/// One validated gradient request: seeds per target id, sources, options.
pub(crate) struct Request {
    pub seeds: Vec<(TensorId, Tensor)>,
    pub sources: Vec<SourceInfo>,
    pub unconnected: UnconnectedGradients,
}

impl Request {
    pub fn new<S: GradSource>(targets: &[Tensor], sources: &[S], options: &GradientOptions) -> Result<Self> {
        let seeds = match &options.output_gradients {
            Some(seeds) => {
                if seeds.len() != targets.len() {
                    return Err(Error::InvalidArgument {
                        op: "gradient",
                        reason: format!("{} output gradients given for {} targets", seeds.len(), targets.len()),
                    });
                }
                for (t, s) in targets.iter().zip(seeds) {
                    if t.shape() != s.shape() || t.dtype() != s.dtype() {
                        return Err(Error::ShapeMismatch {
                            op: "gradient",
                            lhs: t.shape().clone(),
                            lhs_dtype: t.dtype(),
                            rhs: s.shape().clone(),
                            rhs_dtype: s.dtype(),
                            reason: "an output gradient must have its target's shape and dtype".into(),
                        });
                    }
                }
                seeds.clone()
            }
            None => targets.iter().map(|t| Tensor::ones(t.shape().clone(), t.dtype())).collect(),
        };
        let seeds = targets
            .iter()
            .zip(seeds)
            .filter(|(t, _)| warn_if_int("target", t.dtype()))
            .map(|(t, s)| (t.id(), s))
            .collect();
        let sources = sources
            .iter()
            .map(|s| SourceInfo { id: s.source_id(), shape: s.source_shape(), dtype: s.source_dtype() })
            .collect::<Vec<_>>();
        for s in &sources {
            warn_if_int("source", s.dtype);
        }
        Ok(Request { seeds, sources, unconnected: options.unconnected })
    }
}

/// Gradients keyed by tensor id. The one place gradients are written: contributions are
/// summed (never overwritten) in the order the backward pass produces them, which is fixed
/// (reverse recording order), so results do not depend on timing.
#[derive(Default)]
pub(crate) struct Gradients {
    by_id: HashMap<TensorId, Tensor>,
}

impl Gradients {
    pub fn accumulate(&mut self, id: TensorId, grad: Tensor) -> Result<()> {
        let sum = match self.by_id.remove(&id) {
            Some(existing) => add_gradients(&existing, &grad)?,
            None => grad,
        };
        self.by_id.insert(id, sum);
        Ok(())
    }

    pub fn get(&self, id: &TensorId) -> Option<&Tensor> {
        self.by_id.get(id)
    }

    pub fn take(&mut self, id: &TensorId) -> Option<Tensor> {
        self.by_id.remove(id)
    }
}

/// Runs the backward pass of `request` over `snapshot`; one result per source.
pub(crate) fn run(snapshot: &Snapshot, request: &Request) -> Result<Vec<Option<Tensor>>> {
    // Ids that lead back to a source: a source the tape tracks, or the output of an op
    // with such an input. Recording order is topological, so one forward sweep suffices.
    let mut connected: HashSet<TensorId> = request
        .sources
        .iter()
        .filter(|s| s.dtype.is_float() && snapshot.tracked.contains(&s.id))
        .map(|s| s.id)
        .collect();
    let source_ids: HashSet<TensorId> = connected.clone();
    let live: Vec<bool> = snapshot
        .entries
        .iter()
        .map(|e| {
            let is_live = e.inputs.iter().any(|i| connected.contains(i));
            if is_live {
                connected.insert(e.output);
            }
            is_live
        })
        .collect();

    let mut grads = Gradients::default();
    for (id, seed) in &request.seeds {
        if connected.contains(id) {
            grads.accumulate(*id, seed.clone())?;
        }
    }

    for (entry, _) in snapshot.entries.iter().zip(&live).rev().filter(|(_, live)| **live) {
        let upstream = if source_ids.contains(&entry.output) {
            grads.get(&entry.output).cloned()
        } else {
            grads.take(&entry.output)
        };
        let Some(upstream) = upstream else { continue };
        let needs: Vec<bool> = entry.inputs.iter().map(|i| connected.contains(i)).collect();
        let input_grads = (entry.backward)(&upstream, &needs)?;
        for ((input, grad), needed) in entry.inputs.iter().zip(input_grads).zip(needs) {
            if let (Some(grad), true) = (grad, needed) {
                grads.accumulate(*input, grad)?;
            }
        }
    }

    Ok(request
        .sources
        .iter()
        .map(|s| {
            let found = if s.dtype.is_float() { grads.get(&s.id).cloned() } else { None };
            match (found, request.unconnected) {
                (Some(g), _) => Some(g),
                (None, UnconnectedGradients::Zero) => Some(Tensor::zeros(s.shape.clone(), s.dtype)),
                (None, UnconnectedGradients::None) => None,
            }
        })
        .collect())
}
