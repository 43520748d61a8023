//! `tapeflow::function`'s rules (docs/function.md): what is frozen, what changes per call,
//! what a failed call leaves behind, reads inside a trace, signatures, and the debugging
//! switches.

use tapeflow::prelude::*;
use tapeflow::{function, random::Generator};

#[test]
fn host_values_are_frozen_and_variables_are_live() -> Result<()> {
    let v = Variable::new(1.0);
    let mut host = 1.0f32;
    let mut f = function(|x: Tensor| -> Result<Tensor> {
        host += 1.0; // runs when tracing only
        let frozen = constant(host);
        (&x * &frozen)? + &v // v is read when the program runs
    });
    assert_eq!(f.call(constant(1.0))?.to_scalar::<f32>()?, 3.0);
    v.assign(10.0)?;
    assert_eq!(f.call(constant(1.0))?.to_scalar::<f32>()?, 12.0); // 2 is frozen, v is not
    drop(f);
    assert_eq!(host, 2.0);
    Ok(())
}

#[test]
fn reading_a_value_while_tracing_is_an_err_naming_function_and_the_op() {
    let mut f = function(|x: Tensor| -> Result<Tensor> {
        let y = x.exp()?;
        let v = y.to_vec::<f32>()?;
        Ok(constant(v[0]))
    });
    let err = f.call(constant([1.0, 2.0])).unwrap_err().to_string();
    assert!(err.starts_with("function: `to_vec`"), "{err}");
    assert!(err.contains("made by `"), "{err}");
    assert_eq!(f.trace_count(), 0);
    // Arguments are symbolic too, and print as TF prints a graph tensor.
    let mut printed = String::new();
    let mut g = function(|x: Tensor| -> Result<Tensor> {
        printed = format!("{x}");
        assert!(x.to_scalar::<f32>().is_err());
        x.neg()
    });
    g.call(constant(3.0)).unwrap();
    drop(g);
    assert_eq!(printed, "Tensor(\"argument:0\", shape=(), dtype=float32)");
    // Constants the closure makes on the host can be read (they are host values).
    let mut h = function(|x: Tensor| -> Result<Tensor> {
        let c = constant([4.0, 5.0]);
        assert_eq!(c.to_vec::<f32>()?, vec![4.0, 5.0]);
        x + c
    });
    assert_eq!(h.call(constant([1.0, 1.0])).unwrap().to_vec::<f32>().unwrap(), vec![5.0, 6.0]);
}

#[test]
fn a_failed_trace_keeps_no_program_and_restores_what_it_wrote() -> Result<()> {
    let w = Variable::new([1.0, 2.0]);
    let mut opt = Sgd::new(0.5).momentum(0.9);
    let mut f = function(|x: Tensor| -> Result<Tensor> {
        w.assign_add(1.0)?;
        let tape = GradientTape::new();
        let loss = tape.record(|| (w.read() * &x)?.sum_all())?;
        let grads = tape.gradients(&[&loss], &[&w])?;
        opt.apply_gradients(&grads, &[&w])?;
        // fails after the writes: a shape error
        (&x + Tensor::zeros([3], DType::F32))?;
        Ok(loss)
    });
    assert!(f.call(constant([1.0, 1.0])).is_err());
    assert_eq!(f.trace_count(), 0);
    drop(f);
    assert_eq!(w.unrecorded_value().to_vec::<f32>()?, vec![1.0, 2.0]);
    assert_eq!(opt.iterations(), 0);
    assert_eq!(opt.velocity(&w), Some(vec![0.0, 0.0]));
    Ok(())
}

#[test]
fn a_replay_that_fails_on_data_changes_no_variable() -> Result<()> {
    let table = Variable::new([10.0, 20.0, 30.0]);
    let counter = Variable::new(0.0);
    let mut f = function(|idx: Tensor| -> Result<Tensor> {
        counter.assign_add(1.0)?; // a write before a kernel that can fail on data
        table.assign_add(0.5)?;
        table.read().gather(&idx, 0)
    });
    assert_eq!(f.call(constant([0, 2]))?.to_vec::<f32>()?, vec![10.5, 30.5]);
    let before = (table.unrecorded_value().to_vec::<f32>()?, counter.unrecorded_value().to_scalar::<f32>()?);
    // Same signature, index out of range: the replay's gather fails as eager's would.
    let err = f.call(constant([0, 7])).unwrap_err();
    assert!(err.to_string().contains("gather"), "{err}");
    assert_eq!((table.unrecorded_value().to_vec::<f32>()?, counter.unrecorded_value().to_scalar::<f32>()?), before);
    assert_eq!(f.trace_count(), 1);
    assert_eq!(f.call(constant([1, 1]))?.to_vec::<f32>()?, vec![21.0, 21.0]);
    Ok(())
}

