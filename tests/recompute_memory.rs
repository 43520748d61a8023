//! `recompute_grad` trades compute for memory: a 32-block chain of recomputed blocks (each
//! 8 elementwise ops on 1 Mi elements) holds at most a quarter of the plain chain's peak
//! memory through forward and backward. Measured with a peak-tracking global allocator
//! (this test binary only), each variant in a process of its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tapeflow::prelude::*;

struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; the counters are only
// arithmetic on the sizes.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Peak = Peak;

const BLOCKS: usize = 32;
const ELEMENTS: usize = 1 << 20;

/// Eight elementwise ops, each of whose backward rules keeps its input (as a layer's
/// pre-activation is kept).
fn block(xs: &[Tensor]) -> Result<Tensor> {
    let mut h = xs[0].clone();
    for k in 0..4 {
        h = (h.sin()? * (0.9 + 0.01 * k as f64))?;
    }
    Ok(h)
}

/// The peak bytes above the starting point of one forward and backward pass through the
/// chain, and the input's gradient.
fn peak_of(recompute: bool) -> Result<(usize, Vec<f32>)> {
    let x =
        Variable::new(Tensor::from_vec((0..ELEMENTS).map(|i| (i % 97) as f32 / 97.0).collect::<Vec<_>>(), [ELEMENTS])?);
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let tape = GradientTape::new();
    let loss = tape.record(|| -> Result<Tensor> {
        let mut h = x.read();
        for _ in 0..BLOCKS {
            h = if recompute { recompute_grad(&[&h], block)? } else { block(&[h])? };
        }
        h.sum_all()
    })?;
    let grad = tape.gradient(&loss, &x)?.unwrap().to_vec::<f32>()?;
    Ok((PEAK.load(Ordering::Relaxed) - start, grad))
}

/// FNV-1a over the bits of `values`: one line of a child's report.
fn bits_hash(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3))
}

/// The environment variable that makes [`child`] measure one variant.
const VARIANT: &str = "TAPEFLOW_RECOMPUTE_MEMORY_VARIANT";

/// Runs in a child process of the test below, one per variant: a process's allocator peak is
/// only its own when nothing ran before it in that process (tensor buffers freed by an earlier
/// run wait in tapeflow's buffer pool and would serve the next one). Without the variable
/// (the normal test run) it does nothing; the test below checks what it prints.
#[test]
fn child() -> Result<()> {
    let Ok(variant) = std::env::var(VARIANT) else { return Ok(()) };
    let (peak, grad) = peak_of(variant == "recompute")?;
    println!("REPORT {peak} {}", bits_hash(&grad));
    Ok(())
}

/// The peak and gradient hash a child measured for `variant`.
fn measure(variant: &str) -> (usize, u64) {
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(VARIANT, variant)
        .output()
        .expect("the child runs");
    assert!(out.status.success(), "the {variant} child failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The harness may print "test child ... " on the same line first.
    let line = stdout.lines().find_map(|l| l.split("REPORT ").nth(1)).expect("a report line");
    let mut fields = line.split_whitespace().take(2).map(|f| f.parse::<u64>().expect("a number"));
    (fields.next().unwrap() as usize, fields.next().unwrap())
}

#[test]
fn recompute_grad_holds_a_quarter_of_the_plain_peak_or_less() {
    let (plain, plain_grad) = measure("plain");
    let (recomputed, recomputed_grad) = measure("recompute");
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!("peak memory: plain {:.0} MiB, recompute_grad {:.0} MiB", mib(plain), mib(recomputed));
    assert_eq!(plain_grad, recomputed_grad, "the same gradient, bit for bit");
    assert!(recomputed * 4 <= plain, "recompute_grad peak {} MiB > plain {} MiB / 4", mib(recomputed), mib(plain));
}
