//! Memory: a non-persistent tape frees what it saved inside `gradient()`, a persistent one
//! on drop, and nothing accumulates over many record/gradient cycles. Measured with a
//! counting global allocator (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tapeflow::prelude::*;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Allocations made by this thread (tests run on several threads at once).
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: every call forwards to the system allocator unchanged; the counter is only
// arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // A const-initialised Cell has no destructor, so this never allocates or fails
        // during thread teardown.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn allocations() -> usize {
    ALLOCATIONS.with(|n| n.get())
}

/// `steps` × (y = y·1.0001 + 0.5): two ops per step.
fn chain(start: &Tensor, steps: usize) -> Result<Tensor> {
    let mut y = start.clone();
    for _ in 0..steps {
        y = ((&y * 1.0001)? + 0.5)?;
    }
    Ok(y)
}

/// Per-op allocations. Called from the one test below: live bytes are process-wide, and a
/// second test running beside it (or the harness reporting it) would disturb them.
fn one_allocation_per_op() -> Result<()> {
    const STEPS: usize = 1000;
    // Values of up to 16 bytes are held by value: their ops allocate nothing. Larger ones
    // allocate exactly their output.
    let small = [Tensor::scalar(1.5f32), Tensor::from_vec(vec![1.5f32, 2.0, -1.0, 0.0], [4])?];
    let large = Tensor::from_vec(vec![1.5f32, 2.0, -1.0, 0.0, 0.25], [5])?;
    for (start, per_op) in small.into_iter().map(|t| (t, 0)).chain([(large, 1)]) {
        let x = Variable::new(start.clone());
        chain(&start, 1)?; // the literals' first use

        // No tape: the outputs only.
        let before = allocations();
        std::hint::black_box(chain(&start, STEPS)?);
        let unrecorded = allocations() - before;
        assert_eq!(unrecorded, per_op * 2 * STEPS, "unrecorded ops on {start}");

        // Recording adds nothing per op; the tape's own growth (its entry list and id map
        // double in size) is logarithmic, and creating it costs a few.
        let before = allocations();
        let tape = GradientTape::new();
        let y = tape.record(|| chain(&x.read(), STEPS))?;
        let recorded = allocations() - before;
        assert!(
            recorded <= per_op * 2 * STEPS + 64,
            "{recorded} allocations for {} recorded ops on {start}",
            2 * STEPS
        );
        assert!(tape.gradient(&y, &x)?.is_some());
    }

    // The other op families: recording adds no allocation to what the ops themselves
    // allocate (outputs, and any scratch the kernels use).
    let mixed = |x: &Tensor, steps: usize| -> Result<Tensor> {
        let w = Tensor::from_vec(vec![0.5f32, -0.25, 0.125, 1.0], [2, 2])?;
        let mut y = x.clone();
        for _ in 0..steps {
            let m = y.matmul(&w)?.transpose(&[1, 0])?.reshape([2, 2])?;
            let s = m.sum(&[0], true)?.broadcast_to([2, 2])?.cast(DType::F32)?;
            y = (m.tanh()? + s.mean_all()?)?;
        }
        Ok(y)
    };
    let start = Tensor::from_vec(vec![0.1f32, 0.2, 0.3, 0.4], [2, 2])?;
    let x = Variable::new(start.clone());
    mixed(&start, 1)?;
    let before = allocations();
    std::hint::black_box(mixed(&start, STEPS / 10)?);
    let unrecorded = allocations() - before;
    let before = allocations();
    let tape = GradientTape::new();
    let y = tape.record(|| mixed(&x.read(), STEPS / 10))?;
    let recorded = allocations() - before;
    assert!(
        recorded <= unrecorded + 64,
        "recording {} mixed ops: {recorded} allocations, {unrecorded} without a tape",
        9 * STEPS / 10
    );
    assert!(tape.gradient(&y, &x)?.is_some());
    Ok(())
}

/// One training-like cycle: y = sum(tanh(w·x)), dy/dw.
fn cycle(w: &Variable, x: &Tensor) -> Result<Tensor> {
    let tape = GradientTape::new();
    let y = tape.record(|| w.matmul(x)?.tanh()?.sum_all())?;
    Ok(tape.gradient(&y, w)?.expect("connected"))
}

#[test]
fn one_allocation_per_op_flat_live_bytes_and_saved_tensors_freed() -> Result<()> {
    one_allocation_per_op()?;
    let w = Variable::new(Tensor::from_vec((0..16).map(|v| v as f32 * 0.01).collect::<Vec<_>>(), [4, 4])?);
    let x = Tensor::from_vec(vec![0.5f32; 8], [4, 2])?;

    // Warm up (thread-locals, lazily built statics), then measure.
    for _ in 0..100 {
        cycle(&w, &x)?;
    }
    let start = live();
    for _ in 0..100_000 {
        let g = cycle(&w, &x)?;
        std::hint::black_box(g);
    }
    let end = live();
    assert!((end - start).abs() < 4096, "live bytes drifted by {} over 100 000 cycles", end - start);

    // Saved tensors: the tape holds more after recording, and inside gradient() it
    // releases everything but the result.
    // (tanh and exp each save their output; the result, dy/dw, is as large as one of them.)
    let before = live();
    let tape = GradientTape::new();
    let y = tape.record(|| w.matmul(&x)?.tanh()?.exp()?.sum_all())?;
    let recorded = live();
    assert!(recorded > before + 200, "recording saved something ({} bytes)", recorded - before);
    let g = tape.gradient(&y, &w)?.expect("connected");
    let after = live();
    drop((g, y));
    // Only the tape's empty shell and the dropped results' headroom may remain.
    assert!(live() - before < 512, "{} bytes still live after gradient()", live() - before);
    assert!(
        after < recorded,
        "gradient() released the saved tensors: before {before}, recorded {recorded}, after {after}"
    );
    drop(tape);

    // A persistent tape keeps what it saved until dropped.
    let before = live();
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| w.matmul(&x)?.tanh()?.sum_all())?;
    let _ = tape.gradient(&y, &w)?;
    assert!(live() > before + 200, "a persistent tape keeps its recording");
    drop((tape, y));
    assert!(live() - before < 512, "{} bytes still live after dropping a persistent tape", live() - before);
    Ok(())
}
