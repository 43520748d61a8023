//! The perf report: first measures this machine's own limits — peak FMA throughput on all
//! threads and memory bandwidth (copy, triad) on arrays far larger than cache — then times
//! tapeflow's workloads and prints each median beside the limit that bounds it.
//!
//! Run: `cargo run --release --example perf_report` (add `-- --quick` for fewer repeats).
//! Machines are shared and noisy: compare the ratios of one run, not absolute times.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tapeflow::prelude::*;

#[path = "../benches/common/catalog2_workloads.rs"]
mod catalog2;
#[path = "../benches/common/conv_workloads.rs"]
mod conv;
#[path = "../benches/common/inputs.rs"]
mod inputs;
#[path = "../benches/common/tape_workloads.rs"]
#[allow(dead_code)]
mod workloads;

#[path = "common/cnn.rs"]
mod cnn;
#[path = "common/digits.rs"]
mod digits;
#[path = "../benches/common/function_workloads.rs"]
mod function_workloads;
#[path = "../benches/common/train_workloads.rs"]
mod train_workloads;

/// Median wall time of `f` over `runs` runs (after one warm-up).
fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// Peak f32 FMA throughput in GFLOP/s on every rayon thread: independent multiply-add
/// chains at the kernels' instruction-set level, enough of them to cover the FMA latency.
fn peak_fma_gflops(runs: usize) -> f64 {
    const ITERS: u64 = 2_000_000;
    let threads = rayon::current_num_threads();
    let level = tapeflow::kernels::isa::current().isa();
    let mut flops = 0;
    let t = median_time(runs, || {
        let (total, f): (f32, u64) = (0..threads)
            .into_par_iter()
            .map(|_| tapeflow::kernels::isa::with_isa(level, || tapeflow::kernels::isa::fma_peak_probe(ITERS)))
            .reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        flops = f;
        black_box(total);
    });
    flops as f64 / t.as_secs_f64() / 1e9
}

/// (copy, triad) bandwidth in GB/s on all threads over arrays of `n` f32 (far beyond L2),
/// counting bytes read plus bytes written.
fn bandwidth_gbs(n: usize, runs: usize) -> (f64, f64) {
    let a = vec![1.0f32; n];
    let b = vec![2.0f32; n];
    let mut c = vec![0.0f32; n];
    const PIECE: usize = 1 << 16;
    let copy = median_time(runs, || {
        c.par_chunks_mut(PIECE).zip(a.par_chunks(PIECE)).for_each(|(d, s)| d.copy_from_slice(s));
        black_box(&c);
    });
    let triad = median_time(runs, || {
        c.par_chunks_mut(PIECE).zip(a.par_chunks(PIECE).zip(b.par_chunks(PIECE))).for_each(|(d, (x, y))| {
            d.iter_mut().zip(x.iter().zip(y)).for_each(|(o, (p, q))| *o = p + 3.0 * q);
        });
        black_box(&c);
    });
    let bytes = |arrays: usize| (arrays * n * 4) as f64;
    (bytes(2) / copy.as_secs_f64() / 1e9, bytes(3) / triad.as_secs_f64() / 1e9)
}

struct Row {
    workload: String,
    time: Duration,
    rate: f64,
    unit: &'static str,
    /// The machine limit bounding this workload (0: none applies, e.g. tape overhead).
    limit: f64,
}

fn print_table(rows: &[Row]) {
    println!("| workload | median | rate | limit | % of limit |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        if r.limit > 0.0 {
            println!(
                "| {} | {:.3} ms | {:.1} {} | {:.1} {} | {:.0} % |",
                r.workload,
                r.time.as_secs_f64() * 1e3,
                r.rate,
                r.unit,
                r.limit,
                r.unit,
                100.0 * r.rate / r.limit
            );
        } else {
            println!("| {} | {:.4} ms | {} | — | — |", r.workload, r.time.as_secs_f64() * 1e3, r.unit);
        }
    }
}

