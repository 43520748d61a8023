//! The parallel backward schedule gives bitwise the same gradients as the sequential one,
//! on one thread or two.

use tapeflow::prelude::*;

/// 16 independent chains, each 10 × (matmul 64×64, tanh); the loss sums their outputs.
fn chains_and_gradients(options: GradientOptions) -> Vec<Vec<u32>> {
    chains(options, false)
}

/// The chains with their sums summed into one loss (`separate == false`: one connected
/// graph) or kept as 16 targets (independent components, which run a thread each).
fn chains(options: GradientOptions, separate: bool) -> Vec<Vec<u32>> {
    let x = Tensor::from_vec((0..64 * 64).map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5).collect(), [64, 64]).unwrap();
    let weights: Vec<Variable> = (0..16)
        .map(|c| {
            let values = (0..64 * 64).map(|i| (((i + 131 * c) * 53) % 97) as f32 / 970.0 - 0.05).collect();
            Variable::new(Tensor::from_vec(values, [64, 64]).unwrap())
        })
        .collect();
    let tape = GradientTape::new();
    let (loss, sums) = tape
        .record(|| -> Result<(Tensor, Vec<Tensor>)> {
            let mut total: Option<Tensor> = None;
            let mut sums = Vec::new();
            for w in &weights {
                let mut h = x.clone();
                for _ in 0..10 {
                    h = w.matmul(&h)?.tanh()?;
                }
                let s = h.sum_all()?;
                sums.push(s.clone());
                total = Some(match total {
                    Some(t) => (t + s)?,
                    None => s,
                });
            }
            Ok((total.expect("16 chains"), sums))
        })
        .unwrap();
    let targets = if separate { sums } else { vec![loss] };
    tape.gradients_with(&targets, &weights, options)
        .unwrap()
        .into_iter()
        .map(|g| g.expect("connected").to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn parallel_and_sequential_backward_agree_bitwise_on_one_and_two_threads() {
    let on = |threads: usize, sequential: bool| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| chains_and_gradients(GradientOptions::default().sequential(sequential)))
    };
    let reference = on(1, true);
    assert_eq!(on(2, false), reference);
    assert_eq!(on(1, false), reference);
    assert_eq!(on(2, true), reference);
}

/// At every kernel level (`isa::with_isa` on the calling thread), the passes on two threads
/// give the one-thread sequential pass's bits: the level goes with each op onto the workers,
/// also with a matmul gradient's second product, which another thread may steal (the
/// baseline of a plain build has no fused multiply-add, so a worker at another level would
/// change the matmuls' last bits; before the level went along, 16 of 16 gradients differed).
#[test]
fn the_calling_threads_kernel_level_reaches_the_parallel_pass() {
    for level in tapeflow::kernels::isa::supported_levels() {
        let on = |threads: usize, sequential: bool| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                tapeflow::kernels::isa::with_isa(level.isa(), || {
                    chains_and_gradients(GradientOptions::default().sequential(sequential))
                })
            })
        };
        // Several rounds: which thread runs what changes from run to run.
        let reference = on(1, true);
        for _ in 0..4 {
            assert_eq!(on(2, false), reference, "{level:?}, parallel pass");
            assert_eq!(on(2, true), reference, "{level:?}, sequential pass, kernels on two threads");
        }
    }
}

/// 16 separate targets make 16 independent components, each run whole by one thread; the
/// calling thread (outside the pool) takes components too. Same bits as one thread, in
/// order.
#[test]
fn independent_components_run_side_by_side_with_the_same_bits() {
    let pool = |threads: usize, sequential: bool| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| chains(GradientOptions::default().sequential(sequential), true))
    };
    let reference = pool(1, true);
    for _ in 0..4 {
        assert_eq!(pool(2, false), reference, "inside a pool of two");
        // From this (non-pool) thread with the global pool: the calling thread shares.
        assert_eq!(chains(GradientOptions::default(), true), reference, "from outside the pool");
    }
}