#[test]
fn integer_division_by_zero_fails_the_replay_like_eager() -> Result<()> {
    let total = Variable::new(0);
    let mut f = function(|(a, b): (Tensor, Tensor)| -> Result<Tensor> {
        total.assign_add(1)?;
        a.div(&b)
    });
    assert_eq!(f.call((constant([6, 9]), constant([2, 3])))?.to_vec::<i32>()?, vec![3, 3]);
    assert!(f.call((constant([6, 9]), constant([2, 0]))).is_err());
    assert_eq!(total.unrecorded_value().to_scalar::<i32>()?, 1);
    Ok(())
}

#[test]
fn the_learning_rate_and_step_count_live_in_variables() -> Result<()> {
    let w = Variable::new(1.0);
    let mut opt = Sgd::new(0.5);
    {
        let opt = &mut opt;
        let mut step = function(|()| -> Result<()> {
            let tape = GradientTape::new();
            let loss = tape.record(|| w.square())?; // gradient 2w
            let grads = tape.gradients(&[&loss], &[&w])?;
            opt.apply_gradients(&grads, &[&w])
        });
        step.call(())?; // w = 1 - 0.5·2 = 0
        assert_eq!(w.unrecorded_value().to_scalar::<f32>()?, 0.0);
        w.assign(1.0)?;
        step.call(())?;
        assert_eq!(step.trace_count(), 1);
    }
    assert_eq!(opt.iterations(), 2);
    opt.set_learning_rate(0.25); // takes effect on the next call, without a retrace
    w.assign(1.0)?;
    let mut step = function(|()| -> Result<()> {
        let tape = GradientTape::new();
        let loss = tape.record(|| w.square())?;
        let grads = tape.gradients(&[&loss], &[&w])?;
        opt.apply_gradients(&grads, &[&w])
    });
    step.call(())?;
    assert_eq!(w.unrecorded_value().to_scalar::<f32>()?, 0.5);
    Ok(())
}

#[test]
fn new_rate_between_replays_takes_effect() -> Result<()> {
    let w = Variable::new(1.0);
    let opt = std::cell::RefCell::new(Sgd::new(0.5));
    let mut step = function(|()| -> Result<()> {
        let tape = GradientTape::new();
        let loss = tape.record(|| w.square())?;
        let grads = tape.gradients(&[&loss], &[&w])?;
        opt.borrow_mut().apply_gradients(&grads, &[&w])
    });
    step.call(())?;
    step.call(())?; // w stays 0
    w.assign(1.0)?;
    opt.borrow_mut().set_learning_rate(0.25);
    step.call(())?;
    assert_eq!(w.unrecorded_value().to_scalar::<f32>()?, 0.5);
    assert_eq!(step.trace_count(), 1);
    drop(step);
    assert_eq!(opt.borrow().iterations(), 3);
    Ok(())
}

#[test]
fn signatures_retrace_and_each_replays_its_own_program() -> Result<()> {
    let mut f = function(|x: Tensor| x.sum_all());
    assert_eq!(f.call(constant([1.0, 2.0]))?.to_scalar::<f32>()?, 3.0);
    assert_eq!(f.call(constant([1.0, 2.0, 3.0]))?.to_scalar::<f32>()?, 6.0);
    assert_eq!(f.call(constant([4.0, 5.0]))?.to_scalar::<f32>()?, 9.0);
    assert_eq!(f.call(Tensor::ones([2], DType::F16))?.to_scalar::<f16>()?, f16::from_f32(2.0));
    assert_eq!(f.trace_count(), 3);
    let mut bounded = function(|x: Tensor| x.sum_all()).max_traces(2);
    for n in 1..=4 {
        bounded.call(Tensor::ones([n], DType::F32))?;
    }
    assert_eq!(bounded.trace_count(), 2);
    // The same tensor passed twice is its own signature.
    let mut g = function(|(a, b): (Tensor, Tensor)| a * b);
    let x = constant([2.0, 3.0]);
    assert_eq!(g.call((x.clone(), x.clone()))?.to_vec::<f32>()?, vec![4.0, 9.0]);
    assert_eq!(g.call((x.clone(), constant([1.0, 1.0])))?.to_vec::<f32>()?, vec![2.0, 3.0]);
    assert_eq!(g.trace_count(), 2);
    Ok(())
}

#[test]
fn run_eagerly_runs_the_closure_every_call() -> Result<()> {
    let mut runs = 0;
    let mut f = function(|x: Tensor| {
        runs += 1;
        x.exp()
    })
    .run_eagerly(true);
    for _ in 0..3 {
        f.call(constant(0.0))?;
    }
    assert_eq!(f.trace_count(), 0);
    drop(f);
    assert_eq!(runs, 3);
    Ok(())
}

