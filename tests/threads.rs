//! Threads: the public types cross threads, tapes on many threads share variables without
//! lost updates or deadlocks, and jacobians and higher-order gradients come out bitwise the
//! same on one rayon thread and on two (`parallel_backward.rs` covers plain gradients).

use std::sync::mpsc;
use std::time::Duration;

use tapeflow::prelude::*;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    // Compile-time: this test does not build if any of them loses Send or Sync.
    assert_send_sync::<Tensor>();
    assert_send_sync::<Variable>();
    assert_send_sync::<GradientTape>();
    assert_send_sync::<Error>();
    assert_send_sync::<GradientOptions>();
}

/// Runs `f` on its own thread; a deadlock (no answer within `limit`) fails the test instead
/// of hanging it.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).unwrap_or_else(|e| panic!("no result within {limit:?} (deadlock?): {e}"))
}

const THREADS: usize = 8;
const ITERATIONS: usize = 500;

#[test]
fn eight_threads_record_tapes_and_update_shared_variables_without_lost_updates() {
    let (w_final, b_final) = within(Duration::from_secs(120), || {
        let w = Variable::new([0.0, 0.0, 0.0, 0.0]);
        let b = Variable::new(1000.0);
        let x = constant([1.0, 2.0, 3.0, 4.0]);
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (w, b, x) = (w.clone(), b.clone(), x.clone());
                std::thread::spawn(move || -> Result<()> {
                    for i in 0..ITERATIONS {
                        let tape = GradientTape::new();
                        // loss = sum(w · x) + 3b: dloss/dw = x and dloss/db = 3, whatever the
                        // values other threads have written meanwhile.
                        let loss = tape.record(|| w.mul(&x)?.sum_all()? + (&b * 3.0)?)?;
                        let grads = tape.gradients(&[&loss], &[&w, &b])?;
                        let gw = grads[0].as_ref().expect("w is connected");
                        let gb = grads[1].as_ref().expect("b is connected");
                        assert_eq!(gw.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0], "thread {t}, iteration {i}");
                        assert_eq!(gb.to_scalar::<f32>()?, 3.0, "thread {t}, iteration {i}");
                        // Known increments: +1 per element of w, -0.5 on b (exact in f32).
                        w.assign_add(constant([1.0, 1.0, 1.0, 1.0]))?;
                        b.assign_sub(0.5)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("no worker panics").expect("every op succeeds");
        }
        (w.value().to_vec::<f32>().unwrap(), b.value().to_scalar::<f32>().unwrap())
    });
    let total = (THREADS * ITERATIONS) as f32;
    // Every update landed: assign_add/assign_sub are atomic read-modify-writes.
    assert_eq!(w_final, vec![total; 4]);
    assert_eq!(b_final, 1000.0 - 0.5 * total);
}

#[test]
fn concurrent_assigns_and_reads_see_whole_values() {
    // Writers swap a variable between two whole values; readers must never see a mix.
    within(Duration::from_secs(120), || {
        let v = Variable::new(Tensor::zeros([256], DType::F32));
        let (ones, twos) = (Tensor::ones([256], DType::F32), Tensor::full([256], 2.0, DType::F32).unwrap());
        std::thread::scope(|s| {
            for t in 0..4 {
                let (v, ones, twos) = (&v, &ones, &twos);
                s.spawn(move || {
                    for i in 0..300 {
                        if t % 2 == 0 {
                            v.assign(if i % 2 == 0 { ones } else { twos }).unwrap();
                        } else {
                            let seen = v.read().to_vec::<f32>().unwrap();
                            assert!(seen.iter().all(|&e| e == seen[0]), "a torn read: {seen:?}");
                        }
                    }
                });
            }
        });
    });
}

/// A jacobian and a second-order gradient of a model large enough for rows and chains to
/// run in parallel, as bit patterns.
fn jacobian_and_hessian_vector_product() -> (Vec<u32>, Vec<u32>) {
    let values = |n: usize, seed: usize| -> Vec<f32> {
        (0..n).map(|i| (((i + 31 * seed) * 2654435761) % 2001) as f32 / 1000.0 - 1.0).collect()
    };
    let w = Tensor::from_vec(values(48 * 48, 1), [48, 48]).unwrap();
    let x = Variable::new(Tensor::from_vec(values(48, 2), [48, 1]).unwrap());
    let tape = GradientTape::new();
    let y = tape.record(|| w.matmul(&x)?.tanh()).unwrap();
    let j = tape.jacobian(&y, &x).unwrap().expect("connected");

    let w1 = Variable::new(Tensor::from_vec(values(64 * 64, 3), [64, 64]).unwrap());
    let inputs = Tensor::from_vec(values(64 * 64, 4), [64, 64]).unwrap();
    let outer = GradientTape::new();
    let g = outer
        .record(|| {
            let inner = GradientTape::new();
            let loss = inner.record(|| inputs.matmul(&w1)?.tanh()?.sum_all())?;
            let g = inner.gradient(&loss, &w1)?.expect("connected");
            g.mul(&inputs)?.sum_all()
        })
        .unwrap();
    let hvp = outer.gradient(&g, &w1).unwrap().expect("connected");
    let bits = |t: &Tensor| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect();
    (bits(&j), bits(&hvp))
}

#[test]
fn jacobians_and_second_order_gradients_are_bitwise_identical_on_one_and_two_threads() {
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(jacobian_and_hessian_vector_product)
    };
    let one = on(1);
    assert_eq!(on(2), one);
    assert_eq!(on(2), one, "a second run on two threads");
}

