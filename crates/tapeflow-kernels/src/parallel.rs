//! Splitting large kernels across rayon's threads in fixed-size chunks.
//!
//! Chunk boundaries depend only on the length, never on the number of threads, and every
//! chunk computes its elements exactly as the inline path would, so results are bitwise
//! identical under `RAYON_NUM_THREADS=1` and `=2`.
//!
//! Called from a rayon worker, the pieces go to a parallel iterator. Called from any other
//! thread (a program's main thread), the calling thread works beside helper jobs instead of
//! sleeping while the pool runs the kernel ([`for_each_item`]): this took the
//! elementwise ops of the 784-512-512-10 training step from 75 to 39 µs (add and ReLU of
//! the first layer) and the step from 3.88 to 3.80 ms (medians of 8 alternating runs of
//! 100 steps; 3.89 to 3.82 ms in another 10). The GEMM driver does not share this way: it enters the pool once per
//! product (its nested phases balance better on the pool's own threads; shared, the step
//! measured slower).

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

/// Elements per chunk of an elementwise kernel: 64 Ki f32 = 256 KiB of output, large enough
/// that scheduling costs vanish, small enough that both cores get many chunks.
pub const CHUNK: usize = 1 << 16;

/// Below this much work (elements × the op's cost, where an add costs 1) a kernel runs
/// inline on the calling thread; from here on a kernel of two or more chunks is split.
/// Measured on this machine (2 cores, AVX-512): with the calling thread sharing the work
/// (see the module docs), an add of 96 Ki hot f32 (two chunks) takes 8.5 µs split against
/// 11.0 µs inline, so the threshold is one chunk's worth (a smaller one would change
/// nothing: a kernel of one chunk always runs inline). History: 256 Ki until 2026-11-26
/// (handing half a kernel to a sleeping pool cost about 7 µs then), 128 Ki after the
/// training steps measured faster with it (784-512-512-10 step 5.31 vs 6.38 ms, 5 of 5
/// alternating runs), 64 Ki since the calling thread takes part.
pub const PARALLEL_MIN_WORK: usize = CHUNK;

/// Calls `f(start, chunk)` for consecutive `CHUNK`-sized pieces of `out`, in parallel when
/// `out.len() × cost` reaches [`PARALLEL_MIN_WORK`].
pub fn for_each_chunk<T: Send>(out: &mut [T], cost: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if out.len().saturating_mul(cost) < PARALLEL_MIN_WORK {
        out.chunks_mut(CHUNK).enumerate().for_each(|(i, c)| f(i * CHUNK, c));
    } else {
        for_each_item(out.chunks_mut(CHUNK).collect(), |i, c| f(i * CHUNK, c));
    }
}

/// Maps `f` over the chunk indices `0..chunks` (each of `CHUNK` input elements), in
/// parallel when the input is large, returning the results in chunk order.
pub fn map_chunks<R: Send>(len: usize, f: impl Fn(std::ops::Range<usize>) -> R + Sync + Send) -> Vec<R> {
    let chunks = len.div_ceil(CHUNK);
    let range = |i: usize| i * CHUNK..((i + 1) * CHUNK).min(len);
    if len < PARALLEL_MIN_WORK {
        (0..chunks).map(|i| f(range(i))).collect()
    } else {
        map_indices(chunks, |i| f(range(i)))
    }
}

/// `[f(0), f(1), …, f(n − 1)]`, computed in parallel as [`for_each_item`] runs its items.
pub fn map_indices<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(n).collect();
    for_each_item(results.iter_mut().collect(), |i, slot| *slot = Some(f(i)));
    // Every index ran exactly once, so every slot is filled.
    results.into_iter().flatten().collect()
}

