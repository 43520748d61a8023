//! The MPI world of one process: initialization, the rank's identity, waiting on
//! collectives without ever hanging on a rank that has gone, and the exit protocol.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::request::{Request, Scope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use tapeflow_dtype::{Error, Result};

use crate::meta::{self, Verdict};

/// Set by the first [`init`]: MPI may be initialized once per process (and never again
/// after it is finalized), so a second call is an `Err` even after the first world is gone.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// How long a wait spins on the request before yielding the core between tests.
const SPIN_FOR: Duration = Duration::from_micros(200);
/// How long a wait yields before sleeping between tests, and how long each sleep lasts.
const SLEEP_AFTER: Duration = Duration::from_millis(2);
const SLEEP_FOR: Duration = Duration::from_micros(50);

/// The tag of the notice a rank sends every other rank when its [`World`] is dropped.
const TAG_LEAVING: i32 = 7;

/// Initializes MPI for this process and returns its world: every process started by
/// `mpirun -np N` is one rank of it (a program started without `mpirun` is a world of one).
///
/// MPI is initialized at thread level `FUNNELED`: rayon's threads compute, only the thread
/// that called `init` talks to MPI ([`World`] is neither `Send` nor `Sync`, so the compiler
/// holds every call to that thread). A library that cannot provide that level is an `Err`,
/// and so is a second call in the same process.
pub fn init() -> Result<World> {
    let op = "mpi::init";
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return Err(Error::InvalidArgument {
            op,
            reason: "MPI is initialized once per process: keep the World the first call returned".into(),
        });
    }
    let Some((universe, provided)) = mpi::initialize_with_threading(Threading::Funneled) else {
        return Err(Error::InvalidArgument {
            op,
            reason: "MPI was already initialized by other code in this process".into(),
        });
    };
    if provided < Threading::Funneled {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "the MPI library provides thread level {provided:?}; tapeflow needs Funneled (rayon threads beside the one that calls MPI)"
            ),
        });
    }
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    Ok(World {
        // Separate communicators, so that the collectives of one never match those of
        // another: data, the leaving notices, and the barrier of the exit protocol.
        data: world.duplicate(),
        control: world.duplicate(),
        exit: world.duplicate(),
        rank,
        size,
        started: Cell::new(0),
        departed: RefCell::new(vec![None; size]),
        buffers: RefCell::new((Vec::new(), Vec::new())),
        _funneled: PhantomData,
        _universe: universe,
    })
}

/// This process's view of the MPI job: its rank, the number of ranks, and the collectives
/// (tensor all-reduce and broadcast, [`DistributedGradientTape`](crate::DistributedGradientTape)'s
/// fused gradient all-reduce).
///
/// Every collective is called by every rank in the same order. Each first agrees on what
/// it is about (operation, dtypes, shapes; `Err` on every rank if they differ, or if one
/// rank failed to produce its input), then moves data. A rank that drops its `World` (it
/// returned, maybe with an `Err`, or panicked) tells the others; a rank waiting in a
/// collective that rank never joined then ends the job with `MPI_Abort` and a message
/// naming both, instead of waiting forever.
pub struct World {
    data: SimpleCommunicator,
    control: SimpleCommunicator,
    exit: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Collectives this rank has started on `data`: their sequence numbers.
    started: Cell<u64>,
    /// Per rank, the number of collectives it had started when it left (once its notice
    /// has arrived).
    departed: RefCell<Vec<Option<u64>>>,
    /// The fused send and receive buffers, kept from step to step.
    pub(crate) buffers: RefCell<(Vec<f32>, Vec<f32>)>,
    /// MPI runs at thread level FUNNELED: the world stays on the thread that made it (a raw
    /// pointer makes the struct neither `Send` nor `Sync`).
    _funneled: PhantomData<*const ()>,
    /// Finalizes MPI when dropped: declared last, so the communicators are freed first.
    _universe: Universe,
}

impl World {
    /// This process's rank, `0..size()`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// This rank's contiguous share of `0..n` ([`shard_range`](crate::shard_range)): the
    /// first `n % size` ranks take one row more.
    pub fn shard(&self, n: usize) -> Range<usize> {
        crate::shard_range(n, self.rank, self.size)
    }

    pub(crate) fn data(&self) -> &SimpleCommunicator {
        &self.data
    }

    /// Takes the next collective's sequence number.
    pub(crate) fn begin(&self) -> u64 {
        let seq = self.started.get();
        self.started.set(seq + 1);
        seq
    }