fn random(n: usize, dtype: DType) -> Tensor {
    let values: Vec<f32> = (0..n).map(|i| ((i.wrapping_mul(2654435761) % 2001) as f32 - 1000.0) * 1e-3).collect();
    Tensor::from_vec(values, [n]).expect("length matches").cast(dtype).expect("float cast")
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    // Optional: only workloads whose name contains this word (e.g. `matmul`, `f16`).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--")).unwrap_or_default();
    let wanted = |name: &str| name.contains(filter.as_str());
    let runs = if quick { 3 } else { 9 };
    println!(
        "tapeflow perf report — {} rayon threads, kernels at {} (best on this CPU: {})",
        rayon::current_num_threads(),
        tapeflow::kernels::isa(),
        tapeflow::kernels::isa::detected()
    );

    let peak = peak_fma_gflops(runs);
    let (copy, triad) = bandwidth_gbs(64 << 20, runs.min(5));
    println!("machine limits: FMA peak {peak:.1} GFLOP/s; copy {copy:.1} GB/s; triad {triad:.1} GB/s\n");

    let mut rows = Vec::new();
    let mut flops = |name: String, flop: f64, runs: usize, f: &mut dyn FnMut()| {
        if !wanted(&name) {
            return;
        }
        let time = median_time(runs, f);
        rows.push(Row { workload: name, time, rate: flop / time.as_secs_f64() / 1e9, unit: "GFLOP/s", limit: peak });
    };
    for (n, dtype) in
        [(256usize, DType::F32), (512, DType::F32), (1024, DType::F32), (2048, DType::F32), (512, DType::F16)]
    {
        let a = random(n * n, dtype).reshape([n as isize, n as isize])?;
        let b = random(n * n, dtype).reshape([n as isize, n as isize])?;
        let reps = if n >= 2048 { runs.min(5) } else { runs };
        if !wanted(&format!("matmul {dtype} {n}")) {
            continue;
        }
        flops(format!("matmul {dtype} {n}"), 2.0 * (n * n * n) as f64, reps, &mut || {
            black_box(a.matmul(&b).expect("square"));
        });
    }

    // conv2d (issue 16): batch 32, 28 × 28 × 32 → 64, 3 × 3, SAME, as the TensorFlow anchor
    // (`/work/shared/anchors/cnn_anchors.py`) times it; forward + backward is the gradient of
    // the output's sum with respect to the images and the filters (3 × the forward's flops).
    let name = "conv2d 32x28x28x32 -> 64, 3x3 SAME";
    let passes = ["forward", "forward + backward", "input gradient kernel", "filter gradient kernel"];
    if passes.iter().any(|pass| wanted(&format!("{name}: {pass}"))) {
        let w = conv::ConvWorkload::new()?;
        flops(format!("{name}: forward"), conv::forward_flop(), runs * 3, &mut || {
            black_box(w.forward().expect("shapes agree"));
        });
        flops(format!("{name}: forward + backward"), conv::forward_backward_flop(), runs * 3, &mut || {
            black_box(w.forward_backward().expect("shapes agree"));
        });
        // The backward pass's two kernels alone (no tape), each the forward's flops: where
        // forward + backward's time goes.
        let dy = w.upstream()?;
        flops(format!("{name}: input gradient kernel"), conv::forward_flop(), runs * 3, &mut || {
            black_box(w.input_gradient(&dy).expect("shapes agree"));
        });
        flops(format!("{name}: filter gradient kernel"), conv::forward_flop(), runs * 3, &mut || {
            black_box(w.filter_gradient(&dy).expect("shapes agree"));
        });
    }

    // max_pool2d (issue 16) on the conv2d input's shape: memory-bound, so its rate is the
    // least traffic it must make (input read, output written; twice that with the
    // backward pass) in GB/s against the triad bandwidth measured above. The 3.2 MB input
    // fits the L3, so more than 100 % of the (DRAM) triad is possible.
    if wanted("max_pool2d") {
        for case in conv::POOLS {
            let w = conv::PoolWorkload::new(case)?;
            let name = format!("max_pool2d 32x28x28x32, {}", case.0.replace('_', " "));
            let passes: [(&str, f64, &dyn Fn()); 2] = [
                ("forward", w.forward_bytes()?, &|| drop(black_box(w.forward().expect("shapes agree")))),
                ("forward + backward", w.forward_backward_bytes()?, &|| {
                    drop(black_box(w.forward_backward().expect("shapes agree")))
                }),
            ];
            for (pass, bytes, f) in passes {
                let time = median_time(runs * 5, f);
                rows.push(Row {
                    workload: format!("{name}: {pass}"),
                    time,
                    rate: bytes / time.as_secs_f64() / 1e9,
                    unit: "GB/s",
                    limit: triad,
                });
            }
        }
    }

    let mut elems = |name: &str, n: usize, runs: usize, bytes_per_elem: f64, f: &mut dyn FnMut()| {
        if !wanted(name) {
            return;
        }
        let time = median_time(runs, f);
        let gbs = bytes_per_elem * n as f64 / time.as_secs_f64() / 1e9;
        rows.push(Row {
            workload: format!("{name} ({} M elements)", n >> 20),
            time,
            rate: gbs,
            unit: "GB/s",
            limit: triad,
        });
    };
    for n in [4usize << 20, 64 << 20] {
        let (x, y) = (random(n, DType::F32), random(n, DType::F32));
        elems("add f32", n, runs, 12.0, &mut || {
            black_box((&x + &y).expect("same shape"));
        });
        elems("mul f32", n, runs, 12.0, &mut || {
            black_box((&x * &y).expect("same shape"));
        });
    }
    let n = 4 << 20;
    let (h1, h2) = (random(n, DType::F16), random(n, DType::F16));
    elems("add f16", n, runs, 6.0, &mut || {
        black_box((&h1 + &h2).expect("same shape"));
    });
    let x = random(n, DType::F32);
    for (name, op) in [
        ("exp f32", TensorMath::exp as fn(&Tensor) -> Result<Tensor>),
        ("tanh f32", TensorMath::tanh),
        ("sigmoid f32", TensorMath::sigmoid),
        ("log f32", TensorMath::log),
    ] {
        elems(name, n, runs, 8.0, &mut || {
            black_box(op(&x).expect("float"));
        });
    }
    elems("sum f32", n, runs, 4.0, &mut || {
        black_box(x.sum_all().expect("float"));
    });

    // Catalog II (issue 15): each op timed alternately with the op whose time it is held
    // to, so that both medians see the same machine load; the ratios print after the table.
    let mut catalog2_ratios: Vec<(String, f64)> = Vec::new();
    if wanted("catalog2") {
        let w = catalog2::Catalog2::new()?;
        let n = catalog2::ELEMENTS;
        let pair = |rows: &mut Vec<Row>,
                    ratios: &mut Vec<(String, f64)>,
                    name: &str,
                    base: &str,
                    bytes: f64,
                    f: &mut dyn FnMut(),
                    g: &mut dyn FnMut()| {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..runs.max(5) {
                ours.push(median_time(1, &mut *f));
                theirs.push(median_time(1, &mut *g));
            }
            ours.sort();
            theirs.sort();
            let (t, b) = (ours[ours.len() / 2], theirs[theirs.len() / 2]);
            let gbs = if bytes > 0.0 { bytes / t.as_secs_f64() / 1e9 } else { 0.0 };
            rows.push(Row {
                workload: format!("catalog2: {name}"),
                time: t,
                rate: gbs,
                unit: if bytes > 0.0 { "GB/s" } else { "tape" },
                limit: if bytes > 0.0 { triad } else { 0.0 },
            });
            ratios.push((format!("{name} / {base}"), t.as_secs_f64() / b.as_secs_f64()));
        };
        let [(_, add), like_add @ ..] = catalog2::LIKE_ADD;
        for (name, op) in like_add {
            // Bytes moved: inputs read and the output written (bool outputs one byte).
            let bytes = match name {
                "greater f32" | "equal f32" => 9.0,
                "select f32" => 13.0,
                _ => 8.0,
            } * n as f64;
            pair(&mut rows, &mut catalog2_ratios, name, "add f32", bytes, &mut || drop(black_box(op(&w))), &mut || {
                drop(black_box(add(&w)))
            });
        }
        let [(_, exp), like_exp @ ..] = catalog2::LIKE_EXP;
        for (name, op) in like_exp {
            pair(
                &mut rows,
                &mut catalog2_ratios,
                name,
                "exp f32",
                8.0 * n as f64,
                &mut || drop(black_box(op(&w))),
                &mut || drop(black_box(exp(&w))),
            );
        }
        let row_bytes = (catalog2::GATHERED * catalog2::TABLE_COLS * 4) as f64;
        let mut copied = vec![0.0f32; catalog2::GATHERED * catalog2::TABLE_COLS];
        pair(
            &mut rows,
            &mut catalog2_ratios,
            "gather 256 rows of 50000 x 512",
            "copying them",
            2.0 * row_bytes,
            &mut || drop(black_box(w.gather())),
            &mut || w.copy_rows(&mut copied),
        );
        // The dense gradient's floor: a zero-filled table plus twice the copy.
        let mut table = vec![1.0f32; catalog2::TABLE_ROWS * catalog2::TABLE_COLS];
        let floor = median_time(runs.max(5), || {
            catalog2::Catalog2::zero_table(&mut table);
            w.copy_rows(&mut copied);
            w.copy_rows(&mut copied);
        });
        let gradient = median_time(runs.max(5), || drop(black_box(w.gather_gradient())));
        rows.push(Row {
            workload: "catalog2: gather + dense gradient (tape)".into(),
            time: gradient,
            rate: 0.0,
            unit: "tape",
            limit: 0.0,
        });
        catalog2_ratios.push((
            "gather + dense gradient / (zero-filled table + 2 × copy)".into(),
            gradient.as_secs_f64() / floor.as_secs_f64(),
        ));
        let logits = &w.logits;
        pair(
            &mut rows,
            &mut catalog2_ratios,
            "argmax rows of 4096 x 1000",
            "max over the same axis",
            4.0 * 4096.0 * 1000.0,
            &mut || drop(black_box(logits.argmax(1))),
            &mut || drop(black_box(logits.max(&[1], false))),
        );
    }

    // Subnormal inputs against normal ones, interleaved so both see the same machine load.
    let mut subnormal_ratios = Vec::new();
    if wanted("subnormal") {
        let (s1, s2) = (inputs::subnormals(n), inputs::subnormals(n));
        let (n1, n2) = (random(n, DType::F32), random(n, DType::F32));
        type Op = fn(&Tensor, &Tensor) -> Result<Tensor>;
        let ops: [(&str, Op, f64); 4] = [
            ("add", |a, b| a + b, 12.0),
            ("mul", |a, b| a * b, 12.0),
            ("exp", |a, _| a.exp(), 8.0),
            ("tanh", |a, _| a.tanh(), 8.0),
        ];
        for (name, op, bytes) in ops {
            let (mut normal, mut tiny) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                normal.push(median_time(1, || drop(black_box(op(&n1, &n2).expect("float")))));
                tiny.push(median_time(1, || drop(black_box(op(&s1, &s2).expect("float")))));
            }
            normal.sort();
            tiny.sort();
            let (normal, tiny) = (normal[runs / 2], tiny[runs / 2]);
            for (kind, time) in [("normal", normal), ("subnormal", tiny)] {
                rows.push(Row {
                    workload: format!("{name} f32 {kind} inputs ({} M elements)", n >> 20),
                    time,
                    rate: bytes * n as f64 / time.as_secs_f64() / 1e9,
                    unit: "GB/s",
                    limit: triad,
                });
            }
            subnormal_ratios.push((name, tiny.as_secs_f64() / normal.as_secs_f64()));
        }
    }

    // The tape engine: no machine limit bounds these; the ratio that matters is parallel
    // against sequential backward, measured side by side.
    let mut tape_row = |name: &str, runs: usize, f: &mut dyn FnMut()| {
        if !wanted(name) {
            return;
        }
        let time = median_time(runs, f);
        rows.push(Row { workload: name.to_string(), time, rate: 0.0, unit: "tape", limit: 0.0 });
    };
    let scalar = Variable::new(20.0);
    let many = runs * 1000;
    tape_row("tape: seed snippet (x², gradient)", many, &mut || {
        black_box(workloads::seed_snippet(&scalar));
    });
    tape_row("tape: scalar chain of 100", runs * 20, &mut || {
        black_box(workloads::scalar_chain(&scalar));
    });
    let chains = workloads::Chains::new();
    tape_row("tape: 16 chains, whole step (parallel backward)", runs, &mut || {
        black_box(chains.step(false));
    });
    let (w, xv) = (workloads::matrix(256, 256, 1, 0.05), Variable::new(workloads::matrix(256, 1, 2, 1.0)));
    tape_row("tape: jacobian tanh(W x), n = 256", runs, &mut || {
        black_box(workloads::jacobian_tanh(&w, &xv));
    });
    tape_row("tape: jacobian tanh(W x), n = 256, row loop", runs, &mut || {
        black_box(workloads::jacobian_tanh_rows(&w, &xv));
    });
    let (xb, wb) = (Variable::new(workloads::matrix(64, 64, 3, 1.0)), workloads::matrix(64, 64, 4, 0.1));
    tape_row("tape: batch_jacobian tanh(x W), 64 x 64", runs, &mut || {
        black_box(workloads::batch_jacobian_tanh(&xb, &wb));
    });
    let mlp = workloads::Mlp::new();
    tape_row("tape: Hessian-vector product, 64-64-1 MLP", runs * 10, &mut || {
        black_box(mlp.hessian_vector_product());
    });
    tape_row("tape: Hessian-vector product, 64-64-1 MLP, forward over reverse", runs * 10, &mut || {
        black_box(mlp.hvp_forward_over_reverse());
    });
    tape_row("tape: 64-64-1 MLP forward", runs * 10, &mut || {
        black_box(mlp.forward());
    });
    tape_row("tape: 64-64-1 MLP jvp (forward mode)", runs * 10, &mut || {
        black_box(mlp.jvp());
    });
    let scalar_x = Variable::new(0.5);
    tape_row("tape: exp + gradient, plain", many, &mut || {
        black_box(workloads::custom_exp(&scalar_x, false));
    });
    tape_row("tape: exp + gradient, custom_gradient", many, &mut || {
        black_box(workloads::custom_exp(&scalar_x, true));
    });
    tape_row("tape: exp + gradient, recompute_grad", many, &mut || {
        black_box(workloads::recomputed_exp(&scalar_x, true));
    });
    // Backward alone: each run records a fresh forward pass outside the timed part.
    for (name, sequential) in
        [("tape: 16 chains, backward parallel", false), ("tape: 16 chains, backward sequential", true)]
    {
        if !wanted(name) {
            continue;
        }
        let mut times: Vec<Duration> = (0..runs.max(5))
            .map(|_| {
                let (tape, outputs) = chains.forward();
                let start = Instant::now();
                black_box(chains.backward(&tape, &outputs, sequential));
                start.elapsed()
            })
            .collect();
        times.sort();
        rows.push(Row {
            workload: name.to_string(),
            time: times[times.len() / 2],
            rate: 0.0,
            unit: "tape",
            limit: 0.0,
        });
    }
    // The digits CNN's training step (issue 16: batch 64, the example's model without
    // dropout, Adam), its convolutions' and dense layer's GFLOP/s against the FMA peak.
    let name = "train step: CNN digits, batch 64 (Adam)";
    if wanted(name) {
        match cnn::CnnStep::new() {
            Ok(mut step) => {
                for _ in 0..10 {
                    black_box(step.step().expect("shapes agree"));
                }
                let time = median_time(runs * 25, || {
                    black_box(step.step().expect("shapes agree"));
                });
                let flop = 2.0 * step.multiply_adds();
                rows.push(Row {
                    workload: name.to_string(),
                    time,
                    rate: flop / time.as_secs_f64() / 1e9,
                    unit: "GFLOP/s",
                    limit: peak,
                });
            }
            Err(e) => println!("{name}: skipped ({e})"),
        }
    }
    // Compiled against eager, before the main thread joins a pool of its own below (after
    // which work from it no longer spreads over the global pool's threads).
    let compiled = compiled_against_eager(&wanted, quick);
    // Whole training steps (forward, backward, SGD update): their matmuls' GFLOP/s against
    // the FMA peak (the elementwise work and the tape ride along in the time).
    type MakeStep = fn() -> std::result::Result<train_workloads::TrainStep, String>;
    let steps: [(&str, MakeStep); 2] = [
        ("train step: digits 64-128-10, full batch 1437", || {
            train_workloads::TrainStep::digits().map_err(|e| e.to_string())
        }),
        ("train step: MLP 784-512-512-10, batch 256", || {
            train_workloads::TrainStep::synthetic(&[784, 512, 512, 10], 256).map_err(|e| e.to_string())
        }),
    ];
    // Each step twice: called from the main thread with rayon's default global pool (its
    // own two workers), then with the main thread made worker 0 of a pool of as many
    // threads (`use_current_thread`), the setup PERFORMANCE.md recommends for training
    // loops. The second pool lives to the end of the report, so these rows come last.
    let mut main_in_pool: Option<rayon::ThreadPool> = None;
    for in_pool in [false, true] {
        if in_pool {
            match rayon::ThreadPoolBuilder::new().num_threads(rayon::current_num_threads()).use_current_thread().build()
            {
                Ok(pool) => main_in_pool = Some(pool),
                Err(e) => {
                    println!("train steps with the main thread in the pool: skipped ({e})");
                    break;
                }
            }
        }
        for (name, make) in steps {
            if !wanted(name) {
                continue;
            }
            let mut step = match make() {
                Ok(step) => step,
                Err(e) => {
                    println!("{name}: skipped ({e})");
                    continue;
                }
            };
            let flop = 2.0 * step.multiply_adds();
            // Ten steps to warm the buffer pools and caches, then the median of 25 steps per
            // run (225; 75 quick): a step takes 1–5 ms, and on this shared machine a burst
            // of noise lasts longer than 27 steps (the count until
            // 2026-11-26, whose medians moved by 20 % between back-to-back runs).
            for _ in 0..10 {
                black_box(step.step().expect("shapes agree"));
            }
            let time = median_time(runs * 25, || {
                black_box(step.step().expect("shapes agree"));
            });
            rows.push(Row {
                workload: if in_pool { format!("{name} (main thread in the pool)") } else { name.to_string() },
                time,
                rate: flop / time.as_secs_f64() / 1e9,
                unit: "GFLOP/s",
                limit: peak,
            });
        }
    }
    print_table(&rows);
    drop(main_in_pool);
    if let Some(table) = compiled {
        println!("{table}");
    }
    if !subnormal_ratios.is_empty() {
        println!("\nsubnormal / normal time (same run, medians):");
        for (name, ratio) in &subnormal_ratios {
            println!("  {name} f32: {ratio:.2}x");
        }
    }

    if !catalog2_ratios.is_empty() {
        println!(
            "\ncatalog II: time / the time it is held to (same run, alternating medians; targets: 1.0× add, 1.5× exp, gather 2× copy, argmax 1.2× max):"
        );
        for (name, ratio) in &catalog2_ratios {
            println!("  {name}: {ratio:.2}x");
        }
    }

    // The tape's own cost: the scalar chain records 200 ops (100 × mul and add) and runs
    // their 200 backward rules, so its time over 200 is what one op costs, both ways.
    if let Some(chain) = rows.iter().find(|r| r.workload == "tape: scalar chain of 100") {
        println!(
            "\ntape cost per recorded op (scalar chain, forward + backward): {:.0} ns",
            chain.time.as_secs_f64() * 1e9 / 200.0
        );
    }

    println!("\nelement rates (G elements/s): ");
    for r in rows.iter().filter(|r| r.unit == "GB/s" && r.workload.contains(" M elements)")) {
        let n: f64 =
            r.workload.split('(').nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).unwrap_or(0.0);
        println!("  {}: {:.2}", r.workload, n * (1u64 << 20) as f64 / r.time.as_secs_f64() / 1e9);
    }
    Ok(())
}

