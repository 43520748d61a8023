//! Criterion benchmarks of each kernel family through the public API: elementwise
//! (binary, transcendental, float16), reductions, matmul, catalog II (masks, rounding,
//! the new transcendentals, gather), conv2d and max_pool2d, each with its throughput.
//! `examples/perf_report.rs` prints the same workloads beside this machine's limits.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tapeflow::prelude::*;

#[path = "common/catalog2_workloads.rs"]
mod catalog2_workloads;
#[path = "common/conv_workloads.rs"]
mod conv_workloads;
#[path = "common/inputs.rs"]
mod inputs;

fn random(n: usize, dtype: DType) -> Tensor {
    let values: Vec<f32> = (0..n).map(|i| ((i.wrapping_mul(2654435761) % 2001) as f32 - 1000.0) * 1e-3).collect();
    Tensor::from_vec(values, [n]).expect("length matches").cast(dtype).expect("float cast")
}

fn elementwise(c: &mut Criterion) {
    println!("kernels at {} (best on this CPU: {})", tapeflow::kernels::isa(), tapeflow::kernels::isa::detected());
    let mut group = c.benchmark_group("elementwise");
    for n in [1usize << 10, 1 << 16, 1 << 22] {
        let (x, y) = (random(n, DType::F32), random(n, DType::F32));
        group.throughput(Throughput::Bytes((12 * n) as u64));
        group.bench_function(format!("add_f32/{n}"), |b| b.iter(|| black_box((&x + &y).unwrap())));
        let (h1, h2) = (random(n, DType::F16), random(n, DType::F16));
        group.throughput(Throughput::Bytes((6 * n) as u64));
        group.bench_function(format!("add_f16/{n}"), |b| b.iter(|| black_box((&h1 + &h2).unwrap())));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("mul_scalar_f32/{n}"), |b| b.iter(|| black_box((&x * 1.5).unwrap())));
        for (name, op) in [
            ("exp", TensorMath::exp as fn(&Tensor) -> Result<Tensor>),
            ("log", TensorMath::log),
            ("tanh", TensorMath::tanh),
            ("sigmoid", TensorMath::sigmoid),
        ] {
            group.bench_function(format!("{name}_f32/{n}"), |b| b.iter(|| black_box(op(&x).unwrap())));
        }
    }
    let rows = random(1 << 20, DType::F32).reshape([1024, 1024]).unwrap();
    let row = random(1024, DType::F32);
    group.throughput(Throughput::Elements(1 << 20));
    group.bench_function("add_row_broadcast_f32/1024x1024", |b| b.iter(|| black_box((&rows + &row).unwrap())));
    group.finish();
}

/// Elementwise throughput on all-subnormal inputs beside normal ones (4 M f32 each): the
/// cost of denormal arithmetic, which tapeflow does not flush (docs/PERFORMANCE.md).
fn subnormal(c: &mut Criterion) {
    let mut group = c.benchmark_group("subnormal");
    let n = 1usize << 22;
    let normal = (random(n, DType::F32), random(n, DType::F32));
    let tiny = (inputs::subnormals(n), inputs::subnormals(n));
    group.throughput(Throughput::Elements(n as u64));
    for (kind, (x, y)) in [("normal", &normal), ("subnormal", &tiny)] {
        group.bench_function(format!("add_f32/{kind}"), |b| b.iter(|| black_box((x + y).unwrap())));
        group.bench_function(format!("mul_f32/{kind}"), |b| b.iter(|| black_box((x * y).unwrap())));
        group.bench_function(format!("exp_f32/{kind}"), |b| b.iter(|| black_box(x.exp().unwrap())));
        group.bench_function(format!("tanh_f32/{kind}"), |b| b.iter(|| black_box(x.tanh().unwrap())));
    }
    group.finish();
}

fn reductions(c: &mut Criterion) {
    let mut group = c.benchmark_group("reduce");
    for n in [1usize << 10, 1 << 16, 1 << 22] {
        let x = random(n, DType::F32);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("sum_all_f32/{n}"), |b| b.iter(|| black_box(x.sum_all().unwrap())));
    }
    let m = random(1 << 20, DType::F32).reshape([1024, 1024]).unwrap();
    group.throughput(Throughput::Elements(1 << 20));
    group.bench_function("sum_rows_f32/1024x1024", |b| b.iter(|| black_box(m.sum(&[1], false).unwrap())));
    group.bench_function("sum_columns_f32/1024x1024", |b| b.iter(|| black_box(m.sum(&[0], false).unwrap())));
    group.bench_function("max_columns_f32/1024x1024", |b| b.iter(|| black_box(m.max(&[0], false).unwrap())));
    group.finish();
}

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    for (n, dtype) in [(64usize, DType::F32), (256, DType::F32), (512, DType::F32), (512, DType::F16)] {
        let a = random(n * n, dtype).reshape([n as isize, n as isize]).unwrap();
        let b = random(n * n, dtype).reshape([n as isize, n as isize]).unwrap();
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        group.bench_function(format!("{dtype}/{n}"), |bench| bench.iter(|| black_box(a.matmul(&b).unwrap())));
    }
    group.finish();
}

