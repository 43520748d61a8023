//! `../shared/api/function.md`, verbatim: compiled functions (`tapeflow::function`).

use tapeflow::function;
use tapeflow::nn;
use tapeflow::prelude::*; // tf.function

fn compiled() -> Result<()> {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2])?;
    let y = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0], [3, 2])?;
    let params = || -> Result<(Variable, Variable)> {
        let w = Variable::new(tapeflow::init::glorot_uniform([2, 2], DType::F32, 7)?);
        Ok((w, Variable::new(Tensor::zeros([2], DType::F32))))
    };
    let loss_of = |x: &Tensor, y: &Tensor, w: &Variable, b: &Variable| -> Result<Tensor> {
        ((x.matmul(w)? + b)?.tanh()? - y)?.square()?.mean_all()
    };

    // Six eager Adam steps ...
    let (we, be) = params()?;
    let mut eager_opt = Adam::new(0.05);
    let mut eager_losses = Vec::new();
    for _ in 0..6 {
        let tape = GradientTape::new();
        let loss = tape.record(|| loss_of(&x, &y, &we, &be))?;
        let grads = tape.gradients(&[&loss], &[&we, &be])?;
        eager_opt.apply_gradients(&grads, &[&we, &be])?;
        eager_losses.push(loss.to_scalar::<f32>()?);
    }

    // ... and the same six steps through a function: traced once, replayed five times.
    let (w, b) = params()?;
    let mut opt = Adam::new(0.05);
    let mut traces = 0; // a Rust side effect: runs when tracing only
    let mut losses = Vec::new();
    {
        let mut step = function(|(x, y): (Tensor, Tensor)| -> Result<Tensor> {
            traces += 1;
            let tape = GradientTape::new();
            let loss = tape.record(|| loss_of(&x, &y, &w, &b))?;
            let grads = tape.gradients(&[&loss], &[&w, &b])?;
            opt.apply_gradients(&grads, &[&w, &b])?;
            Ok(loss)
        });
        for _ in 0..6 {
            losses.push(step.call((x.clone(), y.clone()))?.to_scalar::<f32>()?);
        }
        assert_eq!(step.trace_count(), 1);
        assert_eq!(losses, eager_losses); // the same bits, step by step
        assert_eq!(w.unrecorded_value().to_vec::<f32>()?, we.unrecorded_value().to_vec::<f32>()?);

        // Bad input is an Err naming the op, and a failed call changes no variable.
        let before = w.unrecorded_value().to_vec::<f32>()?;
        assert!(step.call((Tensor::zeros([3, 5], DType::F32), y.clone())).is_err());
        assert_eq!(w.unrecorded_value().to_vec::<f32>()?, before);

        // Another input signature (a batch of one) traces again; that is not an error.
        let x1 = Tensor::from_vec(vec![1.0f32, 2.0], [1, 2])?;
        let y1 = Tensor::from_vec(vec![0.0f32, 1.0], [1, 2])?;
        step.call((x1, y1))?;
        assert_eq!(step.trace_count(), 2);
    }
    assert_eq!(traces, 3); // the closure ran for each trace, the failed one too
    assert_eq!(opt.iterations(), 7); // yet the optimizer stepped seven times

    // Higher order inside a function: a Hessian-vector product by nested tapes.
    let w1 = Variable::new([1.0, 2.0, 3.0]);
    let hvp = |v: &Tensor| -> Result<Tensor> {
        let outer = GradientTape::new();
        let gv = outer.record(|| {
            let inner = GradientTape::new();
            let f = inner.record(|| w1.pow(3.0)?.sum_all())?;
            (inner.gradient(&f, &w1)?.unwrap() * v)?.sum_all()
        })?;
        Ok(outer.gradient(&gv, &w1)?.unwrap()) // 6 w ⊙ v
    };
    let v = constant([1.0, 0.5, 0.25]);
    let eager = hvp(&v)?.to_vec::<f32>()?;
    let mut compiled = function(|v: Tensor| hvp(&v));
    for _ in 0..3 {
        assert_eq!(compiled.call(v.clone())?.to_vec::<f32>()?, eager);
    }

    // Reading a value inside a trace is an Err, as `.numpy()` is inside tf.function: a
    // compiled program cannot branch on data. Compute both sides and select instead.
    let mut branchy = function(|x: Tensor| -> Result<Tensor> {
        if x.sum_all()?.to_scalar::<f32>()? > 0.0 { x.exp() } else { x.neg() }
    });
    assert!(branchy.call(constant([1.0, 2.0])).is_err());
    let mut selected = function(|x: Tensor| -> Result<Tensor> {
        let positive = x.sum_all()?.greater(0.0)?;
        select(&positive, &x.exp()?, &x.neg()?)
    });
    assert_eq!(selected.call(constant([-1.0, -2.0]))?.to_vec::<f32>()?, vec![1.0, 2.0]);

    // Randomness advances per call, as with tf.random.Generator: its state is a variable.
    let rng = tapeflow::random::Generator::from_seed(7);
    let mut drop = function(|x: Tensor| nn::dropout_with(&x, 0.5, &rng));
    let ones = Tensor::ones([64], DType::F32);
    let first = drop.call(ones.clone())?.to_vec::<f32>()?;
    let second = drop.call(ones.clone())?.to_vec::<f32>()?;
    assert_ne!(first, second); // a new mask per call
    assert_eq!(drop.trace_count(), 1);
    Ok(())
}

#[test]
fn function_contract() {
    compiled().unwrap();
}
