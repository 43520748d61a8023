//! The backward pass: from the targets' seeds back to the sources, through the recorded
//! ops that connect them.

use tapeflow_dtype::{DType, Error, Result, Shape, TensorId};

use crate::context::{Entry, IdMap, IdSet};
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
    pub entries: Vec<Entry>,
    pub tracked: IdSet,
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
        Ok(Request { seeds, sources, unconnected: options.unconnected, sequential: options.sequential })
    }
}

/// Gradient contributions keyed by tensor id. The one place gradients are written:
/// contributions are kept with an order key (seeds first, in the order given, then
/// consumers in reverse recording order) and summed in that order once all have arrived,
/// never overwritten. The order does not depend on scheduling, so results are bitwise
/// identical for any thread count and for the parallel and sequential schedules.
#[derive(Default)]
pub(crate) struct Gradients {
    by_id: IdMap<Vec<(usize, Tensor)>>,
}

impl Gradients {
    pub fn accumulate(&mut self, id: TensorId, order: usize, grad: Tensor) {
        self.by_id.entry(id).or_default().push((order, grad));
    }

    /// The sum of every contribution to `id` (recorded, so it is differentiable too); with
    /// `keep`, the sum stays as the id's one contribution (a source read again at the end).
    pub fn total(&mut self, id: &TensorId, keep: bool) -> Result<Option<Tensor>> {
        let Some(mut parts) = self.by_id.remove(id) else { return Ok(None) };
        parts.sort_by_key(|(order, _)| *order);
        let mut parts = parts.into_iter().map(|(_, g)| g);
        let Some(first) = parts.next() else { return Ok(None) };
        let sum = parts.try_fold(first, |acc, g| add_gradients(&acc, &g))?;
        if keep {
            self.by_id.insert(*id, vec![(0, sum.clone())]);
        }
        Ok(Some(sum))
    }
}

/// An op's upstream gradient must have at least this many elements for its backward rule
/// to be worth a rayon task (below, scheduling costs more than the rule).
const PARALLEL_MIN_ELEMENTS: usize = 2048;

/// Runs the backward pass of `request` over `snapshot`; one result per source.
///
/// Only ops on a path from a source to a target run. Each recorded tensor counts its
/// pending consumers; an op runs once its output's gradient is complete. All ops that are
/// ready together form a wave; a wave with several expensive ops runs on rayon in
/// parallel (independent chains side by side), otherwise inline. Waves run on the calling
/// thread whenever a tape records there, so higher-order gradients see every op.
pub(crate) fn run(snapshot: &Snapshot, request: &Request) -> Result<Vec<Option<Tensor>>> {
    let entries = &snapshot.entries;
    // Ids that lead back to a source: a source the tape tracks, or the output of an op
    // with such an input. Recording order is topological, so one forward sweep suffices.
    let mut connected: IdSet = request
        .sources
        .iter()
        .filter(|s| s.dtype.is_float() && snapshot.tracked.contains(&s.id))
        .map(|s| s.id)
        .collect();
    let mut producer: IdMap<usize> = IdMap::default();
    let mut pending: IdMap<usize> = IdMap::default();
    let live: Vec<bool> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let is_live = e.inputs.iter().any(|id| connected.contains(id));
            if is_live {
                for id in e.inputs.iter().filter(|id| connected.contains(id)) {
                    *pending.entry(*id).or_default() += 1;
                }
                connected.insert(e.output);
                producer.insert(e.output, i);
            }
            is_live
        })
        .collect();

    let mut grads = Gradients::default();
    for (k, (id, seed)) in request.seeds.iter().enumerate() {
        if connected.contains(id) {
            grads.accumulate(*id, k, seed.clone());
        }
    }
    let seed_count = request.seeds.len();
    let sources: IdSet = request.sources.iter().map(|s| s.id).collect();
    let parallel = !request.sequential && !crate::context::records_on_this_thread();

    // The first wave: live ops whose output nothing live consumes.
    let mut wave: Vec<usize> = (0..entries.len()).filter(|&i| live[i] && !pending.contains_key(&entries[i].output)).collect();
    while !wave.is_empty() {
        wave.sort_unstable_by(|a, b| b.cmp(a));
        let mut jobs = Vec::with_capacity(wave.len());
        for &i in &wave {
            let entry = &entries[i];
            let upstream = grads.total(&entry.output, sources.contains(&entry.output))?;
            let needs: Vec<bool> = entry.inputs.iter().map(|id| connected.contains(id)).collect();
            jobs.push((i, upstream, needs));
        }
        let run_one = |(i, upstream, needs): (usize, Option<Tensor>, Vec<bool>)| -> Result<(usize, Vec<Option<Tensor>>)> {
            match upstream {
                Some(g) => Ok((i, (entries[i].backward)(&g, &needs)?)),
                None => Ok((i, Vec::new())),
            }
        };
        let expensive = jobs.iter().filter(|(_, g, _)| g.as_ref().is_some_and(|g| g.num_elements() >= PARALLEL_MIN_ELEMENTS)).count();
        let results: Vec<Result<(usize, Vec<Option<Tensor>>)>> = if parallel && expensive >= 2 {
            use rayon::prelude::*;
            jobs.into_par_iter().map(run_one).collect()
        } else {
            jobs.into_iter().map(run_one).collect()
        };
        let mut next = Vec::new();
        for result in results {
            let (i, input_grads) = result?;
            let entry = &entries[i];
            let order = seed_count + (entries.len() - 1 - i);
            let mut input_grads = input_grads.into_iter();
            for id in entry.inputs.iter() {
                let grad = input_grads.next().flatten();
                if !connected.contains(id) {
                    continue;
                }
                if let Some(grad) = grad {
                    grads.accumulate(*id, order, grad);
                }
                if let Some(count) = pending.get_mut(id) {
                    *count -= 1;
                    if *count == 0
                        && let Some(&p) = producer.get(id)
                    {
                        next.push(p);
                    }
                }
            }
        }
        wave = next;
    }

    request
        .sources
        .iter()
        .map(|s| {
            let found = if s.dtype.is_float() { grads.total(&s.id, true)? } else { None };
            Ok(match (found, request.unconnected) {
                (Some(g), _) => Some(g),
                (None, UnconnectedGradients::Zero) => Some(Tensor::zeros(s.shape.clone(), s.dtype)),
                (None, UnconnectedGradients::None) => None,
            })
        })
        .collect()
}
