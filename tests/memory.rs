//! Memory: a non-persistent tape frees what it saved inside `gradient()`, a persistent one
//! on drop, and nothing accumulates over many record/gradient cycles. Measured with a
//! counting global allocator (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tapeflow::prelude::*;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; the counter is only
// arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
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

/// One training-like cycle: y = sum(tanh(w·x)), dy/dw.
fn cycle(w: &Variable, x: &Tensor) -> Result<Tensor> {
    let tape = GradientTape::new();
    let y = tape.record(|| w.matmul(x)?.tanh()?.sum_all())?;
    Ok(tape.gradient(&y, w)?.expect("connected"))
}

#[test]
fn live_bytes_stay_flat_over_many_cycles_and_saved_tensors_go_with_gradient() -> Result<()> {
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
    let before = live();
    let tape = GradientTape::new();
    let y = tape.record(|| w.matmul(&x)?.tanh()?.sum_all())?;
    let recorded = live();
    assert!(recorded > before + 200, "recording saved something ({} bytes)", recorded - before);
    let g = tape.gradient(&y, &w)?.expect("connected");
    let after = live();
    drop((g, y));
    // Only the tape's empty shell and the dropped results' headroom may remain.
    assert!(live() - before < 512, "{} bytes still live after gradient()", live() - before);
    assert!(after < recorded, "gradient() released the saved tensors");
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
