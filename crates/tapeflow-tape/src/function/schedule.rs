//! How a program's calls are laid out for a replay: the parts that can run side by side.
//!
//! - **Components.** Calls connected by a value (one made, the other reads it) belong
//!   together, and so does everything with an effect on state or on the call's outcome:
//!   every call that writes a variable or can fail on data is put in one part with every
//!   read of a variable it writes, so that reads, writes and errors keep their program
//!   order. What remains splits into independent parts (the chains of a multi-chain step,
//!   forward and backward alike), which run on a thread each when at least two carry real
//!   work. Each part owns a contiguous range of value slots, so the parts run on disjoint
//!   slices of the slot list.
//! - **Stages** (within a part, or the whole program): consecutive expensive calls none of
//!   which reads another's output nor writes a variable run side by side (a matmul
//!   gradient's two products).
//!
//! Independent calls give the same bits in any order and on any thread, so the schedule
//! changes no result; the traced time of each call (`Node::nanos`) decides what is worth a
//! thread.

use std::ops::Range;

use crate::trace::{Node, Src};

/// A call must have taken this long when traced for a stage to give it a thread of its
/// own beside its neighbours (below, handing it to rayon costs more than it saves).
const STAGE_MIN_NANOS: u64 = 20_000;

/// ... and read and written at least this many elements (a 64 × 64 matmul's three
/// operands and a half).
const STAGE_MIN_ELEMENTS: usize = 1 << 13;

/// A part must have taken this long in all when traced to be worth a thread ...
const COMPONENT_MIN_NANOS: u64 = 100_000;

/// ... and its calls read and written at least this many elements in all.
const COMPONENT_MIN_ELEMENTS: usize = 1 << 16;

/// The independent parts of `nodes` (each a list of node indices in program order), when
/// at least two of them carry real work; `None` otherwise. Arguments are `Src::Arg` here:
/// reading one ties nothing together.
pub(crate) fn components(nodes: &[Node], n_slots: usize) -> Option<Vec<Vec<usize>>> {
    let n = nodes.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let union = |parent: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (find(parent, a), find(parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    };
    let mut producer: Vec<Option<usize>> = vec![None; n_slots];
    let mut effects: Option<usize> = None;
    for (k, node) in nodes.iter().enumerate() {
        for src in &node.inputs {
            if let Src::Slot(s) = src
                && let Some(p) = producer[*s as usize]
            {
                union(&mut parent, p, k);
            }
        }
        for &s in &node.outputs {
            producer[s as usize] = Some(k);
        }
        if !node.writes.is_empty() || node.fallible {
            match effects {
                Some(e) => union(&mut parent, e, k),
                None => effects = Some(k),
            }
        }
    }
    // A read of a variable that something writes joins the writers.
    if let Some(e) = effects {
        for (k, node) in nodes.iter().enumerate() {
            let Some(read) = node.read else { continue };
            if nodes.iter().any(|w| w.writes.iter().any(|v| v.handle_id() == read)) {
                union(&mut parent, e, k);
            }
        }
    }
    let mut parts: Vec<(Vec<usize>, u64, usize)> = Vec::new();
    let mut part_of_root: Vec<Option<usize>> = vec![None; n];
    for (k, node) in nodes.iter().enumerate() {
        let root = find(&mut parent, k);
        let p = *part_of_root[root].get_or_insert_with(|| {
            parts.push((Vec::new(), 0, 0));
            parts.len() - 1
        });
        parts[p].0.push(k);
        parts[p].1 = parts[p].1.saturating_add(node.nanos);
        parts[p].2 = parts[p].2.saturating_add(node.elements);
    }
    let worth = parts
        .iter()
        .filter(|(_, nanos, elements)| *nanos >= COMPONENT_MIN_NANOS && *elements >= COMPONENT_MIN_ELEMENTS)
        .count();
    (worth >= 2).then(|| parts.into_iter().map(|(nodes, _, _)| nodes).collect())
}

/// The program's stages: runs of consecutive nodes, grouped when each took at least
/// [`STAGE_MIN_NANOS`] when traced, writes no variable and reads no output of the group.
pub(crate) fn stages(nodes: &[Node]) -> Vec<Range<u32>> {
    let worth = |n: &Node| {
        n.nanos >= STAGE_MIN_NANOS && n.elements >= STAGE_MIN_ELEMENTS && n.writes.is_empty() && n.read.is_none()
    };
    let mut stages = Vec::new();
    let mut k = 0;
    while k < nodes.len() {
        let mut end = k + 1;
        if worth(&nodes[k]) {
            let mut made: Vec<u32> = nodes[k].outputs.to_vec();
            while end < nodes.len()
                && worth(&nodes[end])
                && !nodes[end].inputs.iter().any(|src| matches!(src, Src::Slot(s) if made.contains(s)))
            {
                made.extend(nodes[end].outputs.iter().copied());
                end += 1;
            }
        }
        stages.push(k as u32..end as u32);
        k = end;
    }
    stages
}
