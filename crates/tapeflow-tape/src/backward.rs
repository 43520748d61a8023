//! The backward pass: from the targets' seeds back to the sources, through the recorded
//! ops that connect them.

use std::borrow::Cow;
use std::sync::Mutex;

use smallvec::SmallVec;
use tapeflow_dtype::{DType, Error, Result, Shape, TensorId};
use tapeflow_kernels::isa;

use crate::context::{Entries, IdMap, Input, InputGrads, Link, Rule};
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

/// Gradient contributions to one tensor, each with its order key: seeds first, in the order
/// given, then consumers in reverse recording order. They are summed in that order once all
/// have arrived, never overwritten; the order does not depend on scheduling, so results are
/// bitwise identical for any thread count and for the parallel and sequential schedules.
type Parts = SmallVec<[(usize, Tensor); 1]>;

/// The sum of contributions in their order (recorded, so it is differentiable too). Runs
/// inside the op's job, so sums of independent chains proceed in parallel too.
///
/// In a first-order pass (`first_order`: nothing records), the running total is added to
/// in place whenever its buffer is its own (no other handle shares it; otherwise the first
/// sum makes one): the same additions in the same order, without a tensor per sum.
fn sum_in_order(mut parts: Parts, first_order: bool) -> Result<Option<Tensor>> {
    if parts.len() == 1 {
        // The common case: one consumer, nothing to add.
        return Ok(parts.pop().map(|(_, g)| g));
    }
    parts.sort_by_key(|(order, _)| *order);
    let mut parts = parts.into_iter().map(|(_, g)| g);
    let Some(first) = parts.next() else { return Ok(None) };
    parts
        .try_fold(first, |mut acc, g| {
            if first_order && tapeflow_kernels::grad::add_in_place(&mut acc, &g)? {
                return Ok(acc);
            }
            add_gradients(&acc, &g)
        })
        .map(Some)
}

/// An op's upstream gradient must have at least this many elements for its backward rule
/// to be worth a rayon task (below, scheduling costs more than the rule).
const PARALLEL_MIN_ELEMENTS: usize = 2048;

/// What the pass knows of one entry's output, besides its gradient contributions.
#[derive(Clone, Copy, Default)]
struct Flags {
    /// The op has an input that leads back to a source: it runs.
    live: bool,
    /// The output is itself a source.
    source: bool,
    /// Live consumers of the output that have not run yet.
    pending: u32,
}

/// What the pass knows of the entries' outputs, by entry index: flags and counts in one
/// array (the sweep that finds live ops reads only those), gradient contributions in
/// another. Both are reused from the thread's previous pass ([`Nodes::take`]).
#[derive(Default)]
struct Nodes {
    flags: Vec<Flags>,
    grads: Vec<Parts>,
}

/// The largest node arrays kept for the thread's next pass.
const SPARE_MAX_NODES: usize = 1 << 12;

thread_local! {
    /// The emptied node arrays of the thread's last pass: a scalar gradient otherwise pays
    /// two allocations (and frees) of its own for them (callgrind: ~500 instructions).
    static SPARE_NODES: std::cell::RefCell<Nodes> = std::cell::RefCell::new(Nodes::default());
}

impl Nodes {
    /// Arrays for `n` entries, all clear; reuses the thread's spare arrays when free.
    fn take(n: usize) -> Self {
        let mut nodes = SPARE_NODES
            .try_with(|spare| spare.try_borrow_mut().map(|mut spare| std::mem::take(&mut *spare)).unwrap_or_default())
            .unwrap_or_default();
        nodes.flags.resize(n, Flags::default());
        nodes.grads.resize_with(n, Parts::new);
        nodes
    }

    /// Hands the arrays (emptied) back for the thread's next pass.
    fn recycle(mut self) {
        if self.flags.capacity() > SPARE_MAX_NODES {
            return;
        }
        self.flags.clear();
        self.grads.clear();
        let _ = SPARE_NODES.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut()
                && spare.flags.capacity() < self.flags.capacity()
            {
                *spare = self;
            }
        });
    }

    /// Whether gradients flowing into op `p`'s output are wanted.
    #[inline]
    fn wanted(&self, p: usize) -> bool {
        self.flags[p].live || self.flags[p].source
    }
}

/// The watched leaves (tensors, variable handles) that are sources, sorted, with their
/// gradient contributions.
#[derive(Default)]
struct Leaves {
    ids: SmallVec<[TensorId; 4]>,
    grads: SmallVec<[Parts; 4]>,
}

