//! Criterion benchmarks of compiled functions (`tapeflow::function`): every tape workload
//! and training step, eager beside compiled (the compiled one traced on its first call).

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "../examples/common/digits.rs"]
mod digits;
#[path = "common/function_workloads.rs"]
mod function_workloads;
#[path = "common/train_workloads.rs"]
#[allow(dead_code)]
mod train_workloads;
#[path = "common/tape_workloads.rs"]
#[allow(dead_code)]
mod workloads;

fn eager_and_compiled(c: &mut Criterion) {
    let mut group = c.benchmark_group("function");
    group.sample_size(20);
    for mut pair in function_workloads::pairs() {
        let name = pair.name.replace([' ', ','], "_");
        group.bench_function(format!("{name}/eager"), |b| b.iter(&mut pair.eager));
        group.bench_function(format!("{name}/compiled"), |b| b.iter(&mut pair.compiled));
    }
    group.finish();
}

criterion_group!(benches, eager_and_compiled);
criterion_main!(benches);