/// Calls `f(i, item)` for every item of `items` (its index and the item), in parallel.
///
/// On a thread of a rayon pool this is a parallel iterator over the items. On any other
/// thread (a program's main thread, say) the calling thread takes part: it and
/// `current_num_threads() − 1` helper jobs in rayon's global pool claim items one at a
/// time, and the calling thread then waits, spinning, until the items claimed by the
/// helpers are done. Entering the pool instead (a parallel iterator from outside) puts
/// the calling thread to sleep until a worker has run the whole job, and the wake-up
/// costs more than a small kernel: an add of two 256 × 512 f32 tensors took 13.6 µs that
/// way against 9.6 µs shared (and 8.9 µs called from a pool worker). Which thread runs an
/// item never changes what it computes.
pub fn for_each_item<I: Send>(items: Vec<I>, f: impl Fn(usize, I) + Sync + Send) {
    let n = items.len();
    let helpers = match dispatch(n) {
        Dispatch::Inline => return items.into_iter().enumerate().for_each(|(i, item)| f(i, item)),
        Dispatch::Pool => return items.into_par_iter().enumerate().for_each(|(i, item)| f(i, item)),
        Dispatch::Share(helpers) => helpers,
    };
    // Each slot is taken exactly once (by the thread that claimed its index); the mutex
    // only hands the item over between threads.
    let slots: Vec<Mutex<Option<I>>> = items.into_iter().map(|item| Mutex::new(Some(item))).collect();
    let run = |i: usize| {
        let item = slots.get(i).and_then(|slot| lock(slot).take());
        if let Some(item) = item {
            f(i, item);
        }
    };
    share(n, helpers, &run);
}

/// How [`for_each_item`] runs `n` pieces of work.
enum Dispatch {
    /// One after the other on the calling thread: one piece, a single-thread pool, or a
    /// piece of a [`share`] already running on this thread (which has its threads).
    Inline,
    /// A parallel iterator: the calling thread is a rayon worker.
    Pool,
    /// [`share`] with this many helper jobs.
    Share(usize),
}