#[test]
fn verify_catches_a_frozen_host_value() -> Result<()> {
    let v = Variable::new(2.0);
    // The mistake: the variable's value read on the host is a constant of the program.
    let mut wrong = function(|x: Tensor| -> Result<Tensor> {
        let host = v.unrecorded_value().to_vec::<f32>()?[0];
        x.mul(host)
    })
    .verify(true);
    // Reading a variable's value in the closure is itself an Err while tracing ...
    assert!(wrong.call(constant(1.0)).is_err());
    // ... and a value computed before the function is frozen: verify sees it change.
    let scale = std::cell::Cell::new(2.0f32);
    let mut frozen = function(|x: Tensor| -> Result<Tensor> { x.mul(scale.get()) }).verify(true);
    assert_eq!(frozen.call(constant(1.0))?.to_scalar::<f32>()?, 2.0);
    assert_eq!(frozen.call(constant(1.0))?.to_scalar::<f32>()?, 2.0);
    scale.set(3.0);
    let err = frozen.call(constant(1.0)).unwrap_err().to_string();
    assert!(err.contains("verify: result 0 differs"), "{err}");
    // The fix: the value in a variable.
    let live = Variable::new(2.0);
    let mut fixed = function(|x: Tensor| -> Result<Tensor> { x * &live }).verify(true);
    fixed.call(constant(1.0))?;
    live.assign(3.0)?;
    assert_eq!(fixed.call(constant(1.0))?.to_scalar::<f32>()?, 3.0);
    Ok(())
}

#[test]
fn a_function_inside_another_and_under_an_outer_tape() -> Result<()> {
    let w = Variable::new([1.0, 2.0]);
    let mut inner = function(|x: Tensor| (&x * &w)?.sum_all());
    let mut outer = function(|x: Tensor| -> Result<Tensor> {
        let tape = GradientTape::new();
        let y = tape.record(|| inner.call(x.clone()))?;
        Ok(tape.gradient(&y, &w)?.unwrap())
    });
    for _ in 0..3 {
        assert_eq!(outer.call(constant([3.0, 4.0]))?.to_vec::<f32>()?, vec![3.0, 4.0]);
    }
    assert_eq!(outer.trace_count(), 1);
    Ok(())
}

#[test]
fn generators_draw_per_call_and_roll_back_on_failure() -> Result<()> {
    let g = Generator::from_seed(3);
    let eager = Generator::from_seed(3);
    let mut f = function(|x: Tensor| -> Result<Tensor> { x * g.uniform([3], DType::F32)? });
    for _ in 0..4 {
        let got = f.call(Tensor::ones([3], DType::F32))?.to_vec::<f32>()?;
        assert_eq!(got, eager.uniform([3], DType::F32)?.to_vec::<f32>()?);
    }
    assert_eq!(f.trace_count(), 1);
    Ok(())
}

#[test]
fn independent_chains_replay_side_by_side_with_eagers_bits() -> Result<()> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        let x = Tensor::from_vec((0..128 * 128).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect(), [128, 128])?;
        let ws: Vec<Variable> =
            (0..4).map(|c| Variable::new(tapeflow::init::glorot_uniform([128, 128], DType::F32, c).unwrap())).collect();
        let chains = |x: &Tensor| -> Result<Vec<Tensor>> {
            let tape = GradientTape::new();
            let outs = tape.record(|| {
                ws.iter()
                    .map(|w| {
                        let mut h = x.clone();
                        for _ in 0..4 {
                            h = h.matmul(w)?.tanh()?;
                        }
                        h.sum_all()
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            let grads = tape.gradients(&outs, &ws)?;
            Ok(grads.into_iter().flatten().collect())
        };
        let mut f = function(|x: Tensor| chains(&x));
        f.call(x.clone())?;
        assert!(f.describe().contains("4 independent parts"), "{}", f.describe());
        for k in 0..3 {
            let xk = x.mul(1.0 + k as f32)?;
            let want = chains(&xk)?;
            let got = f.call(xk)?;
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(w.to_vec::<f32>()?, g.to_vec::<f32>()?);
            }
        }
        Ok(())
    })
}

#[test]
fn a_failing_part_fails_the_call_as_eager_and_writes_nothing() -> Result<()> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        let big = Variable::new(tapeflow::init::glorot_uniform([128, 128], DType::F32, 9)?);
        let table = Variable::new([1.0, 2.0, 3.0]);
        let mut f = function(|idx: Tensor| -> Result<(Tensor, Tensor)> {
            let mut h = big.read();
            for _ in 0..6 {
                h = h.matmul(&big)?.tanh()?;
            }
            let picked = table.read().gather(&idx, 0)?;
            table.assign_add(1.0)?;
            Ok((h.sum_all()?, picked))
        });
        f.call(constant([0, 1]))?;
        let before = table.unrecorded_value().to_vec::<f32>()?;
        assert!(f.call(constant([0, 9])).unwrap_err().to_string().contains("gather"));
        assert_eq!(table.unrecorded_value().to_vec::<f32>()?, before);
        assert_eq!(f.call(constant([2, 2]))?.1.to_vec::<f32>()?, vec![4.0, 4.0]);
        Ok(())
    })
}
