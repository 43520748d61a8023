//! The gradients' all-reduce, overlapped with the backward pass: each gradient is packed
//! into the fused buffer as soon as the pass has finished it (while it is still in cache),
//! and each bucket's non-blocking all-reduce starts as soon as all its gradients are packed
//! (PyTorch DDP's buckets). Between backward ops the pass tests the oldest open request,
//! which is when Open MPI moves data (it has no progress thread of its own).
//!
//! The buffer ends in a trailer that every rank fills after its pass: one presence flag per
//! gradient (so a gradient is `None` only where it is `None` on every rank) and one failure
//! flag per rank (so a pass that failed on one rank is an `Err` on every rank). Both ride in
//! the last bucket, so agreeing on them costs no collective of its own.

use std::collections::VecDeque;
use std::ops::Range;

use mpi::collective::SystemOperation;
use mpi::request::{LocalScope, Request};
use mpi::traits::*;
use tapeflow_dtype::{Error, Result};
use tapeflow_tape::{GradientSink, Tensor};

use crate::bucket::Layout;
use crate::collective::describe;
use crate::world::World;

/// One streamed all-reduce of a layout's buckets, as a [`GradientSink`].
pub(crate) struct Reducer<'a, 's> {
    op: &'static str,
    world: &'a World,
    layout: &'a Layout,
    scope: &'s LocalScope<'a>,
    /// Per source (by the caller's position), its slot in the layout (float sources only).
    slot_of: Vec<Option<usize>>,
    /// Per slot: packed yet, and whether this rank had a gradient for it.
    packed: Vec<bool>,
    present: Vec<bool>,
    /// Per bucket, its send and receive elements until its all-reduce starts.
    send: Vec<Option<&'a mut [f32]>>,
    recv: Vec<Option<&'a mut [f32]>>,
    /// Per bucket, the slots (and the trailer) it is still waiting for.
    missing: Vec<usize>,
    /// The next bucket to start: buckets start in order on every rank, as MPI requires.
    next: usize,
    open: VecDeque<(u64, Request<'a, [f32], &'s LocalScope<'a>>)>,
    /// This rank's first failure: a gradient that does not fit its source.
    error: Option<Error>,
    /// The gradients of sources without a slot (int32: never summed; zeros or `None` on
    /// every rank alike, as the options say), by source position.
    unsummed: Vec<Option<Tensor>>,
}

impl<'a, 's> Reducer<'a, 's> {
    /// A reducer of `layout` over `send` and `recv` (each `layout.total` long); `sources` is
    /// the number of sources the tape is asked for.
    pub(crate) fn new(
        op: &'static str,
        world: &'a World,
        layout: &'a Layout,
        scope: &'s LocalScope<'a>,
        sources: usize,
        send: &'a mut [f32],
        recv: &'a mut [f32],
    ) -> Self {
        let buckets = layout.bucket_count();
        let (mut send_rest, mut recv_rest) = (send, recv);
        let (mut send_buckets, mut recv_buckets) = (Vec::with_capacity(buckets), Vec::with_capacity(buckets));
        for bucket in layout.buckets() {
            let (s, rest) = std::mem::take(&mut send_rest).split_at_mut(bucket.len());
            send_rest = rest;
            send_buckets.push(Some(s));
            let (r, rest) = std::mem::take(&mut recv_rest).split_at_mut(bucket.len());
            recv_rest = rest;
            recv_buckets.push(Some(r));
        }
        let mut missing = vec![0; buckets];
        let mut slot_of = vec![None; sources];
        for (k, slot) in layout.slots.iter().enumerate() {
            slot_of[slot.index] = Some(k);
            for b in layout.buckets_of(&slot.range) {
                missing[b] += 1;
            }
        }
        for b in layout.buckets_of(&layout.trailer) {
            missing[b] += 1;
        }
        let slots = layout.slots.len();
        Reducer {
            op,
            world,
            layout,
            scope,
            slot_of,
            packed: vec![false; slots],
            present: vec![false; slots],
            send: send_buckets,
            recv: recv_buckets,
            missing,
            next: 0,
            open: VecDeque::new(),
            error: None,
            unsummed: vec![None; sources],
        }
    }

    /// Packs slot `k` from `gradient` into its buckets and starts those now complete.
    fn pack(&mut self, k: usize, gradient: Option<&Tensor>) {
        if self.packed[k] {
            return;
        }
        let slot = &self.layout.slots[k];
        for b in self.layout.buckets_of(&slot.range) {
            let range = self.layout.bucket_range(b);
            // A bucket starts only once all its slots are packed: this one has not.
            if let Some(dst) = self.send[b].as_deref_mut() {
                self.layout.pack_slot(slot, range, dst, gradient);
            }
            self.missing[b] -= 1;
        }
        self.packed[k] = true;
        self.present[k] = gradient.is_some();
        self.start_ready();
    }

