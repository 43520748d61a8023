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
                        return Err(Error::shape_mismatch(
                            "gradient",
                            t,
                            s,
                            "an output gradient must have its target's shape and dtype",
                        ));
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

    /// Every contribution to `id`, in summing order (removed from the map).
    pub fn take(&mut self, id: &TensorId) -> Option<Vec<Tensor>> {
        let mut parts = self.by_id.remove(id)?;
        parts.sort_by_key(|(order, _)| *order);
        Some(parts.into_iter().map(|(_, g)| g).collect())
    }

    /// Puts back the finished sum of `id` (a source whose gradient is read at the end).
    pub fn keep(&mut self, id: TensorId, sum: Tensor) {
        self.by_id.insert(id, vec![(0, sum)]);
    }
}

/// The sum of contributions in their order (recorded, so it is differentiable too). Runs
/// inside the op's job, so sums of independent chains proceed in parallel too.
fn sum_in_order(parts: Option<Vec<Tensor>>) -> Result<Option<Tensor>> {
    let mut parts = parts.into_iter().flatten();
    let Some(first) = parts.next() else { return Ok(None) };
    parts.try_fold(first, |acc, g| add_gradients(&acc, &g)).map(Some)
}

/// Maps `f` over `items`, on rayon when `parallel`, keeping the order.
fn map_maybe_parallel<T: Send, R: Send>(items: Vec<T>, parallel: bool, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    if parallel {
        use rayon::prelude::*;
        items.into_par_iter().map(f).collect()
    } else {
        items.into_iter().map(f).collect()
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
    let mut wave: Vec<usize> =
        (0..entries.len()).filter(|&i| live[i] && !pending.contains_key(&entries[i].output)).collect();
    while !wave.is_empty() {
        wave.sort_unstable_by(|a, b| b.cmp(a));
        let mut jobs = Vec::with_capacity(wave.len());
        for &i in &wave {
            let entry = &entries[i];
            let needs: Vec<bool> = entry.inputs.iter().map(|id| connected.contains(id)).collect();
            jobs.push((i, grads.take(&entry.output), needs));
        }
        let expensive = jobs
            .iter()
            .filter(|(_, parts, _)| {
                parts.as_ref().and_then(|p| p.first()).is_some_and(|g| g.num_elements() >= PARALLEL_MIN_ELEMENTS)
            })
            .count();
        let run_one = |(i, parts, needs): (usize, Option<Vec<Tensor>>, Vec<bool>)| -> Result<(usize, Option<Tensor>, Vec<Option<Tensor>>)> {
            match sum_in_order(parts)? {
                Some(g) => {
                    let input_grads = (entries[i].backward)(&g, &needs)?;
                    Ok((i, Some(g), input_grads))
                }
                None => Ok((i, None, Vec::new())),
            }
        };
        let results = map_maybe_parallel(jobs, parallel && expensive >= 2, run_one);
        let mut next = Vec::new();
        for result in results {
            let (i, upstream, input_grads) = result?;
            let entry = &entries[i];
            if let (Some(g), true) = (upstream, sources.contains(&entry.output)) {
                grads.keep(entry.output, g);
            }
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

    // Each distinct source's contributions, summed (in parallel when several need sums);
    // a source listed twice gets the same result twice.
    let mut first_position: IdMap<usize> = IdMap::default();
    let finals: Vec<(SourceInfo, Option<Vec<Tensor>>)> = request
        .sources
        .iter()
        .enumerate()
        .map(|(position, s)| {
            let first = *first_position.entry(s.id).or_insert(position) == position;
            let parts = if s.dtype.is_float() && first { grads.take(&s.id) } else { None };
            (s.clone(), parts)
        })
        .collect();
    let unconnected = request.unconnected;
    let expensive = finals.iter().filter(|(_, p)| p.as_ref().is_some_and(|p| p.len() > 1)).count();
    let sums: Vec<Result<Option<Tensor>>> =
        map_maybe_parallel(finals, parallel && expensive >= 2, |(_, parts)| sum_in_order(parts));
    let sums: Vec<Option<Tensor>> = sums.into_iter().collect::<Result<_>>()?;
    Ok(request
        .sources
        .iter()
        .map(|s| {
            let found = first_position.get(&s.id).and_then(|&p| sums[p].clone());
            match (found, unconnected) {
                (Some(g), _) => Some(g),
                (None, UnconnectedGradients::Zero) => Some(Tensor::zeros(s.shape.clone(), s.dtype)),
                (None, UnconnectedGradients::None) => None,
            }
        })
        .collect())
}
