//! Criterion benchmarks of whole training steps (forward, backward, update): the 64-128-10
//! digits MLP on its full training split, a 784-512-512-10 MLP on a batch of 256 synthetic
//! images (SGD), and the digits CNN (`examples/common/cnn.rs`, Adam) on a batch of 64.
//! Group `train_step` calls the step from the main thread with rayon's default global pool; group `train_step_main_in_pool` runs it with the main
//! thread as worker 0 of a pool of as many threads (`use_current_thread`), the setup
//! docs/PERFORMANCE.md recommends for training loops.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../examples/common/cnn.rs"]
mod cnn;
#[path = "../examples/common/digits.rs"]
mod digits;
#[path = "common/train_workloads.rs"]
mod workloads;

fn train_steps(c: &mut Criterion) {
    println!("kernels at {} (best on this CPU: {})", tapeflow::kernels::isa(), tapeflow::kernels::isa::detected());
    steps(c, "train_step");
    // Last: from here on the main thread belongs to this pool.
    let threads = rayon::current_num_threads();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).use_current_thread().build();
    match pool {
        Ok(_pool) => steps(c, "train_step_main_in_pool"),
        Err(e) => eprintln!("train_step_main_in_pool skipped: {e}"),
    }
}

fn steps(c: &mut Criterion, group_name: &str) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(30);
    let mut digits = workloads::TrainStep::digits().expect("data/digits is part of the repository");
    group.throughput(Throughput::Elements(digits.multiply_adds() as u64));
    group.bench_function("digits_full_batch", |b| b.iter(|| black_box(digits.step().expect("shapes agree"))));
    let mut mlp = workloads::TrainStep::synthetic(&[784, 512, 512, 10], 256).expect("shapes agree");
    group.throughput(Throughput::Elements(mlp.multiply_adds() as u64));
    group.bench_function("mlp_784_512_512_10_batch_256", |b| b.iter(|| black_box(mlp.step().expect("shapes agree"))));
    let mut cnn = cnn::CnnStep::new().expect("data/digits is part of the repository");
    group.throughput(Throughput::Elements(cnn.multiply_adds() as u64));
    group.bench_function("cnn_digits_batch_64", |b| b.iter(|| black_box(cnn.step().expect("shapes agree"))));
    group.finish();
}

criterion_group!(benches, train_steps);
criterion_main!(benches);