impl Leaves {
    fn new(mut ids: SmallVec<[TensorId; 4]>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        let grads = ids.iter().map(|_| Parts::new()).collect();
        Leaves { ids, grads }
    }

    fn position(&self, id: &TensorId) -> Option<usize> {
        self.ids.binary_search(id).ok()
    }
}

/// One backward pass over a tape's entries. Everything is indexed by entry: the tape
/// resolved each input to the entry that produced it when it recorded the op.
struct Pass<'a> {
    /// The entries; owned when this pass is the only reader, so each op's rule (and the
    /// tensors it saved) is dropped as soon as the op has run.
    entries: Cow<'a, Entries>,
    nodes: Nodes,
    leaves: Leaves,
    seed_count: usize,
    /// No tape records on the thread that runs the pass: backward rules may run as fused
    /// kernels ([`Rule::apply_first_order`]), since nothing needs their ops recorded.
    first_order: bool,
    batched: bool,
}

impl Drop for Pass<'_> {
    /// Hands an owned entry list back for the thread's next tape (emptied).
    fn drop(&mut self) {
        if let Cow::Owned(entries) = &mut self.entries {
            crate::context::recycle(std::mem::take(entries), IdMap::default());
        }
        std::mem::take(&mut self.nodes).recycle();
    }
}

impl Pass<'_> {
    /// Whether gradients flowing into `input` lead back to a source.
    fn connected(&self, input: &Input) -> bool {
        match input.link {
            Link::Untracked => false,
            Link::Leaf => self.leaves.position(&input.id).is_some(),
            Link::Op(p) => self.nodes.wanted(p as usize),
        }
    }

    /// Where contributions to `input` go, if it leads back to a source.
    fn slot(&mut self, input: &Input) -> Option<&mut Parts> {
        match input.link {
            Link::Untracked => None,
            Link::Leaf => self.leaves.position(&input.id).map(|k| &mut self.leaves.grads[k]),
            Link::Op(p) => {
                let p = p as usize;
                self.nodes.wanted(p).then_some(&mut self.nodes.grads[p])
            }
        }
    }

    /// What op `i` needs to run: its upstream contributions, which inputs need gradients,
    /// and its rule.
    fn job(&mut self, i: usize) -> Job {
        let parts = std::mem::take(&mut self.nodes.grads[i]);
        let needs = self.entries.inputs(i).iter().map(|input| self.connected(input)).collect();
        let rule = match &mut self.entries {
            // Each op runs once per pass: its rule is not read again.
            Cow::Owned(entries) => std::mem::replace(&mut entries.rules[i], Rule::Identity),
            Cow::Borrowed(entries) => entries.rules[i].clone(),
        };
        Job { first_order: self.first_order, parts, needs, rule, batched: self.batched }
    }

    /// Hands op `i`'s results to its inputs; inputs whose consumers have all run become
    /// ready and join `next`.
    fn finish(&mut self, i: usize, upstream: Option<Tensor>, input_grads: InputGrads, next: &mut Vec<usize>) {
        if let (Some(g), true) = (upstream, self.nodes.flags[i].source) {
            self.nodes.grads[i].push((0, g));
        }
        let order = self.seed_count + (self.entries.len() - 1 - i);
        let mut input_grads = input_grads.into_iter();
        let entries: &Entries = &self.entries;
        for &input in entries.inputs(i) {
            let grad = input_grads.next().flatten();
            match input.link {
                Link::Untracked => {}
                Link::Leaf => {
                    if let (Some(k), Some(grad)) = (self.leaves.position(&input.id), grad) {
                        self.leaves.grads[k].push((order, grad));
                    }
                }
                Link::Op(p) => {
                    let p = p as usize;
                    let nodes = &mut self.nodes;
                    if !nodes.wanted(p) {
                        continue;
                    }
                    if let Some(grad) = grad {
                        nodes.grads[p].push((order, grad));
                    }
                    let flags = &mut nodes.flags[p];
                    flags.pending -= 1;
                    if flags.pending == 0 && flags.live {
                        next.push(p);
                    }
                }
            }
        }
    }
}

/// One op's backward work, movable to another thread.
struct Job {
    /// Nothing records the pass: fused first-order rules apply.
    first_order: bool,
    parts: Parts,
    needs: SmallVec<[bool; 4]>,
    rule: Rule,
    batched: bool,
}

