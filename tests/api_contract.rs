//! The snippet of the API contract (docs/API.md), verbatim: it must compile and every
//! assertion in it must hold.

use tapeflow::prelude::*; // Tensor, Variable, GradientTape, DType, Shape, Error, Result,
// UnconnectedGradients, GradientOptions, constant, stop_gradient, f16

fn tour() -> Result<()> {
    // Tensors: constant() maps Rust literals like TensorFlow maps Python ones.
    let c = constant(3.0); // float32 scalar
    let i = constant(30); // int32 scalar
    let v = constant([1.0, 2.0, 3.0]); // float32, shape (3,)
    let m = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2])?;
    let h = Tensor::from_vec(vec![f16::from_f32(1.5); 4], [4])?; // float16
    let z = Tensor::zeros([2, 3], DType::F32);
    assert_eq!(c.dtype(), DType::F32);
    assert_eq!(i.dtype(), DType::I32);
    assert_eq!(m.dims(), &[2, 2]);
    assert_eq!(v.to_vec::<f32>()?, vec![1.0, 2.0, 3.0]);
    assert_eq!(c.to_scalar::<f32>()?, 3.0);
    let _ = (h.cast(DType::F32)?, z);
    assert!(Tensor::from_vec(vec![1.0f32; 5], [2, 2]).is_err()); // bad input is an Err

    // Math: methods on Tensor and on Variable (a variable read is recorded as an access).
    // Every tensor argument of an op accepts a Tensor, a Variable or a Rust scalar, by
    // reference or by value. Rust scalars adopt the other operand's dtype, as TF converts
    // Python numbers: on a float32 x, x.pow(3) is float32; on an int32 x, x * 2.5 is an Err.
    // std::ops operators (+ - * / and unary -) work between Tensor, &Tensor and &Variable,
    // with a Rust scalar on either side, and with Result<Tensor> on either side of a tensor
    // operand (Rust's orphan rule forbids Result<Tensor> beside a scalar or another Result);
    // they return Result<Tensor>, so expressions chain with one `?`.
    let y = (m.matmul(&m)? * 2.0 + &m)?;
    let wv = Variable::new(Tensor::zeros([2, 2], DType::F32));
    let _ = (m.matmul(&wv)?, (&wv * &m)?, (2.0 - &wv)?, -&m);
    let s = y.sum_all()?; // also: sum(axes, keepdims), mean, max
    let _ = (s, v.pow(2.0)?, v.exp()?, m.transpose(&[1, 0])?, m.reshape([4])?);

    // Variables
    let x = Variable::new(20.0); // float32, trainable, named "Variable:0"
    println!("{x}"); // <Variable 'Variable:0' shape=() dtype=float32, value=20.0>
    let xi = Variable::new(30); // int32
    let xf = Variable::with_dtype(30, DType::F32)?; // like tf.Variable(30, dtype=tf.float32)
    let frozen = Variable::builder(5.0).trainable(false).name("frozen").build()?;
    assert!(!frozen.trainable());
    let _ = (xi, xf);

    // The `with tf.GradientTape() as tape:` block is a closure passed to record().
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2.0))?; // record() returns what the closure returns
    let dy_dx: Option<Tensor> = tape.gradient(&y, &x)?;
    assert_eq!(dy_dx.unwrap().to_scalar::<f32>()?, 40.0);
    assert!(tape.gradient(&y, &x).is_err()); // non-persistent: one set of gradients only

    // Watching a constant, options as builder methods.
    let tape = GradientTape::new().persistent(true).watch_accessed_variables(false);
    let y = tape.record(|| {
        tape.watch(&c);
        c.pow(2.0)
    })?;
    assert_eq!(tape.gradient(&y, &c)?.unwrap().to_scalar::<f32>()?, 6.0);
    assert!(tape.gradient(&y, &x)?.is_none()); // x was never accessed on this tape

    // Several targets and sources; targets are summed, one result per source.
    let (x0, x1) = (Variable::new(5.0), Variable::new(10.0));
    let tape = GradientTape::new().persistent(true);
    let (y0, y1) = tape.record(|| Ok::<_, Error>((x0.pow(2.0)?, x1.pow(2.0)?)))?;
    let gs: Vec<Option<Tensor>> = tape.gradients(&[&y0, &y1], &[&x0, &x1])?;
    assert_eq!(gs.len(), 2);

    // Options: output gradients (VJP seeds) and unconnected gradients as zeros.
    let opts = GradientOptions::default().output_gradients(vec![constant(2.0)]).unconnected(UnconnectedGradients::Zero);
    let g = tape.gradient_with(&y0, &x1, opts)?; // zeros of x1's shape, not None
    assert_eq!(g.unwrap().to_scalar::<f32>()?, 0.0);

    // Higher order: nest tapes; the inner gradient is recorded by the outer tape.
    let (a, b) = (Variable::new(2.0), Variable::new(3.0));
    let outer = GradientTape::new();
    let dy_da = outer.record(|| {
        let inner = GradientTape::new();
        let y = inner.record(|| a.pow(2.0)? * b.pow(3.0)?)?;
        inner.gradient(&y, &a).map(Option::unwrap)
    })?;
    assert_eq!(outer.gradient(&dy_da, &b)?.unwrap().to_scalar::<f32>()?, 108.0);

    // Jacobians.
    let w = Variable::new([1.0, 2.0]);
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| w.pow(2.0))?;
    let j = tape.jacobian(&y, &w)?.unwrap(); // shape (2, 2): [[2, 0], [0, 4]]
    assert_eq!(j.dims(), &[2, 2]);
    let xb = Variable::new(Tensor::from_vec(vec![1.0f32; 6], [3, 2])?);
    let yb = tape.record(|| xb.tanh())?;
    assert_eq!(tape.batch_jacobian(&yb, &xb)?.unwrap().dims(), &[3, 2, 2]);

    // Pausing, resetting, inspecting.
    let tape = GradientTape::new();
    let y = tape.record(|| tape.stop_recording(|| x.pow(2.0)))?;
    assert!(tape.gradient(&y, &x)?.is_none());
    let _ = (tape.watched_variables(), stop_gradient(&c));

    // Training: variables are updated in place.
    x.assign_sub(&(constant(0.1) * &dy_da)?)?;
    Ok(())
}

