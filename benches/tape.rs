//! Criterion benchmarks of the tape engine: per-op overhead on scalar code, the parallel
//! backward schedule against the forced-sequential one, jacobians and a Hessian-vector
//! product through nested tapes.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tapeflow::prelude::*;

#[path = "common/tape_workloads.rs"]
mod workloads;

fn overhead(c: &mut Criterion) {
    println!("kernels at {} (best on this CPU: {})", tapeflow::kernels::isa(), tapeflow::kernels::isa::detected());
    let mut group = c.benchmark_group("tape");
    let x = Variable::new(20.0);
    group.throughput(Throughput::Elements(1));
    group.bench_function("seed_snippet", |b| b.iter(|| black_box(workloads::seed_snippet(&x))));
    group.throughput(Throughput::Elements(200));
    group.bench_function("scalar_chain_100", |b| b.iter(|| black_box(workloads::scalar_chain(&x))));
    group.finish();
}

fn parallel_backward(c: &mut Criterion) {
    let mut group = c.benchmark_group("chains16");
    group.sample_size(20);
    let chains = workloads::Chains::new();
    group.bench_function("step_parallel", |b| b.iter(|| black_box(chains.step(false))));
    for (name, sequential) in [("backward_parallel", false), ("backward_sequential", true)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || chains.forward(),
                |(tape, outputs)| black_box(chains.backward(&tape, &outputs, sequential)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn jacobians(c: &mut Criterion) {
    let mut group = c.benchmark_group("jacobian");
    group.sample_size(20);
    let w = workloads::matrix(256, 256, 1, 0.05);
    let x = Variable::new(workloads::matrix(256, 1, 2, 1.0));
    group.bench_function("tanh_wx_256", |b| b.iter(|| black_box(workloads::jacobian_tanh(&w, &x))));
    group.bench_function("tanh_wx_256_row_loop", |b| b.iter(|| black_box(workloads::jacobian_tanh_rows(&w, &x))));
    let xb = Variable::new(workloads::matrix(64, 64, 3, 1.0));
    let wb = workloads::matrix(64, 64, 4, 0.1);
    group.bench_function("batch_tanh_xw_64x64", |b| b.iter(|| black_box(workloads::batch_jacobian_tanh(&xb, &wb))));
    let mlp = workloads::Mlp::new();
    group.bench_function("hvp_mlp_64_64_1", |b| b.iter(|| black_box(mlp.hessian_vector_product())));
    group.bench_function("hvp_mlp_64_64_1_forward_over_reverse", |b| {
        b.iter(|| black_box(mlp.hvp_forward_over_reverse()))
    });
    group.finish();
}

/// Forward mode and user-defined gradients: the JVP against the plain forward pass, and each
/// user-defined op against the plain op it wraps (the difference is its own cost per call).
fn advanced(c: &mut Criterion) {
    let mut group = c.benchmark_group("advanced");
    let mlp = workloads::Mlp::new();
    group.bench_function("mlp_64_64_1_forward", |b| b.iter(|| black_box(mlp.forward())));
    group.bench_function("mlp_64_64_1_jvp", |b| b.iter(|| black_box(mlp.jvp())));
    let x = Variable::new(0.5);
    for (name, custom) in [("exp_plain", false), ("exp_custom_gradient", true)] {
        group.bench_function(name, |b| b.iter(|| black_box(workloads::custom_exp(&x, custom))));
    }
    group.bench_function("exp_recompute_grad", |b| b.iter(|| black_box(workloads::recomputed_exp(&x, true))));
    group.finish();
}

criterion_group!(benches, overhead, parallel_backward, jacobians, advanced);
criterion_main!(benches);