/// Every tape workload and training step eager and compiled (`tapeflow::function`), in
/// alternating rounds: each round times both sides, in turn first, and each side's median
/// is over all its rounds' samples, so the machine's drift hits both. The first compiled
/// call (the trace, one sample) is reported against the eager median.
fn compiled_against_eager(wanted: &dyn Fn(&str) -> bool, quick: bool) -> Option<String> {
    let rounds = if quick { 3 } else { 7 };
    let mut table = Vec::new();
    for mut pair in function_workloads::pairs() {
        if !wanted(&format!("function: {}", pair.name)) {
            continue;
        }
        // The compiled side's first call traces: its time against a warm eager call.
        (pair.eager)();
        let start = Instant::now();
        (pair.compiled)();
        let trace = start.elapsed();
        // Warm up and size a round to about 20 ms.
        for _ in 0..3 {
            (pair.eager)();
            (pair.compiled)();
        }
        let start = Instant::now();
        (pair.eager)();
        let per_call = start.elapsed().as_secs_f64().max(1e-7);
        let calls = ((0.02 / per_call) as usize).clamp(3, 2000);
        let (mut eager, mut compiled) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            type Side<'a> = (&'a mut Box<dyn FnMut()>, &'a mut Vec<Duration>);
            let mut sides: [Side; 2] = [(&mut pair.eager, &mut eager), (&mut pair.compiled, &mut compiled)];
            if round % 2 == 1 {
                sides.reverse();
            }
            for (f, samples) in sides {
                for _ in 0..calls {
                    let start = Instant::now();
                    f();
                    samples.push(start.elapsed());
                }
            }
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (e, c) = (median(&mut eager), median(&mut compiled));
        table.push((pair.name, e, c, trace));
    }
    if table.is_empty() {
        return None;
    }
    let mut text =
        String::from("\ncompiled (tapeflow::function) against eager, alternating rounds, medians of one run:\n");
    text.push_str(&format!(
        "  {:<52} {:>12} {:>12} {:>9} {:>14}\n",
        "workload", "eager", "compiled", "ratio", "trace / eager"
    ));
    for (name, e, c, trace) in table {
        text.push_str(&format!(
            "  {:<52} {:>12} {:>12} {:>8.2}x {:>13.2}x\n",
            name,
            format!("{:.2?}", e),
            format!("{:.2?}", c),
            c.as_secs_f64() / e.as_secs_f64(),
            trace.as_secs_f64() / e.as_secs_f64()
        ));
    }
    Some(text)
}
