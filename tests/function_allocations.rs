//! What a replay of a compiled step allocates, counted by a global allocator (this test
//! binary only). The replay itself allocates nothing after the second call: the program's
//! slots and result list keep their capacity, inputs and outputs of a node are inline
//! small vectors, and no tape is built. What is left is the kernels' own: a tensor's
//! storage handle, and scratch some kernels allocate per call (broadcast plans, GEMM task
//! lists and packing buffers, reduction groups, label checks) — the scalar chain, whose
//! tensors live inline and whose kernels need no scratch, allocates nothing at all.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tapeflow::function;
use tapeflow::prelude::*;

struct Counting;

thread_local! {
    /// Allocations made by this thread.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call forwards to the system allocator unchanged; the counter is only
// arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // A const-initialised Cell has no destructor: never allocates during teardown.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations of each of `calls` calls of `f` after `warm` calls.
fn per_call(warm: usize, calls: usize, mut f: impl FnMut()) -> Vec<usize> {
    for _ in 0..warm {
        f();
    }
    (0..calls)
        .map(|_| {
            let before = allocations();
            f();
            allocations() - before
        })
        .collect()
}

/// The digits model's step (64-128-10, a batch of 64, Adam) on this thread alone (a pool of
/// one thread: the kernels' own splitting would count on other threads).
#[test]
fn a_replayed_training_step_allocates_only_in_its_kernels() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        let x = Tensor::from_vec((0..64 * 64).map(|i| (i % 17) as f32 / 17.0).collect(), [64, 64]).unwrap();
        let labels = Tensor::from_vec((0..64).map(|i| i % 10).collect(), [64]).unwrap();
        let w1 = Variable::new(tapeflow::init::glorot_uniform([64, 128], DType::F32, 1).unwrap());
        let b1 = Variable::new(Tensor::zeros([128], DType::F32));
        let w2 = Variable::new(tapeflow::init::glorot_uniform([128, 10], DType::F32, 2).unwrap());
        let b2 = Variable::new(Tensor::zeros([10], DType::F32));
        let vars = [&w1, &b1, &w2, &b2];
        let mut opt = Adam::new(0.01);
        let mut step = function(|(x, labels): (Tensor, Tensor)| -> Result<Tensor> {
            let tape = GradientTape::new();
            let loss = tape.record(|| {
                let h = (x.matmul(&w1)? + &b1)?.relu()?;
                ((h.matmul(&w2)? + &b2)?).sparse_softmax_cross_entropy(&labels)?.mean_all()
            })?;
            let grads = tape.gradients(&[&loss], &vars)?;
            opt.apply_gradients(&grads, &vars)?;
            Ok(loss)
        });
        let counts = per_call(3, 5, || drop(step.call((x.clone(), labels.clone())).unwrap()));
        assert_eq!(step.trace_count(), 1);
        drop(step);
        // The same step eagerly, for the kernels' share.
        let mut opt = Adam::new(0.01);
        let eager = per_call(3, 5, || {
            let tape = GradientTape::new();
            let loss = tape
                .record(|| {
                    let h = (x.matmul(&w1)? + &b1)?.relu()?;
                    ((h.matmul(&w2)? + &b2)?).sparse_softmax_cross_entropy(&labels)?.mean_all()
                })
                .unwrap();
            let grads = tape.gradients(&[&loss], &vars).unwrap();
            opt.apply_gradients(&grads, &vars).unwrap();
        });
        println!("allocations per step: replayed {counts:?}, eager {eager:?}");
        assert!(counts.windows(2).all(|w| w[0] == w[1]), "a replay's allocations are the same every call: {counts:?}");
        assert!(counts[0] < eager[0], "a replay allocates less than the eager step: {counts:?} against {eager:?}");
    });
}

/// The scalar chain of 100 with its gradient: tensors this small live inline.
#[test]
fn a_replayed_scalar_chain_allocates_nothing() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        let v = Variable::new(0.5);
        let mut chain = function(|()| -> Result<Tensor> {
            let tape = GradientTape::new();
            let y = tape.record(|| {
                let mut y = v.read();
                for _ in 0..100 {
                    y = ((&y * 1.0001)? + 0.5)?;
                }
                Ok::<_, Error>(y)
            })?;
            Ok(tape.gradient(&y, &v)?.unwrap())
        });
        let counts = per_call(3, 5, || drop(chain.call(()).unwrap()));
        assert!(counts.iter().all(|&n| n == 0), "allocations per replay: {counts:?}");
    });
}