impl Job {
    /// The summed upstream gradient and the inputs' gradients (none if nothing flowed in).
    fn run(self) -> Result<(Option<Tensor>, InputGrads)> {
        match sum_in_order(self.parts, self.first_order)? {
            Some(g) if self.batched => match self.rule.apply_batched(&g, &self.needs)? {
                Some(input_grads) => Ok((Some(g), input_grads)),
                None => Err(no_batched_rule("an op")),
            },
            Some(g) => {
                let input_grads = if self.first_order {
                    self.rule.apply_first_order(&g, &self.needs)?
                } else {
                    self.rule.apply(&g, &self.needs)?
                };
                Ok((Some(g), input_grads))
            }
            None => Ok((None, InputGrads::new())),
        }
    }
}

/// The error that stops a batched pass at an op without a batched rule ([`NO_BATCHED_RULE`]).
fn no_batched_rule(name: &str) -> Error {
    Error::InvalidArgument { op: NO_BATCHED_RULE, reason: format!("{name} has no batched backward rule") }
}

/// Runs the ops of `ready` and everything they make ready on rayon, without waves: a
/// thread that finishes an op continues with one op it made ready (so a chain tends to stay
/// on one core) and offers the others to idle threads. The pass's bookkeeping is shared
/// under a lock held only between ops; the order keys keep the sums independent of which
/// thread ran what. The first error stops the pass.
fn run_dynamic(pass: &mut Pass<'_>, ready: Vec<usize>) -> Result<()> {
    let shared = Mutex::new(pass);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    // The kernels' instruction-set level of the calling thread (`isa::with_isa`) goes with
    // every op onto the workers.
    let level = isa::current();
    rayon::scope(|scope| {
        for i in ready {
            let (shared, failure) = (&shared, &failure);
            scope.spawn(move |scope| level.enter(|| run_from(shared, failure, scope, i)));
        }
    });
    match failure.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The value behind `mutex`, also after a panic elsewhere poisoned it (the pass then
/// fails anyway; the lock only guards bookkeeping).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs op `i`, then ops it makes ready (see [`run_dynamic`]).
fn run_from<'s, 'p: 's, 'e: 'p>(
    shared: &'s Mutex<&'p mut Pass<'e>>,
    failure: &'s Mutex<Option<Error>>,
    scope: &rayon::Scope<'s>,
    mut i: usize,
) {
    // Set by the spawning `enter`: the level of the thread that started the pass.
    let level = isa::current();
    let mut next = Vec::new();
    loop {
        if lock(failure).is_some() {
            return;
        }
        let job = lock(shared).job(i);
        match job.run() {
            Ok((upstream, input_grads)) => lock(shared).finish(i, upstream, input_grads, &mut next),
            Err(error) => {
                lock(failure).get_or_insert(error);
                return;
            }
        }
        let Some(continue_with) = next.pop() else { return };
        for p in next.drain(..) {
            scope.spawn(move |scope| level.enter(|| run_from(shared, failure, scope, p)));
        }
        i = continue_with;
    }
}

/// A component's work must reach this ([`Rule::work`] units) to count as worth a thread:
/// 2^16 multiply-adds take ~3 µs here, about the cost of handing work to the other core.
const COMPONENT_MIN_WORK: usize = 1 << 16;

/// One connected part of the live graph: its entries in reverse recording order (a valid
/// backward order) and their summed work.
struct Component {
    entries: Vec<usize>,
    work: usize,
}

/// The live entries grouped into connected parts: two entries are in one part when one
/// consumes the other's output or both feed the same watched leaf. Parts share no
/// gradient slot, so they can run side by side without changing any sum.
fn components(pass: &Pass<'_>) -> Vec<Component> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let n = pass.nodes.flags.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut leaf_owner: SmallVec<[Option<usize>; 4]> = SmallVec::from_elem(None, pass.leaves.ids.len());
    for i in (0..n).filter(|&i| pass.nodes.flags[i].live) {
        for input in pass.entries.inputs(i).iter().filter(|input| pass.connected(input)) {
            let other = match input.link {
                Link::Op(p) => p as usize,
                Link::Leaf => match pass.leaves.position(&input.id) {
                    Some(k) => *leaf_owner[k].get_or_insert(i),
                    None => continue,
                },
                Link::Untracked => continue,
            };
            let (a, b) = (root(&mut parent, i), root(&mut parent, other));
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut index_of_root = vec![usize::MAX; n];
    let mut parts: Vec<Component> = Vec::new();
    for i in (0..n).rev().filter(|&i| pass.nodes.flags[i].live) {
        let r = root(&mut parent, i);
        if index_of_root[r] == usize::MAX {
            index_of_root[r] = parts.len();
            parts.push(Component { entries: Vec::new(), work: 0 });
        }
        let part = &mut parts[index_of_root[r]];
        part.entries.push(i);
        part.work = part.work.saturating_add(pass.entries.rules[i].work());
    }
    parts
}

/// Runs each component on one thread, the calling thread taking components too
/// (`parallel::for_each_item`), largest first. Within a component, entries run in reverse
/// recording order, so every op's consumers have run before it; the order keys keep each
/// sum independent of which thread ran what. The first error stops the pass.
fn run_components(pass: &mut Pass<'_>, mut parts: Vec<Component>) -> Result<()> {
    parts.sort_by_key(|c| std::cmp::Reverse(c.work));
    let shared = Mutex::new(pass);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let level = isa::current();
    tapeflow_kernels::parallel::for_each_item(parts, |_, part| {
        level.enter(|| {
            let mut ready = Vec::new();
            for &i in &part.entries {
                if lock(&failure).is_some() {
                    return;
                }
                let job = lock(&shared).job(i);
                match job.run() {
                    Ok((upstream, input_grads)) => lock(&shared).finish(i, upstream, input_grads, &mut ready),
                    Err(error) => {
                        lock(&failure).get_or_insert(error);
                        return;
                    }
                }
                // The order is fixed in advance; readiness needs no tracking here.
                ready.clear();
            }
        })
    });
    match failure.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Runs the backward pass of `request` over a tape's `entries`; one result per source.
///
/// Only ops on a path from a source to a target run. Each recorded op counts the live
/// consumers of its output; an op runs once they all have. All ops that are ready together
/// form a wave; a wave with several expensive ops runs on rayon in parallel (independent
/// chains side by side), otherwise inline. Waves run on the calling thread whenever a tape
/// records there, so higher-order gradients see every op.
pub(crate) fn run(entries: Cow<'_, Entries>, tracked: &IdMap<Link>, request: &Request) -> Result<Vec<Option<Tensor>>> {
    let n = entries.len();
    let link_of = |id: &TensorId| tracked.get(id).copied().unwrap_or(Link::Untracked);
    let mut nodes = Nodes::take(n);
    let mut leaf_ids = SmallVec::new();
    for s in request.sources.iter().filter(|s| s.dtype.is_float()) {
        match link_of(&s.id) {
            Link::Leaf => leaf_ids.push(s.id),
            Link::Op(p) => nodes.flags[p as usize].source = true,
            Link::Untracked => {}
        }
    }
    let first_order = !crate::context::records_on_this_thread();
    let mut pass = Pass {
        entries,
        nodes,
        leaves: Leaves::new(leaf_ids),
        seed_count: request.seeds.len(),
        first_order,
        batched: request.batched,
    };
    // Recording order is topological, so one forward sweep finds the live ops (and sums
    // their work, which decides below whether the pass is worth splitting).
    let mut live_work = 0usize;
    for i in 0..n {
        let live = pass.entries.inputs(i).iter().any(|input| pass.connected(input));
        pass.nodes.flags[i].live = live;
        if live {
            live_work = live_work.saturating_add(pass.entries.rules[i].work());
            let Pass { entries, nodes, .. } = &mut pass;
            for input in entries.inputs(i) {
                if let Link::Op(p) = input.link {
                    let p = p as usize;
                    if nodes.wanted(p) {
                        nodes.flags[p].pending += 1;
                    }
                }
            }
        }
    }
    if request.batched {
        // Checked before any op runs, so that nothing is computed (or recorded on an outer
        // tape) for a pass that cannot finish.
        let unbatched =
            (0..n).filter(|&i| pass.nodes.flags[i].live).find_map(|i| pass.entries.rules[i].without_batched_form());
        if let Some(name) = unbatched {
            return Err(no_batched_rule(name));
        }
    }
    for (k, (id, seed)) in request.seeds.iter().enumerate() {
        if let Some(slot) = pass.slot(&Input { id: *id, link: link_of(id) }) {
            slot.push((k, seed.clone()));
        }
    }
    // With one rayon thread, handing the pass to it only moves the work off the calling
    // thread, whose core holds the forward pass's tensors in cache (measured: the same
    // sequential 16-chain backward takes 2.5 ms on the calling thread, 3.2–4.1 ms on a
    // worker of the other core, and the same on both when they share a core).
    let parallel = !request.sequential && !crate::context::records_on_this_thread() && rayon::current_num_threads() > 1;

    // Independent parts of the graph (chains that share no op and no source) each go to
    // one thread whole, when at least two of them carry real work. Only graphs with work
    // for two threads are looked at (a scalar gradient never is).
    let done = parallel && live_work >= 2 * COMPONENT_MIN_WORK && {
        let parts = components(&pass);
        let split = parts.iter().filter(|c| c.work >= COMPONENT_MIN_WORK).count() >= 2;
        if split {
            run_components(&mut pass, parts)?;
        }
        split
    };

    // The first wave: live ops whose output nothing live consumes.
    let mut wave: Vec<usize> = if done {
        Vec::new()
    } else {
        (0..n).filter(|&i| pass.nodes.flags[i].live && pass.nodes.flags[i].pending == 0).collect()
    };
    let mut next = Vec::new();
    while !wave.is_empty() {
        wave.sort_unstable_by(|a, b| b.cmp(a));
        let expensive = || {
            let large =
                |i: usize| pass.nodes.grads[i].first().is_some_and(|(_, g)| g.num_elements() >= PARALLEL_MIN_ELEMENTS);
            wave.iter().filter(|&&i| large(i)).count()
        };
        if parallel && wave.len() >= 2 && expensive() >= 2 {
            // From here on the graph has independent expensive work: the rest of the pass
            // runs on rayon, each op as soon as its consumers are done.
            run_dynamic(&mut pass, std::mem::take(&mut wave))?;
            break;
        }
        for &i in &wave {
            let (upstream, input_grads) = pass.job(i).run()?;
            pass.finish(i, upstream, input_grads, &mut next);
        }
        std::mem::swap(&mut wave, &mut next);
        next.clear();
    }

    // Each distinct source's contributions, summed (in parallel when several need sums).
    // A source listed twice gets the same result twice: its contributions are taken at its
    // first position.
    let mut contributions = |s: &SourceInfo| match link_of(&s.id) {
        Link::Op(p) if s.dtype.is_float() => std::mem::take(&mut pass.nodes.grads[p as usize]),
        Link::Leaf if s.dtype.is_float() => {
            pass.leaves.position(&s.id).map(|k| std::mem::take(&mut pass.leaves.grads[k])).unwrap_or_default()
        }
        _ => Parts::new(),
    };
    let result = |sum: Option<Tensor>, s: &SourceInfo| match (sum, request.unconnected) {
        (Some(g), _) => Some(g),
        (None, UnconnectedGradients::Zero) => Some(Tensor::zeros(s.shape.clone(), s.dtype)),
        (None, UnconnectedGradients::None) => None,
    };
    if let [source] = request.sources.as_slice() {
        // `gradient`'s one source: no per-source vectors to build.
        return Ok(vec![result(sum_in_order(contributions(source), first_order)?, source)]);
    }
    let finals: Vec<Parts> = request.sources.iter().map(contributions).collect();
    let expensive = finals.iter().filter(|p| p.len() > 1).count();
    let sums: Vec<Option<Tensor>> = if parallel && expensive >= 2 {
        use rayon::prelude::*;
        let level = isa::current();
        finals.into_par_iter().map(|p| level.enter(|| sum_in_order(p, first_order))).collect::<Result<_>>()?
    } else {
        finals.into_iter().map(|p| sum_in_order(p, first_order)).collect::<Result<_>>()?
    };
    Ok(request
        .sources
        .iter()
        .zip(first_positions(&request.sources))
        .map(|(s, first)| result(sums[first].clone(), s))
        .collect())
}

/// For each source, the position where it first appears in `sources`.
fn first_positions(sources: &[SourceInfo]) -> Vec<usize> {
    if sources.len() <= 16 {
        return sources
            .iter()
            .enumerate()
            .map(|(i, s)| sources[..i].iter().position(|o| o.id == s.id).unwrap_or(i))
            .collect();
    }
    let mut first: IdMap<usize> = IdMap::default();
    sources.iter().enumerate().map(|(i, s)| *first.entry(s.id).or_insert(i)).collect()
}
