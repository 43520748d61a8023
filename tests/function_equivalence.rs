//! `tapeflow::function` gives eager's bits: each workload runs twice from the same initial
//! state, eagerly and through a compiled function, for a dozen calls, on 1 and 2 rayon
//! threads; after every call each result and each variable (optimizer state included) must
//! match bit for bit, and the function must have traced once.

use tapeflow::nn::{self, Padding};
use tapeflow::prelude::*;
use tapeflow::{FunctionArgs, FunctionOutput, function, init};

#[path = "../examples/common/digits.rs"]
mod digits;

const CALLS: usize = 12;

/// The bits of a tensor, for comparison (dtype and shape first).
fn bits(t: &Tensor) -> (DType, Vec<usize>, Vec<u64>) {
    let b = match t.dtype() {
        DType::F32 => t.to_vec::<f32>().unwrap().iter().map(|x| u64::from(x.to_bits())).collect(),
        DType::F16 => t.to_vec::<f16>().unwrap().iter().map(|x| u64::from(x.to_bits())).collect(),
        DType::I32 => t.to_vec::<i32>().unwrap().iter().map(|&x| x as u32 as u64).collect(),
        _ => t.to_vec::<bool>().unwrap().iter().map(|&x| u64::from(x)).collect(),
    };
    (t.dtype(), t.dims().to_vec(), b)
}

/// Runs `step` eagerly on one fresh state and compiled on another, `CALLS` times with the
/// arguments `args(i)`, on 1 and 2 threads, comparing results and `vars` after each call.
fn same_bits<S, A, O>(
    name: &str,
    make: impl Fn() -> Result<(S, Vec<Variable>)> + Sync,
    args: impl Fn(usize) -> A + Sync,
    step: impl Fn(&mut S, A) -> Result<O> + Sync,
) where
    A: FunctionArgs,
    O: FunctionOutput,
{
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let (mut eager_state, eager_vars) = make().unwrap();
            let (mut state, vars) = make().unwrap();
            let runs = std::cell::Cell::new(0);
            let mut compiled = function(|a: A| {
                runs.set(runs.get() + 1);
                step(&mut state, a)
            });
            for i in 0..CALLS {
                let expected = step(&mut eager_state, args(i)).unwrap().tensors();
                let got = compiled.call(args(i)).unwrap_or_else(|e| panic!("{name}: call {i}: {e}")).tensors();
                assert_eq!(expected.len(), got.len(), "{name}: call {i}: result count");
                for (k, (e, g)) in expected.iter().zip(&got).enumerate() {
                    assert_eq!(bits(e), bits(g), "{name} ({threads} threads): call {i}, result {k}");
                }
                for (e, g) in eager_vars.iter().zip(&vars) {
                    assert_eq!(
                        bits(&e.unrecorded_value()),
                        bits(&g.unrecorded_value()),
                        "{name} ({threads} threads): call {i}, variable '{}'",
                        g.name()
                    );
                }
            }
            assert_eq!(compiled.trace_count(), 1, "{name}: one signature, one trace");
            drop(compiled);
            assert_eq!(runs.get(), 1, "{name}: the closure runs when tracing only");
        });
    }
}

#[test]
fn seed_snippet() {
    same_bits(
        "seed snippet",
        || {
            let x = Variable::new(20.0);
            Ok((x.clone(), vec![x]))
        },
        |_| (),
        |x: &mut Variable, ()| {
            let tape = GradientTape::new();
            let y = tape.record(|| x.pow(2.0))?;
            let g = tape.gradient(&y, &*x)?.unwrap();
            x.assign_sub((&g * 0.01)?)?;
            Ok((y, g))
        },
    );
}

#[test]
fn scalar_chain_of_100() {
    same_bits(
        "scalar chain",
        || {
            let x = Variable::new(0.5);
            Ok((x.clone(), vec![x]))
        },
        |i| constant(1.0 + i as f32 * 0.25),
        |x: &mut Variable, scale: Tensor| {
            let tape = GradientTape::new();
            let y = tape.record(|| {
                let mut y = (x.read() * &scale)?;
                for _ in 0..100 {
                    y = ((&y * 1.0001)? + 0.5)?;
                }
                Ok::<_, Error>(y)
            })?;
            let g = tape.gradient(&y, &*x)?.unwrap();
            Ok((y, g))
        },
    );
}

