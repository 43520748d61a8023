//! The backward pass: from the targets' seeds back to the sources, through the recorded
//! ops that connect them.

mod parallel;
mod request;
mod stream;

use std::borrow::Cow;

use smallvec::SmallVec;
use tapeflow_dtype::{Error, Result, TensorId};
use tapeflow_kernels::isa;

use crate::context::{Entries, IdMap, Input, InputGrads, Link, Rule};
use crate::ops::binary::add_gradients;
use crate::runtime::Tensor;
use crate::trace;
use parallel::{COMPONENT_MIN_WORK, components, run_components, run_dynamic};
pub use request::{GradientOptions, UnconnectedGradients};
pub(crate) use request::{NO_BATCHED_RULE, Request, Snapshot, SourceInfo};
pub use stream::GradientSink;
use stream::Stream;

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
    let terms: trace::Inputs = parts.into_iter().map(|(_, g)| g).collect();
    if first_order && !terms.is_empty() {
        // One captured node for the whole sum, so that a replay adds in place too.
        return trace::op_owned("AddN", terms, sum_in_place).map(Some);
    }
    let mut terms = terms.into_iter();
    let Some(first) = terms.next() else { return Ok(None) };
    terms.try_fold(first, |acc, g| add_gradients(&acc, &g)).map(Some)
}

/// The sum of `terms` in order, added in place into the running total whenever its buffer
/// is its own.
fn sum_in_place(terms: trace::Inputs) -> Result<Tensor> {
    let mut terms = terms.into_iter();
    let Some(first) = terms.next() else {
        return Err(Error::InvalidArgument { op: "AddN", reason: "no terms to add".into() });
    };
    terms.try_fold(first, |mut acc, g| {
        if tapeflow_kernels::grad::add_in_place(&mut acc, &g)? {
            return Ok(acc);
        }
        add_gradients(&acc, &g)
    })
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
    /// Counts each watched leaf's pending consumers when the caller streams gradients
    /// ([`GradientSink`]); `None` otherwise, so a plain pass pays nothing for it.
    stream: Option<Stream>,
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
                    if let Some(k) = self.leaves.position(&input.id) {
                        if let Some(grad) = grad {
                            self.leaves.grads[k].push((order, grad));
                        }
                        if let Some(stream) = &mut self.stream {
                            stream.consumed(k);
                        }
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

/// Runs the backward pass of `request` over a tape's `entries`; one result per source.
///
/// Only ops on a path from a source to a target run. Each recorded op counts the live
/// consumers of its output; an op runs once they all have. All ops that are ready together
/// form a wave; a wave with several expensive ops runs on rayon in parallel (independent
/// chains side by side), otherwise inline. Waves run on the calling thread whenever a tape
/// records there, so higher-order gradients see every op. With a `sink`, each watched
/// leaf's gradient is handed to it as soon as it is finished ([`GradientSink`]).
pub(crate) fn run(
    entries: Cow<'_, Entries>,
    tracked: &IdMap<Link>,
    request: &Request,
    sink: Option<&mut dyn GradientSink>,
) -> Result<Vec<Option<Tensor>>> {
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
    let leaves = Leaves::new(leaf_ids);
    let stream = sink.is_some().then(|| Stream::new(leaves.ids.len()));
    let mut pass =
        Pass { entries, nodes, leaves, seed_count: request.seeds.len(), first_order, batched: request.batched, stream };
    // Recording order is topological, so one forward sweep finds the live ops (and sums
    // their work, which decides below whether the pass is worth splitting).
    let mut live_work = 0usize;
    for i in 0..n {
        let live = pass.entries.inputs(i).iter().any(|input| pass.connected(input));
        pass.nodes.flags[i].live = live;
        if live {
            live_work = live_work.saturating_add(pass.entries.rules[i].work());
            let Pass { entries, nodes, leaves, stream, .. } = &mut pass;
            for input in entries.inputs(i) {
                match input.link {
                    Link::Op(p) => {
                        let p = p as usize;
                        if nodes.wanted(p) {
                            nodes.flags[p].pending += 1;
                        }
                    }
                    Link::Leaf => {
                        // Looked up only when streaming: the plain pass does no search here.
                        if let Some(stream) = stream.as_mut()
                            && let Some(k) = leaves.position(&input.id)
                        {
                            stream.count(k);
                        }
                    }
                    Link::Untracked => {}
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
    let mut delivery = sink.map(|sink| stream::Delivery::new(sink, &pass, request));
    // With one rayon thread, handing the pass to it only moves the work off the calling
    // thread, whose core holds the forward pass's tensors in cache (measured: the same
    // sequential 16-chain backward takes 2.5 ms on the calling thread, 3.2–4.1 ms on a
    // worker of the other core, and the same on both when they share a core).
    // A trace captures ops on this thread only: it keeps the pass here (the bits are the same).
    let parallel = !request.sequential
        && !crate::context::records_on_this_thread()
        && !trace::tracing()
        && rayon::current_num_threads() > 1;

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
            if let Some(delivery) = delivery.as_mut() {
                delivery.deliver(&mut pass, request)?;
                delivery.between_ops();
            }
        }
        std::mem::swap(&mut wave, &mut next);
        next.clear();
    }
    if let Some(delivery) = delivery.as_mut() {
        // What the parallel schedules finished.
        delivery.deliver(&mut pass, request)?;
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
    if let ([source], None) = (request.sources.as_slice(), &delivery) {
        // `gradient`'s one source: no per-source vectors to build.
        return Ok(vec![stream::finalize(sum_in_order(contributions(source), first_order)?, request, 0)]);
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
    let results: Vec<Option<Tensor>> = first_positions(&request.sources)
        .into_iter()
        .map(|first| stream::finalize(sums[first].clone(), request, first))
        .collect();
    let Some(mut delivery) = delivery else { return Ok(results) };
    // Leaves finished during the pass were summed then (their contributions are gone).
    let results: Vec<Option<Tensor>> = results
        .into_iter()
        .zip(&request.sources)
        .map(|(g, s)| match pass.leaves.position(&s.id).and_then(|k| delivery.finished[k].as_ref()) {
            Some(finished) if s.dtype.is_float() => finished.clone(),
            _ => g,
        })
        .collect();
    delivery.deliver_rest(&results);
    Ok(results)
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