#[test]
fn api_contract_snippet_runs() {
    tour().expect("the API.md snippet returns Ok");
}

/// `shared/api/catalog2.md` (masks, select, elementwise math, reductions and scans, shapes,
/// slicing, gathers and scatters, einsum), verbatim: its `&constant(..)` arguments stay as
/// the contract writes them.
#[allow(clippy::needless_borrows_for_generic_args)]
fn catalog2() -> Result<()> {
    // bool, the fourth dtype. Comparisons broadcast and give bool; no gradient flows through them.
    let a = constant([1.0, 2.0, 3.0]);
    let b = constant([3.0, 2.0, 1.0]);
    let m = a.greater(&b)?; // tf.math.greater
    assert_eq!(m.dtype(), DType::Bool);
    assert_eq!(m.to_vec::<bool>()?, vec![false, false, true]);
    assert_eq!(format!("{m}"), "Tensor([False False  True], shape=(3,), dtype=bool)");
    let _ = (a.equal(&b)?, a.not_equal(2.0)?, a.less(&b)?, a.less_equal(&b)?, a.greater_equal(&b)?);
    let _ = (m.logical_and(&a.less(3.0)?)?, m.logical_or(&m)?, m.logical_xor(&m)?, m.logical_not()?);
    let _ = (a.is_nan()?, a.is_finite()?, a.is_inf()?, m.cast(DType::F32)?);
    assert_eq!(constant([true, false]).dtype(), DType::Bool);
    assert_eq!(Tensor::from_vec(vec![true, false], [2])?.dims(), &[2]);
    assert!(a.logical_and(&m).is_err()); // logical ops take bool only

    // tf.where(cond, x, y): `select`, broadcasting all three; the gradient goes to x where
    // cond holds and to y elsewhere.
    let x = Variable::new([1.0, 2.0, 3.0]);
    let tape = GradientTape::new();
    let y = tape.record(|| select(&m, &x, 0.0))?; // [0, 0, 3]
    assert_eq!(tape.gradient(&y, &x)?.unwrap().to_vec::<f32>()?, vec![0.0, 0.0, 1.0]);

    // More elementwise ops, TensorFlow's names and formulas.
    let v = constant([-1.5, 0.5, 2.5]);
    let _ = (
        v.floor()?,
        v.ceil()?,
        v.sign()?,
        v.tan()?,
        v.atan()?,
        v.sinh()?,
        v.cosh()?,
        v.asinh()?,
        v.erf()?,
        v.erfc()?,
        v.log_sigmoid()?,
        v.softsign()?,
        v.elu()?,
        v.selu()?,
        v.relu6()?,
        v.silu()?,
        v.gelu(false)?,
        v.gelu(true)?,
        v.leaky_relu(0.2)?,
    );
    let u = constant([0.5, -0.25]);
    let _ = (u.asin()?, u.acos()?, u.atanh()?, constant([1.5]).acosh()?);
    let _ = (v.squared_difference(&v)?, v.floordiv(2.0)?, v.floormod(2.0)?, v.atan2(1.0)?, v.clip_by_value(-1.0, 1.0)?);
    assert_eq!(v.round()?.to_vec::<f32>()?, vec![-2.0, 0.0, 2.0]); // half to even, as TF

    // Reductions and scans.
    let r = Tensor::from_vec(vec![3.0f32, 1.0, 2.0, 4.0, 5.0, 0.5], [2, 3])?;
    let _ = (
        r.min(&[1], false)?,
        r.prod(&[0], true)?,
        r.logsumexp(&[-1], false)?,
        r.variance(&[0], false)?,
        r.std(&[0, 1], false)?,
        r.min_all()?,
        r.prod_all()?,
    );
    assert_eq!(r.argmax(1)?.to_vec::<i32>()?, vec![0, 1]); // int32 indices; ties: first index
    let _ = (r.argmin(0)?, m.any(&[0], false)?, m.all(&[0], false)?);
    let _ = (r.cumsum(1, false, false)?, r.cumprod(0, true, true)?); // axis, exclusive, reverse

    // Shapes.
    let s = Tensor::zeros([1, 3, 1, 2], DType::F32);
    assert_eq!(s.squeeze(&[])?.dims(), &[3, 2]); // no axes: every size-1 axis, as TF
    assert_eq!(s.squeeze(&[2])?.dims(), &[1, 3, 2]);
    assert!(s.squeeze(&[1]).is_err()); // axis 1 has size 3
    assert_eq!(r.expand_dims(0)?.dims(), &[1, 2, 3]);
    let st = stack(&[&r, &r], 0)?; // [2, 2, 3]
    let parts: Vec<Tensor> = st.unstack(0)?; // two [2, 3]
    let halves: Vec<Tensor> = r.split(&[1, 2], 1)?; // sizes along axis 1: [2, 1] and [2, 2]
    assert_eq!((parts.len(), halves[1].dims()), (2, &[2usize, 2][..]));
    let _ = (r.tile(&[2, 1])?, r.reverse(&[1])?);
    assert_eq!(r.pad(&[[1, 0], [0, 2]], PadMode::Constant(0.0))?.dims(), &[3, 5]);
    let _ = (r.pad(&[[1, 1], [1, 1]], PadMode::Reflect)?, r.pad(&[[0, 0], [2, 0]], PadMode::Symmetric)?);

    // Slicing: tf.slice (begin, size with -1 = to the end) and tf.strided_slice (begin, end,
    // strides; negative begin/end count from the end and out-of-range ones clamp, as Python).
    let w = Tensor::from_vec((0..20).map(|i| i as f32).collect::<Vec<_>>(), [4, 5])?;
    assert_eq!(w.slice(&[1, 0], &[2, -1])?.dims(), &[2, 5]);
    assert_eq!(w.strided_slice(&[-1, 4], &[0, 0], &[-1, -2])?.to_vec::<f32>()?, vec![19.0, 17.0, 14.0, 12.0, 9.0, 7.0]);

    // Gathers and scatters. An index out of range is an Err naming the op (TF on CPU errors too).
    let emb = Variable::new(Tensor::from_vec((0..12).map(|i| i as f32).collect::<Vec<_>>(), [4, 3])?);
    let ids = constant([2, 0, 2]);
    let tape = GradientTape::new();
    let rows = tape.record(|| emb.gather(&ids, 0))?; // [3, 3]
    let g = tape.gradient(&rows, &emb)?.unwrap(); // row 2 twice, row 0 once
    assert_eq!(&g.to_vec::<f32>()?[6..9], &[2.0, 2.0, 2.0]);
    assert!(emb.gather(&constant([4]), 0).is_err());
    let idx = Tensor::from_vec(vec![0, 1, 1, 2], [2, 2])?;
    let _ = (
        r.gather_nd(&idx)?,
        scatter_nd(&Tensor::from_vec(vec![1, 3], [2, 1])?, &constant([5.0, 6.0]), [4])?,
        one_hot(&constant([0, 2]), 3)?, // float32 [2, 3]
        unsorted_segment_sum(&r, &constant([1, 0]), 2)?,
    );

    // einsum over one or two operands (no ellipsis), differentiable.
    let q = Tensor::zeros([2, 3, 4], DType::F32);
    let k = Tensor::zeros([2, 5, 4], DType::F32);
    assert_eq!(einsum("bqd,bkd->bqk", &[&q, &k])?.dims(), &[2, 3, 5]);
    assert_eq!(einsum("ij->ji", &[&r])?.dims(), &[3, 2]);
    Ok(())
}