    /// Starts, in order, every bucket that has all its elements.
    fn start_ready(&mut self) {
        while self.next < self.missing.len() && self.missing[self.next] == 0 {
            let b = self.next;
            let (Some(send), Some(recv)) = (self.send[b].take(), self.recv[b].take()) else { break };
            let seq = self.world.begin();
            let send: &'a [f32] = send;
            let request = self.world.data().immediate_all_reduce_into(self.scope, send, recv, SystemOperation::sum());
            self.open.push_back((seq, request));
            self.next += 1;
        }
    }

    /// After this rank's pass (`outcome`): packs what the pass did not deliver as zeros,
    /// fills the trailer, starts the remaining buckets and waits for all of them. `Err`:
    /// this rank's own failure (the others learn of it from the trailer, [`verdict`]);
    /// `Ok`: the gradients of the sources without a slot.
    pub(crate) fn finish(mut self, outcome: Result<Vec<Option<Tensor>>>) -> Result<Vec<Option<Tensor>>> {
        let own = match outcome {
            Ok(_) => self.error.take(),
            Err(error) => Some(error),
        };
        for k in 0..self.layout.slots.len() {
            self.pack(k, None);
        }
        // The trailer: presence flags, then one failure flag per rank (a tensor all-reduce
        // has none: its single rank-agreed tensor needs no flags).
        let trailer = self.layout.trailer.clone();
        let flags: Vec<f32> = self
            .present
            .iter()
            .map(|&p| f32::from(u8::from(p)))
            .chain((0..self.world.size()).map(|r| f32::from(u8::from(r == self.world.rank() && own.is_some()))))
            .collect();
        debug_assert!(trailer.is_empty() || trailer.len() == flags.len());
        for b in self.layout.buckets_of(&trailer) {
            let range = self.layout.bucket_range(b);
            if let Some(dst) = self.send[b].as_deref_mut() {
                write_part(&trailer, &flags, &range, dst);
            }
            self.missing[b] -= 1;
        }
        self.start_ready();
        while let Some((seq, request)) = self.open.pop_front() {
            self.world.wait(self.op, seq, request);
        }
        own.map_or(Ok(self.unsummed), Err)
    }
}

/// The trailer length for `slots` gradients on `ranks` ranks.
pub(crate) fn trailer_len(slots: usize, ranks: usize) -> usize {
    slots + ranks
}

/// What the summed buffer's trailer says: `Ok` with, per slot, whether some rank had a
/// gradient for it, or the `Err` naming the first rank whose pass failed.
pub(crate) fn verdict(op: &'static str, layout: &Layout, summed: &[f32]) -> Result<Vec<bool>> {
    let (present, failed) = summed[layout.trailer.clone()].split_at(layout.slots.len());
    if let Some(rank) = failed.iter().position(|&f| f > 0.0) {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "rank {rank} failed in its backward pass (its own call returns that error): no rank gets gradients"
            ),
        });
    }
    Ok(present.iter().map(|&p| p > 0.0).collect())
}

/// Copies the part of `values` (the elements `whole`) that lies in `bucket` into `dst`.
fn write_part(whole: &Range<usize>, values: &[f32], bucket: &Range<usize>, dst: &mut [f32]) {
    let (from, to) = (whole.start.max(bucket.start), whole.end.min(bucket.end));
    if from < to {
        dst[from - bucket.start..to - bucket.start].copy_from_slice(&values[from - whole.start..to - whole.start]);
    }
}

impl GradientSink for Reducer<'_, '_> {
    fn ready(&mut self, index: usize, gradient: Option<&Tensor>) {
        let Some(k) = self.slot_of.get(index).copied().flatten() else {
            // Integer sources have no slot: their gradient is the same on every rank.
            if let Some(slot) = self.unsummed.get_mut(index) {
                *slot = gradient.cloned();
            }
            return;
        };
        let slot = &self.layout.slots[k];
        let gradient = match gradient {
            Some(g) if g.dtype() != slot.dtype || g.dims() != slot.dims.as_slice() => {
                // The layout is the sources' own: a gradient of another shape or dtype
                // cannot be summed; it counts as a failure of this rank.
                self.error.get_or_insert_with(|| Error::InvalidArgument {
                    op: self.op,
                    reason: format!(
                        "a gradient of {} for a source of {}",
                        describe(g.dtype(), g.dims()),
                        describe(slot.dtype, &slot.dims)
                    ),
                });
                None
            }
            g => g,
        };
        self.pack(k, gradient);
    }

    fn between_ops(&mut self) {
        // Testing one request runs Open MPI's progress engine for all of them.
        if let Some((seq, request)) = self.open.pop_front() {
            match request.test() {
                Ok(_) => {}
                Err(request) => self.open.push_front((seq, request)),
            }
        }
    }
}
