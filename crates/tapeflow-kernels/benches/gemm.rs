//! GEMM throughput against the machine's measured FMA peak.
//!
//! `cargo bench -p tapeflow-kernels --bench gemm` reports, for each size, GFLOP/s
//! (2·m·n·k flops per product) and the percentage of the FMA peak. The machine is shared
//! and its clock drifts, so every round times the peak and the product back to back and
//! the report gives medians over the rounds: of GFLOP/s, of the peak, and of the per-round
//! ratio (the "% of peak" column). The peak is `isa::fma_peak_probe`: independent FMA chains
//! at the kernels' level (more than FMA latency × ports, so the FMA ports never wait) on as
//! many threads as rayon uses.
//!
//! Other modes (arguments after `--`): `sweep N [min_tasks] [kernels]` tries blocking
//! parameters at size N; `inline` compares inline and rayon runs of small products;
//! `kernel` times the micro-kernel alone on L1-resident data; `one N` runs one size (for
//! profiling). `best` makes sweeps report the best run instead of the median.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use half::f16;
use tapeflow_kernels::gemm::{Element, KernelShape, MatRef, Tuning, bench_kernel, gemm_tuned};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One peak measurement (~30 ms), GFLOP/s: on every thread of rayon's pool when
/// `threads > 1` (the same threads the products use: spawning others would compete with
/// rayon's workers, which spin for a while after each product), else on this thread.
fn peak_once(threads: usize) -> f64 {
    let iters = 1_000_000u64;
    let t = Instant::now();
    let flops: u64 = if threads > 1 {
        rayon::broadcast(|_| black_box(tapeflow_kernels::isa::fma_peak_probe(iters)).1).iter().sum()
    } else {
        black_box(tapeflow_kernels::isa::fma_peak_probe(iters)).1
    };
    flops as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// Operands and output of one `n³` product, reused across runs.
struct Case<T> {
    a: Vec<T>,
    b: Vec<T>,
    c: Vec<f32>,
    n: usize,
    /// Read A (B) as the transpose of the stored matrix.
    trans: (bool, bool),
}

impl<T: Element + Copy> Case<T> {
    fn new(n: usize, conv: impl Fn(f32) -> T) -> Self {
        let a = values(n * n, 1).into_iter().map(&conv).collect();
        let b = values(n * n, 2).into_iter().map(&conv).collect();
        let mut case = Case { a, b, c: vec![0.0; n * n], n, trans: (false, false) };
        case.run(&Tuning::default()); // warm-up: buffers, pool, page faults
        case
    }

    fn run(&mut self, t: &Tuning) {
        let av = MatRef::op(&self.a, self.n, self.n, self.trans.0).unwrap();
        let bv = MatRef::op(&self.b, self.n, self.n, self.trans.1).unwrap();
        gemm_tuned(av, bv, &mut self.c, t).unwrap();
    }

    /// GFLOP/s of one timed run of enough products to take ≥ ~50 ms.
    fn time(&mut self, t: &Tuning) -> f64 {
        let flops = 2.0 * (self.n as f64).powi(3);
        let reps = ((1e10 / flops) as usize).max(1);
        let start = Instant::now();
        for _ in 0..reps {
            self.run(t);
        }
        black_box(&self.c);
        flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9
    }
}

fn parse_cfg(spec: &str) -> Option<Tuning> {
    let parts: Vec<&str> = spec.split(':').collect();
    let kernel = match *parts.first()? {
        "k14" => KernelShape::K14x32,
        "k12" => KernelShape::K12x32,
        "k8" => KernelShape::K8x48,
        "k6" => KernelShape::K6x64,
        "k28" => KernelShape::K28x16,
        "k6x16" => KernelShape::K6x16,
        "k3x16" => KernelShape::K3x16,
        _ => return None,
    };
    let d = Tuning::default();
    let kc = parts.get(1).and_then(|x| x.parse().ok()).unwrap_or(d.kc);
    let (a_outer, ncb) = match parts.get(2) {
        Some(&"b") => (false, 0),
        Some(o) => (true, o.trim_start_matches('a').parse().ok()?),
        None => (d.a_outer, d.ncb),
    };
    let mc = parts.get(3).and_then(|x| x.parse().ok()).unwrap_or(d.mc);
    let min_tasks = parts.get(4).and_then(|x| x.parse().ok()).unwrap_or(d.min_tasks);
    Some(Tuning { kernel, kc, a_outer, ncb, mc, min_tasks, ..d })
}

static BEST: AtomicBool = AtomicBool::new(false);

/// Median (or best, with `best`: interference only ever adds time) of `runs` timings.
fn sweep_point(n: usize, t: &Tuning, runs: usize) -> f64 {
    let mut case = Case::new(n, |x| x);
    let g: Vec<f64> = (0..runs).map(|_| case.time(t)).collect();
    if BEST.load(Ordering::Relaxed) { g.iter().fold(0.0, |a, &b| a.max(b)) } else { median(g) }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let has = |name: &str| args.iter().position(|a| a == name);
    let num = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    BEST.store(has("best").is_some(), Ordering::Relaxed);
    let threads = rayon::current_num_threads();
    println!("kernels at {} (best on this CPU: {})", tapeflow_kernels::isa(), tapeflow_kernels::isa::detected());

    if let Some(pos) = has("one") {
        let n = num(pos + 1, 1024);
        let t = args.get(pos + 2).and_then(|c| parse_cfg(c)).unwrap_or_default();
        let mut case = Case::new(n, |x| x);
        case.trans = (has("ta").is_some(), has("tb").is_some());
        let g: Vec<f64> = (0..9).map(|_| case.time(&t)).collect();
        let best = g.iter().fold(0.0f64, |a, &b| a.max(b));
        println!("ours  n={n}: median {:.1} best {best:.1}", median(g));
        return;
    }
    let peak_all = median((0..9).map(|_| peak_once(threads)).collect());
    let peak1 = median((0..9).map(|_| peak_once(1)).collect());
    println!("FMA peak: {peak1:.1} GFLOP/s on 1 thread, {peak_all:.1} GFLOP/s on {threads} threads");

    if let Some(pos) = has("sweep") {
        // `sweep N cfg...`, cfg = kernel:kc:order[:mc[:tasks]] with kernel k14|k12|k8|k6,
        // order `b` (B sliver outer) or `aNCB` (A sliver outer, B chunks of NCB columns).
        // Round-robin over the configurations so that clock drift hits all alike; reports
        // the median GFLOP/s and the median ratio to the first configuration.
        let n = num(pos + 1, 1024);
        let cfgs: Vec<Tuning> = args[pos + 2..].iter().filter_map(|c| parse_cfg(c)).collect();
        let mut case = Case::new(n, |x| x);
        let rounds = if cfgs.len() == 1 {
            41
        } else if n >= 2048 {
            7
        } else {
            11
        };
        let mut g = vec![Vec::new(); cfgs.len()];
        for _ in 0..rounds {
            for (i, t) in cfgs.iter().enumerate() {
                g[i].push(case.time(t));
            }
        }
        if cfgs.len() == 1 {
            let mut v = g[0].clone();
            v.sort_by(|a, b| a.total_cmp(b));
            println!("all runs: {:?}", v.iter().map(|x| x.round() as i64).collect::<Vec<_>>());
        }
        for (i, t) in cfgs.iter().enumerate() {
            let ratio = median(g[i].iter().zip(&g[0]).map(|(x, y)| x / y).collect());
            let best = g[i].iter().fold(0.0f64, |a, &b| a.max(b));
            println!(
                "n={n} {:?} kc={} mc={} a_outer={} ncb={} tasks={}: median {:6.1} best {best:6.1} GFLOP/s ({:.1}% of peak) ratio {ratio:.3}",
                t.kernel,
                t.kc,
                t.mc,
                t.a_outer,
                t.ncb,
                t.min_tasks,
                median(g[i].clone()),
                100.0 * best / peak_all
            );
        }
        return;
    }
    if let Some(pos) = has("indep") {
        // `indep N`: each pool thread runs its own single-threaded (inline) products at
        // once: the hardware's scaling without any work splitting.
        let n = num(pos + 1, 1024);
        let t = Tuning { inline_below: usize::MAX, ..Tuning::default() };
        for _ in 0..5 {
            let start = Instant::now();
            let per: Vec<f64> = rayon::broadcast(|_| {
                let mut case = Case::new(n, |x| x);
                case.time(&t)
            });
            let wall = start.elapsed().as_secs_f64();
            println!("indep n={n}: per thread {per:.1?} GFLOP/s, sum {:.1} (wall {wall:.2}s)", per.iter().sum::<f64>());
        }
        return;
    }
    if has("overhead").is_some() {
        for _ in 0..3 {
            let reps = 20_000;
            let t0 = Instant::now();
            for _ in 0..reps {
                rayon::scope(|_| black_box(()));
            }
            let enter = t0.elapsed().as_secs_f64() / reps as f64 * 1e6;
            let t0 = Instant::now();
            for _ in 0..reps {
                rayon::scope(|_| {
                    rayon::join(|| black_box(1), || black_box(2));
                    rayon::join(|| black_box(1), || black_box(2));
                });
            }
            let two = t0.elapsed().as_secs_f64() / reps as f64 * 1e6;
            println!("rayon::scope from outside: {enter:.2} µs; with two joins inside: {two:.2} µs");
        }
        return;
    }
    if let Some(pos) = has("api") {
        // `api N`: only `matmul()` at one size (for profiling the op's own overhead).
        let n = num(pos + 1, 256);
        let x = tapeflow_dtype::Tensor::<()>::from_vec(values(n * n, 1), [n, n]).unwrap();
        let y = tapeflow_dtype::Tensor::<()>::from_vec(values(n * n, 2), [n, n]).unwrap();
        let flops = 2.0 * (n as f64).powi(3);
        let reps = ((1e10 / flops) as usize).max(1);
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..reps {
                black_box(tapeflow_kernels::matmul(&x, &y, false, false).unwrap());
            }
            println!("matmul() n={n}: {:.1} GFLOP/s", flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9);
        }
        return;
    }
    if has("kernel").is_some() {
        for kernel in KernelShape::ALL {
            for kc in [64, 128, 256, 512] {
                let runs = (0..7)
                    .map(|_| {
                        let t = Instant::now();
                        let f = bench_kernel(kernel, kc, 200_000_000 / (kc * 400));
                        f / t.elapsed().as_secs_f64() / 1e9
                    })
                    .collect();
                let g = median(runs);
                println!("kernel {kernel:?} kc={kc}: {g:.1} GFLOP/s ({:.1}% of 1-thread peak)", 100.0 * g / peak1);
            }
        }
        return;
    }
    if has("inline").is_some() {
        for n in [32, 48, 64, 96, 128, 144, 160, 176, 192, 224, 256] {
            let inl = sweep_point(n, &Tuning { inline_below: usize::MAX, ..Tuning::default() }, 15);
            let par = sweep_point(n, &Tuning { inline_below: 0, ..Tuning::default() }, 15);
            println!("n={n:4} ({:7} FMAs) inline {inl:7.1} GFLOP/s   rayon {par:7.1} GFLOP/s", n * n * n);
        }
        return;
    }

    // Default report: interleaved rounds of peak and product.
    let t = Tuning::default();
    for n in [256, 512, 1024, 2048] {
        let mut case = Case::new(n, |x| x);
        let rounds = if n >= 2048 { 9 } else { 15 };
        let (mut g, mut p, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let pk = peak_once(threads);
            let gf = case.time(&t);
            g.push(gf);
            p.push(pk);
            r.push(gf / pk);
        }
        let best = g.iter().fold(0.0f64, |a, &b| a.max(b));
        let (g, p, r) = (median(g), median(p), median(r));
        let ms = 2.0 * (n as f64).powi(3) / g / 1e6;
        println!(
            "f32 n={n:5}: {g:6.1} GFLOP/s ({ms:7.3} ms; best {best:6.1})  peak {p:6.1}  {:5.1}% of peak",
            100.0 * r
        );
    }
    // The same products through the public op (tensor in, freshly allocated tensor out).
    for n in [256, 1024] {
        let x = tapeflow_dtype::Tensor::<()>::from_vec(values(n * n, 1), [n, n]).unwrap();
        let y = tapeflow_dtype::Tensor::<()>::from_vec(values(n * n, 2), [n, n]).unwrap();
        let flops = 2.0 * (n as f64).powi(3);
        let reps = ((1e10 / flops) as usize).max(1);
        let (mut g, mut r) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            let pk = peak_once(threads);
            let start = Instant::now();
            for _ in 0..reps {
                black_box(tapeflow_kernels::matmul(&x, &y, false, false).unwrap());
            }
            let gf = flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9;
            g.push(gf);
            r.push(gf / pk);
        }
        println!(
            "matmul() n={n:5}: {:6.1} GFLOP/s  {:5.1}% of peak (includes allocating the output)",
            median(g),
            100.0 * median(r)
        );
    }
    let mut c32 = Case::new(512, |x| x);
    let mut c16 = Case::new(512, f16::from_f32);
    let (mut g16, mut r16, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let pk = peak_once(threads);
        let a = c32.time(&t);
        let h = c16.time(&t);
        g16.push(h);
        r16.push(h / pk);
        ratio.push(h / a);
    }
    println!(
        "f16 n=  512: {:6.1} GFLOP/s  {:5.1}% of peak  {:5.1}% of f32 (median of per-round ratios)",
        median(g16),
        100.0 * median(r16),
        100.0 * median(ratio)
    );
}