#[test]
fn catalog2_snippet_runs() {
    catalog2().expect("the catalog2.md snippet returns Ok");
}

/// `shared/api/nn.md` (convolution, pooling, normalization, losses, dropout), verbatim.
#[allow(clippy::needless_borrows_for_generic_args)]
fn nn_layers() -> Result<()> {
    use tapeflow::nn::{self, Padding};
    let x = Tensor::zeros([2, 8, 8, 1], DType::F32);
    let f = Variable::new(tapeflow::init::glorot_uniform([3, 3, 1, 16], DType::F32, 0)?);
    let tape = GradientTape::new();
    let y = tape.record(|| {
        let h = nn::conv2d(&x, &f, [1, 1], Padding::Same, [1, 1])?; // [2, 8, 8, 16]
        let h = nn::max_pool2d(&h.relu()?, [2, 2], [2, 2], Padding::Valid)?; // [2, 4, 4, 16]
        h.mean_all()
    })?;
    assert!(tape.gradient(&y, &f)?.is_some());
    assert!(nn::conv2d(&x, &Tensor::zeros([3, 3, 2, 4], DType::F32), [1, 1], Padding::Same, [1, 1]).is_err()); // channels 1 vs 2

    let up = nn::conv2d_transpose(&x, &Tensor::zeros([3, 3, 4, 1], DType::F32), [2, 16, 16, 4], [2, 2], Padding::Same)?;
    assert_eq!(up.dims(), &[2, 16, 16, 4]);
    let _ = (
        nn::avg_pool2d(&x, [2, 2], [2, 2], Padding::Valid)?,
        nn::depthwise_conv2d(&x, &Tensor::zeros([3, 3, 1, 2], DType::F32), [1, 1], Padding::Same)?,
        nn::bias_add(&Tensor::zeros([2, 3], DType::F32), &constant([1.0, 2.0, 3.0]))?,
        nn::l2_loss(&x)?,
        nn::l2_normalize(&x, -1)?,
    );

    // Normalization: tf.nn.moments and tf.nn.batch_normalization (offset and scale optional).
    let (mean, variance) = nn::moments(&x, &[0, 1, 2], false)?;
    let _ = nn::batch_normalization(&x, &mean, &variance, Some(&constant([0.0])), Some(&constant([1.0])), 1e-3)?;
    let _ = nn::batch_normalization(&x, &mean, &variance, None, None, 1e-3)?;

    // Losses on dense labels (a gradient flows to the labels too, as in TF).
    let logits = Tensor::zeros([2, 3], DType::F32);
    let labels = constant([[1.0, 0.0, 0.0], [0.25, 0.25, 0.5]]);
    assert_eq!(nn::softmax_cross_entropy(&logits, &labels)?.dims(), &[2]);
    assert_eq!(nn::sigmoid_cross_entropy(&logits, &labels)?.dims(), &[2, 3]);

    // tf.nn.dropout(x, rate, seed): kept values scaled by 1/(1 - rate); the same seed gives
    // the same mask; the gradient is the mask, scaled.
    let ones = Tensor::ones([1000], DType::F32);
    let d = nn::dropout(&ones, 0.25, 7)?;
    assert_eq!(d.to_vec::<f32>()?, nn::dropout(&ones, 0.25, 7)?.to_vec::<f32>()?);
    assert!(nn::dropout(&ones, 1.0, 7).is_err()); // rate must be in [0, 1)
    Ok(())
}

