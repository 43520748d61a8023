//! What a backward pass is asked: the public options, the validated request, the tape's
//! snapshot it reads.

use tapeflow_dtype::{DType, Error, Result, Shape, TensorId};

use super::{IdMap, Link};
use crate::context::Entries;
use crate::operand::GradSource;
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
    pub(crate) sequential: bool,
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

    /// Runs every backward op on the calling thread, one after another (the benchmarks
    /// use it to show the parallel schedule's speedup). Results are bitwise identical
    /// either way.
    pub fn sequential(mut self, sequential: bool) -> Self {
        self.sequential = sequential;
        self
    }
}

/// A tape's recorded ops and tracked ids, as one gradient computation reads them.
pub(crate) struct Snapshot {
    pub entries: Entries,
    pub tracked: IdMap<Link>,
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
    pub sequential: bool,
    /// The seeds carry a leading axis of R seeds (`[R] ++ target shape`) and every op runs
    /// its batched rule (`Rule::apply_batched`): R vector–Jacobian products in one pass.
    pub batched: bool,
}

/// The op of the error a batched pass returns when a live op has no batched rule, before
/// running anything: the jacobian then falls back to one pass per row.
pub(crate) const NO_BATCHED_RULE: &str = "batched backward";

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
                        return Err(Error::shape_mismatch(
                            "gradient",
                            t,
                            s,
                            "an output gradient must have its target's shape and dtype",
                        ));
                    }
                }
                Some(seeds)
            }
            None => None,
        };
        // One vector of (target, seed): a given seed or ones; int32 targets are dropped.
        let seeds = targets
            .iter()
            .enumerate()
            .filter(|(_, t)| warn_if_int("target", t.dtype()))
            .map(|(k, t)| {
                let seed = match seeds {
                    Some(seeds) => seeds[k].clone(),
                    None => Tensor::ones(t.shape().clone(), t.dtype()),
                };
                (t.id(), seed)
            })
            .collect();
        let sources = sources
            .iter()
            .map(|s| SourceInfo { id: s.source_id(), shape: s.source_shape(), dtype: s.source_dtype() })
            .collect::<Vec<_>>();
        for s in &sources {
            warn_if_int("source", s.dtype);
        }
        Ok(Request { seeds, sources, unconnected: options.unconnected, sequential: options.sequential, batched: false })
    }
}