thread_local! {
    /// Whether this thread is running a piece of a [`share`] call. Work nested in it runs
    /// inline: the calling thread and its helpers already occupy as many threads as the
    /// pool has, and a nested parallel iterator on a helper would wake the remaining
    /// worker as one thread too many.
    static IN_SHARE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is running a piece of a [`for_each_item`] share (the calling thread
/// or a helper): work nested in it should stay on this thread, since the share already
/// occupies every thread of the pool.
pub fn sharing() -> bool {
    IN_SHARE.with(|flag| flag.get())
}

fn dispatch(n: usize) -> Dispatch {
    if n <= 1 || IN_SHARE.with(|flag| flag.get()) {
        Dispatch::Inline
    } else if rayon::current_thread_index().is_some() {
        Dispatch::Pool
    } else {
        match rayon::current_num_threads().saturating_sub(1).min(n - 1) {
            0 => Dispatch::Inline,
            helpers => Dispatch::Share(helpers),
        }
    }
}

/// How many times a waiting calling thread spins before it starts yielding its core.
const SPINS_BEFORE_YIELD: u32 = 1 << 12;

/// The state one [`share`] call hands to its helper jobs.
struct Shared {
    /// The next index to claim.
    next: AtomicUsize,
    /// How many claimed indices have finished.
    done: AtomicUsize,
    /// The number of indices.
    n: usize,
    /// The first panic of a task, re-raised on the calling thread.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// The task, with its lifetime erased (see [`share`]).
    task: Task,
}

/// A borrowed `Fn(usize) + Sync` whose lifetime [`share`] guarantees by waiting.
struct Task(*const (dyn Fn(usize) + Sync + 'static));

// SAFETY: the pointee is `Sync`, so calling it through a shared pointer from several
// threads is sound; `share` keeps it alive for every call (see there).
unsafe impl Send for Task {}
// SAFETY: as above: only shared (`&`) calls of a `Sync` closure go through the pointer.
unsafe impl Sync for Task {}

impl Shared {
    /// Claims and runs indices until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            // SAFETY: this thread claimed `i < n`, so `done < n` until the increment
            // below, and `share` does not return (ending the closure's borrow) before
            // `done == n`; the pointer is therefore live for this call. After the
            // increment this thread never touches the task again.
            let task = unsafe { &*self.task.0 };
            let outer = IN_SHARE.with(|flag| flag.replace(true));
            let result = panic::catch_unwind(AssertUnwindSafe(|| task(i)));
            IN_SHARE.with(|flag| flag.set(outer));
            if let Err(payload) = result {
                lock(&self.panic).get_or_insert(payload);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// Runs `task(i)` for `i < n` on the calling thread and `helpers` jobs spawned into
/// rayon's global pool; returns once all `n` have run (re-raising a task's panic).
///
/// A helper that starts after every index was claimed finds nothing to do and returns
/// without touching `task`, so the calling thread never waits for a helper to wake up.
fn share(n: usize, helpers: usize, task: &(dyn Fn(usize) + Sync)) {
    // SAFETY: only the lifetime changes (same fat-pointer layout). Every call through the
    // erased pointer happens in `Shared::work` after claiming an index `< n`, and this
    // function returns only after all `n` claimed calls have finished (`done == n`,
    // including calls that panicked, which are caught), so no call outlives the borrow.
    let erased: *const (dyn Fn(usize) + Sync + 'static) =
        unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), _>(task) };
    let shared = Arc::new(Shared {
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        n,
        panic: Mutex::new(None),
        task: Task(erased),
    });
    for _ in 0..helpers {
        let shared = Arc::clone(&shared);
        rayon::spawn(move || shared.work());
    }
    shared.work();
    let mut spins = 0u32;
    while shared.done.load(Ordering::Acquire) < n {
        if spins < SPINS_BEFORE_YIELD {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
    if let Some(payload) = lock(&shared.panic).take() {
        panic::resume_unwind(payload);
    }
}

/// Locks `m`, also after a panic elsewhere poisoned it (the data is a plain hand-over slot).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Runs `check` on this (non-pool) thread, where work is shared, and inside a
    /// two-thread pool, where it is a parallel iterator.
    fn both_ways(check: impl Fn() + Sync + Send) {
        check();
        rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool").install(&check);
    }

    #[test]
    fn every_item_runs_exactly_once_with_its_index() {
        both_ways(|| {
            for n in [0usize, 1, 2, 3, 17, 1000] {
                let counts: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                let items: Vec<usize> = (0..n).map(|i| i * 3).collect();
                for_each_item(items, |i, item| {
                    assert_eq!(item, i * 3);
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1), "n = {n}");
            }
        });
    }

    #[test]
    fn chunks_and_maps_cover_their_input_in_order() {
        both_ways(|| {
            let len = 3 * CHUNK + 5;
            let mut out = vec![0usize; len];
            for_each_chunk(&mut out, PARALLEL_MIN_WORK, |start, chunk| {
                for (k, x) in chunk.iter_mut().enumerate() {
                    *x = start + k;
                }
            });
            assert!(out.iter().enumerate().all(|(i, &x)| x == i));
            let sums = map_chunks(PARALLEL_MIN_WORK + 3, |r| r.start);
            assert_eq!(sums, (0..sums.len()).map(|i| i * CHUNK).collect::<Vec<_>>());
            assert_eq!(map_indices(50, |i| i * i), (0..50).map(|i| i * i).collect::<Vec<_>>());
        });
    }

    #[test]
    fn nested_work_runs_inside_shared_pieces() {
        both_ways(|| {
            let results: Vec<usize> = map_indices(2, |i| {
                if i == 0 {
                    map_indices(40, |i| i + 1).iter().sum::<usize>()
                } else {
                    let mut v = vec![0u8; 2 * CHUNK];
                    for_each_chunk(&mut v, PARALLEL_MIN_WORK, |_, c| c.fill(7));
                    v.iter().map(|&x| usize::from(x)).sum::<usize>()
                }
            });
            let (a, b) = (results[0], results[1]);
            assert_eq!((a, b), (820, 14 * CHUNK));
        });
    }

    #[test]
    fn a_panicking_task_panics_the_caller_after_the_others_finish() {
        both_ways(|| {
            let finished = AtomicU32::new(0);
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                for_each_item((0..64).collect(), |i: usize, _: usize| {
                    if i == 5 {
                        panic!("task 5 fails");
                    }
                    finished.fetch_add(1, Ordering::Relaxed);
                })
            }));
            let payload = result.expect_err("the panic reaches the caller");
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"task 5 fails"));
            // Shared work runs every other task before re-raising (a parallel iterator
            // may stop early, so only the shared case is exact).
            if rayon::current_thread_index().is_none() && rayon::current_num_threads() > 1 {
                assert_eq!(finished.load(Ordering::Relaxed), 63);
            }
            // The pool and the sharing still work afterwards.
            assert_eq!(map_indices(8, |i| i).len(), 8);
        });
    }
}