#[test]
fn nn_snippet_runs() {
    nn_layers().expect("the nn.md snippet returns Ok");
}

/// `shared/api/autodiff.md` (custom gradients, forward mode, recompute_grad, variable
/// reads), verbatim.
#[allow(clippy::needless_borrows_for_generic_args)]
fn advanced() -> Result<()> {
    // tf.custom_gradient: the closure computes the value (its ops are not recorded) and
    // returns it with the gradient function, which maps the upstream gradient to one gradient
    // per input. The TF guide's example: log(1 + e^x) whose gradient stays finite at x = 100.
    let x = Variable::new(100.0);
    let tape = GradientTape::new();
    let y = tape.record(|| {
        custom_gradient(&[&x.read()], |xs| {
            let e = xs[0].exp()?;
            let value = (&e + 1.0)?.log()?;
            let grad = move |g: &Tensor| -> Result<Vec<Option<Tensor>>> {
                let one_plus_e = (&e + 1.0)?;
                let s = (1.0 - (1.0 / &one_plus_e)?)?; // 1 - 1/(1 + e^x)
                Ok(vec![Some((g * &s)?)])
            };
            Ok((value, grad))
        })
    })?;
    assert_eq!(tape.gradient(&y, &x)?.unwrap().to_scalar::<f32>()?, 1.0);

    // Forward mode (tf.autodiff.ForwardAccumulator): a Jacobian-vector product in one pass.
    let p = constant([1.0, 2.0]);
    let acc = ForwardAccumulator::new().primal(&p, &constant([1.0, 0.0]))?;
    let q = acc.record(|| p.pow(3.0))?;
    assert_eq!(acc.jvp(&q)?.unwrap().to_vec::<f32>()?, vec![3.0, 0.0]); // 3p² ⊙ v
    assert!(acc.jvp(&constant(1.0))?.is_none()); // not computed from p
    assert!(ForwardAccumulator::new().primal(&p, &constant([1.0])).is_err()); // tangent shape

    // Forward over reverse: a Hessian-vector product (the TF guide's pattern).
    let w = Variable::new([1.0, 2.0]);
    let acc = ForwardAccumulator::new().primal(&w, &constant([1.0, 1.0]))?;
    let g = acc.record(|| {
        let t = GradientTape::new();
        let f = t.record(|| w.pow(3.0)?.sum_all())?;
        t.gradient(&f, &w).map(Option::unwrap) // 3w²
    })?;
    assert_eq!(acc.jvp(&g)?.unwrap().to_vec::<f32>()?, vec![6.0, 12.0]); // H·v = 6w ⊙ v

    // tf.recompute_grad: the block's intermediates are not kept; the backward pass runs the
    // block again. Variables the block reads get their gradients too.
    let v = Variable::new(Tensor::from_vec(vec![0.5f32; 1024], [1024])?);
    let scale = Variable::new(2.0);
    let tape = GradientTape::new();
    let block = {
        let scale = scale.clone();
        move |xs: &[Tensor]| -> Result<Tensor> { (&xs[0].tanh()?.tanh()? * &scale)?.tanh() }
    };
    let out = tape.record(|| recompute_grad(&[&v.read()], block)?.sum_all())?;
    let gs = tape.gradients(&[&out], &[&v, &scale])?;
    assert!(gs.iter().all(Option::is_some));

    // A variable's value inside a tape is a read, recorded as in TF.
    let z = Variable::new(3.0);
    let tape = GradientTape::new();
    let y = tape.record(|| z.value().pow(2.0))?;
    assert_eq!(tape.gradient(&y, &z)?.unwrap().to_scalar::<f32>()?, 6.0);
    Ok(())
}

#[test]
fn autodiff_snippet_runs() {
    advanced().expect("the autodiff.md snippet returns Ok");
}