    /// Waits for collective `seq` (`op`, for the message). While it waits it reads the
    /// leaving notices: if a rank left before starting collective `seq`, that rank will
    /// never join it, and the job is aborted with a message naming both.
    pub(crate) fn wait<'a, D: ?Sized, S: Scope<'a>>(&self, op: &str, seq: u64, mut request: Request<'a, D, S>) {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            match request.test() {
                Ok(_) => return,
                Err(pending) => request = pending,
            }
            polls = polls.wrapping_add(1);
            // Probing for notices costs more than testing the request: one probe in 64.
            if polls.is_multiple_of(64) {
                self.read_notices();
                if let Some((rank, joined)) = self.departed_before(seq) {
                    self.abort_for(op, seq, rank, joined);
                }
            }
            // Spin while the other ranks are about to arrive (the usual case: they compute
            // the same step), then give the core away: a rank waiting for a slower one must
            // not slow it down further on a shared or oversubscribed machine.
            let waited = start.elapsed();
            if waited > SLEEP_AFTER {
                std::thread::sleep(SLEEP_FOR);
            } else if waited > SPIN_FOR {
                std::thread::yield_now();
            }
        }
    }

    /// Receives the leaving notices that have arrived.
    fn read_notices(&self) {
        while let Some(status) = self.control.any_process().immediate_probe_with_tag(TAG_LEAVING) {
            let from = status.source_rank();
            let (joined, _) = self.control.process_at_rank(from).receive_with_tag::<u64>(TAG_LEAVING);
            self.departed.borrow_mut()[from as usize] = Some(joined);
        }
    }

    /// A rank that left having started fewer than `seq + 1` collectives.
    fn departed_before(&self, seq: u64) -> Option<(usize, u64)> {
        self.departed.borrow().iter().enumerate().find_map(|(r, d)| d.filter(|&joined| joined <= seq).map(|j| (r, j)))
    }

    fn abort_for(&self, op: &str, seq: u64, rank: usize, joined: u64) -> ! {
        eprintln!(
            "tapeflow::mpi: rank {rank} ended (returned, failed or panicked) after {joined} collectives, while rank {} waits in `{op}` \
             (collective {}); it will never join, so the job is aborted",
            self.rank,
            seq + 1
        );
        self.data.abort(1)
    }

    /// One agreement round (see `meta`): `Ok` if every rank calls `op` with the same
    /// signature and none failed. Every rank reaches the same verdict.
    pub(crate) fn agree(
        &self,
        op: &'static str,
        signature: u64,
        failed: bool,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.size == 1 {
            // One rank agrees with itself; its own failure is its caller's `Err`.
            return if failed {
                Err(Error::InvalidArgument { op, reason: "rank 0 failed before the collective".into() })
            } else {
                Ok(())
            };
        }
        let local = meta::local_words(signature, self.rank, failed);
        let mut reduced = [0u64; 3];
        let seq = self.begin();
        mpi::request::scope(|scope| {
            let request =
                self.data.immediate_all_reduce_into(scope, &local[..], &mut reduced[..], SystemOperation::max());
            self.wait(op, seq, request);
        });
        match meta::verdict(reduced) {
            Verdict::Agreed => Ok(()),
            Verdict::Failed { rank } => Err(Error::InvalidArgument {
                op,
                reason: format!("rank {rank} failed before the collective (nothing was exchanged)"),
            }),
            Verdict::Mismatch => Err(Error::InvalidArgument {
                op,
                reason: format!(
                    "the ranks disagree: rank {} has {}, another rank has other shapes or dtypes or calls another collective (nothing was exchanged)",
                    self.rank,
                    what()
                ),
            }),
        }
    }
}

impl Drop for World {
    /// The exit protocol: tell every other rank how many collectives this one started, then
    /// wait in a barrier (on its own communicator) until every rank has left too. A rank
    /// still waiting in a collective this one never joined aborts the job when it reads
    /// the notice; a healthy job passes the barrier and finalizes.
    fn drop(&mut self) {
        if self.size < 2 {
            return;
        }
        let notice = [self.started.get()];
        mpi::request::scope(|scope| {
            let sends: Vec<_> = (0..self.size)
                .filter(|&r| r != self.rank)
                .map(|r| {
                    self.control.process_at_rank(r as i32).immediate_send_with_tag(scope, &notice[..], TAG_LEAVING)
                })
                .collect();
            let mut barrier = self.exit.immediate_barrier();
            loop {
                match barrier.test() {
                    Ok(_) => break,
                    Err(pending) => barrier = pending,
                }
                // Other ranks may still compute for long (rank 0 evaluating): do not spin.
                std::thread::sleep(SLEEP_FOR);
            }
            // Every rank sent its notice before entering the barrier: collect the rest.
            self.read_notices();
            let missing: Vec<usize> =
                (0..self.size).filter(|&r| r != self.rank && self.departed.borrow()[r].is_none()).collect();
            for r in missing {
                let (joined, _) = self.control.process_at_rank(r as i32).receive_with_tag::<u64>(TAG_LEAVING);
                self.departed.borrow_mut()[r] = Some(joined);
            }
            for send in sends {
                send.wait_without_status();
            }
        });
    }
}