/// The digits MLP's training step on real batches, returning loss and logits.
fn digits_loop<O: Optimizer + 'static>(name: &str, opt: impl Fn() -> O + Sync, dtype: DType) {
    let (train, _) = digits::load(digits::default_path()).unwrap();
    let batches: Vec<(Tensor, Tensor)> = (0..CALLS)
        .map(|i| {
            let rows: Vec<usize> = (0..32).map(|r| (i * 37 + r * 11) % train.len()).collect();
            let (x, y) = train.batch(&rows).unwrap();
            (x.cast(dtype).unwrap(), y)
        })
        .collect();
    same_bits(
        name,
        || {
            let w1 = Variable::new(init::glorot_uniform([64, 128], dtype, 3)?);
            let b1 = Variable::new(init::zeros([128], dtype));
            let w2 = Variable::new(init::glorot_uniform([128, 10], dtype, 4)?);
            let b2 = Variable::new(init::zeros([10], dtype));
            let vars = vec![w1, b1, w2, b2];
            Ok(((vars.clone(), opt()), vars))
        },
        |i| batches[i].clone(),
        |(vars, opt): &mut (Vec<Variable>, O), (x, labels): (Tensor, Tensor)| {
            let tape = GradientTape::new();
            let (loss, logits) = tape.record(|| {
                let hidden = (x.matmul(&vars[0])? + &vars[1])?.relu()?;
                let logits = (hidden.matmul(&vars[2])? + &vars[3])?;
                let loss = logits.cast(DType::F32)?.sparse_softmax_cross_entropy(&labels)?.mean_all()?;
                Ok::<_, Error>((loss, logits))
            })?;
            let grads = tape.gradients(&[&loss], vars.as_slice())?;
            opt.apply_gradients(&grads, vars.as_slice())?;
            Ok((loss, logits))
        },
    );
}

#[test]
fn digits_mlp_with_adam() {
    digits_loop("digits, Adam", || Adam::new(0.01), DType::F32);
}

#[test]
fn digits_mlp_with_adamw() {
    digits_loop("digits, AdamW", || AdamW::new(0.01).weight_decay(0.01), DType::F32);
}

#[test]
fn digits_mlp_with_nesterov_sgd() {
    digits_loop("digits, SGD", || Sgd::new(0.1).momentum(0.9).nesterov(true), DType::F32);
}

#[test]
fn digits_mlp_in_float16() {
    digits_loop("digits f16, Adam", || Adam::new(0.01), DType::F16);
}

#[test]
fn cnn_loop() {
    let images: Vec<Tensor> = (0..CALLS)
        .map(|i| {
            let v: Vec<f32> = (0..4 * 8 * 8).map(|k| (((k * 7 + i * 13) % 17) as f32) / 17.0).collect();
            Tensor::from_vec(v, [4, 8, 8, 1]).unwrap()
        })
        .collect();
    let labels = Tensor::from_vec(vec![1, 0, 2, 1], [4]).unwrap();
    same_bits(
        "cnn",
        || {
            let f = Variable::new(init::glorot_uniform([3, 3, 1, 4], DType::F32, 1)?);
            let w = Variable::new(init::glorot_uniform([64, 3], DType::F32, 2)?);
            let b = Variable::new(init::zeros([3], DType::F32));
            let vars = vec![f, w, b];
            Ok(((vars.clone(), Adam::new(0.01)), vars))
        },
        |i| images[i].clone(),
        |(vars, opt): &mut (Vec<Variable>, Adam), x: Tensor| {
            let tape = GradientTape::new();
            let loss = tape.record(|| {
                let h = nn::conv2d(&x, &vars[0], [1, 1], Padding::Same, [1, 1])?.relu()?;
                let h = nn::max_pool2d(&h, [2, 2], [2, 2], Padding::Valid)?.reshape([4, 64])?;
                let logits = nn::bias_add(h.matmul(&vars[1])?, &vars[2])?;
                logits.sparse_softmax_cross_entropy(&labels)?.mean_all()
            })?;
            let grads = tape.gradients(&[&loss], vars.as_slice())?;
            opt.apply_gradients(&grads, vars.as_slice())?;
            Ok(loss)
        },
    );
}

#[test]
fn nested_tape_hessian_vector_product() {
    same_bits(
        "hvp",
        || {
            let w1 = Variable::new(init::glorot_uniform([8, 8], DType::F32, 5)?);
            let w2 = Variable::new(init::glorot_uniform([8, 1], DType::F32, 6)?);
            Ok(((w1.clone(), w2.clone()), vec![w1, w2]))
        },
        |i| Tensor::from_vec((0..64).map(|k| ((k + i) % 5) as f32 * 0.1).collect(), [8, 8]).unwrap(),
        |(w1, w2): &mut (Variable, Variable), v: Tensor| {
            let x = Tensor::ones([4, 8], DType::F32);
            let outer = GradientTape::new();
            let gv = outer.record(|| {
                let inner = GradientTape::new();
                let f = inner.record(|| x.matmul(&*w1)?.tanh()?.matmul(&*w2)?.sum_all())?;
                (inner.gradient(&f, &*w1)?.unwrap() * &v)?.sum_all()
            })?;
            let hv = outer.gradient(&gv, &*w1)?.unwrap();
            w1.assign_sub((&hv * 0.01)?)?;
            Ok(hv)
        },
    );
}