/// Catalog II (issue 15): each op beside the one whose time it is held to.
fn catalog2(c: &mut Criterion) {
    use catalog2_workloads::{Catalog2, ELEMENTS, GATHERED, LIKE_ADD, LIKE_EXP, TABLE_COLS, TABLE_ROWS};
    let w = Catalog2::new().unwrap();
    let mut group = c.benchmark_group("catalog2");
    group.throughput(Throughput::Elements(ELEMENTS as u64));
    for (name, op) in LIKE_ADD.iter().chain(&LIKE_EXP) {
        group.bench_function(name.replace(' ', "_"), |b| b.iter(|| black_box(op(&w).unwrap())));
    }
    // argmax along the last axis of [4096, 1000], held to 1.2× max's time.
    group.throughput(Throughput::Elements(4096 * 1000));
    group.bench_function("max_rows_f32/4096x1000", |b| b.iter(|| black_box(w.logits.max(&[1], false).unwrap())));
    group.bench_function("argmax_rows_f32/4096x1000", |b| b.iter(|| black_box(w.logits.argmax(1).unwrap())));
    group.throughput(Throughput::Bytes((GATHERED * TABLE_COLS * 4) as u64));
    let mut rows = vec![0.0f32; GATHERED * TABLE_COLS];
    group.bench_function("copy_rows_256_of_50000x512", |b| b.iter(|| w.copy_rows(&mut rows)));
    group.bench_function("gather_256_of_50000x512", |b| b.iter(|| black_box(w.gather())));
    group.sample_size(20);
    let mut table = vec![1.0f32; TABLE_ROWS * TABLE_COLS];
    group.bench_function("zero_table_50000x512", |b| b.iter(|| Catalog2::zero_table(&mut table)));
    group.bench_function("gather_gradient_256_of_50000x512", |b| b.iter(|| black_box(w.gather_gradient())));
    group.finish();
}

/// conv2d (issue 16): batch 32, 28 × 28 × 32 → 64, 3 × 3, SAME; throughput in flops.
fn conv2d(c: &mut Criterion) {
    use conv_workloads::{ConvWorkload, forward_backward_flop, forward_flop};
    let w = ConvWorkload::new().unwrap();
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(20);
    group.throughput(Throughput::Elements(forward_flop() as u64));
    group.bench_function("forward_32x28x28x32_64_3x3_same", |b| b.iter(|| black_box(w.forward().unwrap())));
    group.throughput(Throughput::Elements(forward_backward_flop() as u64));
    group.bench_function("forward_backward_32x28x28x32_64_3x3_same", |b| {
        b.iter(|| black_box(w.forward_backward().unwrap()))
    });
    // The backward pass's two kernels alone (no tape), each the forward's flops.
    let dy = w.upstream().unwrap();
    group.throughput(Throughput::Elements(forward_flop() as u64));
    group.bench_function("input_gradient_kernel_32x28x28x32_64_3x3_same", |b| {
        b.iter(|| black_box(w.input_gradient(&dy).unwrap()))
    });
    group.bench_function("filter_gradient_kernel_32x28x28x32_64_3x3_same", |b| {
        b.iter(|| black_box(w.filter_gradient(&dy).unwrap()))
    });
    group.finish();
}

/// max_pool2d (issue 16) on the conv2d workload's input, batch 32, 28 × 28 × 32: memory-bound,
/// so its throughput is the least bytes it must move (input read, output written; twice
/// that with the backward pass).
fn max_pool2d(c: &mut Criterion) {
    use conv_workloads::{POOLS, PoolWorkload};
    let mut group = c.benchmark_group("max_pool2d");
    group.sample_size(30);
    for case in POOLS {
        let w = PoolWorkload::new(case).unwrap();
        group.throughput(Throughput::Bytes(w.forward_bytes().unwrap() as u64));
        group.bench_function(format!("forward_32x28x28x32_{}", case.0), |b| b.iter(|| black_box(w.forward().unwrap())));
        group.throughput(Throughput::Bytes(w.forward_backward_bytes().unwrap() as u64));
        group.bench_function(format!("forward_backward_32x28x28x32_{}", case.0), |b| {
            b.iter(|| black_box(w.forward_backward().unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, elementwise, subnormal, reductions, matmul, catalog2, conv2d, max_pool2d);
criterion_main!(benches);