/// Both gradients of one large product, as bit patterns: computed side by side on two
/// threads when no tape records, one after the other under a recording outer tape.
#[test]
fn matmul_gradients_side_by_side_equal_the_recorded_path_bit_for_bit() {
    let values = |n: usize, seed: usize| -> Vec<f32> {
        (0..n).map(|i| (((i + 17 * seed) * 2654435761) % 2001) as f32 / 1000.0 - 1.0).collect()
    };
    let a = Variable::new(Tensor::from_vec(values(256 * 300, 1), [256, 300]).unwrap());
    let b = Variable::new(Tensor::from_vec(values(300 * 200, 2), [300, 200]).unwrap());
    let bits = |t: &Tensor| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let grads = |outer_records: bool| {
        let run = || {
            let tape = GradientTape::new();
            let loss = tape.record(|| a.matmul(&b)?.tanh()?.sum_all()).unwrap();
            let g = tape.gradients(&[&loss], &[&a, &b]).unwrap();
            g.iter().map(|g| bits(g.as_ref().expect("connected"))).collect::<Vec<_>>()
        };
        if outer_records {
            let outer = GradientTape::new();
            let mut out = Vec::new();
            outer
                .record(|| -> tapeflow::Result<()> {
                    out = run();
                    Ok(())
                })
                .unwrap();
            out
        } else {
            run()
        }
    };
    let pool = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let side_by_side = pool(2).install(|| grads(false));
    assert_eq!(pool(2).install(|| grads(true)), side_by_side);
    assert_eq!(pool(1).install(|| grads(false)), side_by_side);
}

/// A convolution layer's forward value and gradients (conv2d with dilation and stride,
/// depthwise, transpose), large enough that patch blocks, filter partials and images run
/// in parallel, as bit patterns.
fn convolution_bits() -> Vec<u32> {
    use tapeflow::nn::{self, Padding};
    let values = |n: usize, seed: usize| -> Vec<f32> {
        (0..n).map(|i| (((i + 13 * seed) * 2654435761) % 2001) as f32 / 1000.0 - 1.0).collect()
    };
    let x = Variable::new(Tensor::from_vec(values(4 * 19 * 17 * 16, 1), [4, 19, 17, 16]).unwrap());
    let w = Variable::new(Tensor::from_vec(values(3 * 3 * 16 * 40, 2), [3, 3, 16, 40]).unwrap());
    let d = Variable::new(Tensor::from_vec(values(3 * 3 * 16 * 2, 3), [3, 3, 16, 2]).unwrap());
    let tape = GradientTape::new();
    let (y, loss) = tape
        .record(|| {
            let y = nn::conv2d(&x, &w, [1, 1], Padding::Same, [1, 1])?;
            let dilated = nn::conv2d(&x, &w, [1, 1], Padding::Same, [2, 2])?;
            let z = nn::conv2d(&x, &w, [2, 1], Padding::Valid, [1, 1])?;
            let t = nn::conv2d_transpose(&z, &w, [4, 19, 17, 16], [2, 1], Padding::Valid)?;
            let h = nn::depthwise_conv2d(&x, &d, [1, 1], Padding::Same)?;
            let loss = (y.tanh()?.sum_all()? + dilated.square()?.sum_all()?)?;
            let loss = (loss + t.tanh()?.sum_all()? + h.tanh()?.sum_all()?)?;
            Ok::<_, Error>((y, loss))
        })
        .unwrap();
    let grads = tape.gradients(&[&loss], &[&x, &w, &d]).unwrap();
    let mut bits: Vec<u32> = y.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect();
    for g in grads {
        bits.extend(g.expect("connected").to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()));
    }
    bits
}

#[test]
fn convolutions_and_their_gradients_are_bitwise_identical_on_one_and_two_threads() {
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(convolution_bits)
    };
    let one = on(1);
    assert_eq!(on(2), one);
    assert_eq!(convolution_bits(), one, "from outside the pool");
}