#[test]
fn jacobians() {
    same_bits(
        "jacobians",
        || {
            let w = Variable::new(init::glorot_uniform([6, 6], DType::F32, 7)?);
            Ok((w.clone(), vec![w]))
        },
        |i| Tensor::from_vec((0..18).map(|k| ((k * 3 + i) % 7) as f32 * 0.2 - 0.5).collect(), [3, 6]).unwrap(),
        |w: &mut Variable, x: Tensor| {
            let tape = GradientTape::new().persistent(true);
            tape.watch(&x);
            let y = tape.record(|| x.matmul(&*w)?.tanh())?;
            let j = tape.jacobian(&y, &*w)?.unwrap();
            let bj = tape.batch_jacobian(&y, &x)?.unwrap();
            Ok((j, bj))
        },
    );
}

#[test]
fn forward_mode() {
    same_bits(
        "forward mode",
        || {
            let w = Variable::new([1.0, 2.0, 3.0]);
            Ok((w.clone(), vec![w]))
        },
        |i| Tensor::from_vec(vec![1.0f32, 0.5, i as f32 * 0.1], [3]).unwrap(),
        |w: &mut Variable, v: Tensor| {
            let acc = ForwardAccumulator::new().primal(&*w, &v)?;
            let y = acc.record(|| (w.pow(3.0)? * w.sin()?)?.sum_all())?;
            let jvp = acc.jvp(&y)?.unwrap();
            // Forward over reverse: a Hessian-vector product.
            let acc = ForwardAccumulator::new().primal(&*w, &v)?;
            let g = acc.record(|| {
                let t = GradientTape::new();
                let f = t.record(|| w.pow(3.0)?.sum_all())?;
                t.gradient(&f, &*w).map(Option::unwrap)
            })?;
            let hvp = acc.jvp(&g)?.unwrap();
            w.assign_add((&hvp * 0.001)?)?;
            Ok((jvp, hvp))
        },
    );
}

#[test]
fn custom_gradients_and_recompute_grad() {
    same_bits(
        "custom_gradient, recompute_grad",
        || {
            let x = Variable::new([1.0, -2.0, 3.0]);
            let scale = Variable::new(2.0);
            Ok(((x.clone(), scale.clone()), vec![x, scale]))
        },
        |i| constant(1.0 + i as f32),
        |(x, scale): &mut (Variable, Variable), k: Tensor| {
            let tape = GradientTape::new();
            let block = {
                let scale = scale.clone();
                move |xs: &[Tensor]| -> Result<Tensor> { (&xs[0].tanh()?.tanh()? * &scale)?.tanh() }
            };
            let y = tape.record(|| {
                let soft = custom_gradient(&[&(x.read() * &k)?], |xs| {
                    let e = xs[0].exp()?;
                    let value = (&e + 1.0)?.log()?;
                    let grad = move |g: &Tensor| -> Result<Vec<Option<Tensor>>> {
                        let s = (1.0 - (1.0 / (&e + 1.0)?)?)?;
                        Ok(vec![Some((g * &s)?)])
                    };
                    Ok((value, grad))
                })?;
                let r = recompute_grad(&[&soft], block)?;
                r.sum_all()
            })?;
            let gs = tape.gradients(&[&y], &[&*x, &*scale])?;
            x.assign_sub((gs[0].as_ref().unwrap() * 0.1)?)?;
            scale.assign_sub((gs[1].as_ref().unwrap() * 0.1)?)?;
            Ok(y)
        },
    );
}

#[test]
fn sixteen_chains() {
    same_bits(
        "16 chains",
        || {
            let ws: Vec<Variable> =
                (0..16).map(|c| Variable::new(init::glorot_uniform([16, 16], DType::F32, 100 + c).unwrap())).collect();
            Ok((ws.clone(), ws))
        },
        |i| Tensor::from_vec((0..16 * 16).map(|k| ((k + i) % 9) as f32 * 0.05).collect(), [16, 16]).unwrap(),
        |ws: &mut Vec<Variable>, x: Tensor| {
            let tape = GradientTape::new();
            let loss = tape.record(|| {
                let mut total: Option<Tensor> = None;
                for w in ws.iter() {
                    let mut h = x.clone();
                    for _ in 0..10 {
                        h = h.matmul(w)?.tanh()?;
                    }
                    let s = h.sum_all()?;
                    total = Some(match total {
                        Some(t) => (t + s)?,
                        None => s,
                    });
                }
                Ok::<_, Error>(total.unwrap())
            })?;
            let grads = tape.gradients(&[&loss], ws.as_slice())?;
            for (w, g) in ws.iter().zip(&grads) {
                w.assign_sub((g.as_ref().unwrap() * 0.01)?)?;
            }
            Ok(loss)
        },
    );
}

#[test]
fn dropout_from_a_generator() {
    same_bits(
        "dropout_with",
        || {
            let rng = tapeflow::random::Generator::from_seed(11);
            let state = rng.state().clone();
            Ok((rng, vec![state]))
        },
        |_| Tensor::ones([4, 16], DType::F32),
        |rng: &mut tapeflow::random::Generator, x: Tensor| {
            let d = nn::dropout_with(&x, 0.3, rng)?;
            let n = rng.normal([5], DType::F32)?;
            Ok((d, n))
        },
    );
}
