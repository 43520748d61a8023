//! The backward pass on several threads: independent ops on rayon as they become ready
//! ([`run_dynamic`]), or each connected component of the graph on one thread
//! ([`run_components`]).

use std::sync::Mutex;

use smallvec::SmallVec;
use tapeflow_dtype::{Error, Result};
use tapeflow_kernels::isa;

use super::Pass;
use crate::context::Link;

/// Runs the ops of `ready` and everything they make ready on rayon, without waves: a
/// thread that finishes an op continues with one op it made ready (so a chain tends to stay
/// on one core) and offers the others to idle threads. The pass's bookkeeping is shared
/// under a lock held only between ops; the order keys keep the sums independent of which
/// thread ran what. The first error stops the pass.
pub(super) fn run_dynamic(pass: &mut Pass<'_>, ready: Vec<usize>) -> Result<()> {
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
pub(super) const COMPONENT_MIN_WORK: usize = 1 << 16;

/// One connected part of the live graph: its entries in reverse recording order (a valid
/// backward order) and their summed work.
pub(super) struct Component {
    entries: Vec<usize>,
    pub(super) work: usize,
}

/// The live entries grouped into connected parts: two entries are in one part when one
/// consumes the other's output or both feed the same watched leaf. Parts share no
/// gradient slot, so they can run side by side without changing any sum.
pub(super) fn components(pass: &Pass<'_>) -> Vec<Component> {
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
pub(super) fn run_components(pass: &mut Pass<'_>, mut parts: Vec<Component>) -> Result<()> {
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
