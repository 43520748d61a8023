//! `GradientTape::gradients_streaming`: every source's gradient reaches the sink exactly
//! once, the watched leaves' as soon as their last consumer has run (the last layer's
//! before the first layer's), and the result is `gradients_with`'s, bit for bit, on the
//! sequential and the parallel schedules.

use tapeflow::GradientSink;
use tapeflow::prelude::*;

/// What a sink saw: `(source index, gradient)` in arrival order, and how many times it
/// was called between ops.
#[derive(Default)]
struct Recorder {
    arrivals: Vec<(usize, Option<Tensor>)>,
    between: usize,
    /// `between` at each arrival: how far into the pass it came.
    at: Vec<usize>,
}

impl GradientSink for Recorder {
    fn ready(&mut self, index: usize, gradient: Option<&Tensor>) {
        self.arrivals.push((index, gradient.cloned()));
        self.at.push(self.between);
    }

    fn between_ops(&mut self) {
        self.between += 1;
    }
}

fn bits(t: &Option<Tensor>) -> Option<(Vec<usize>, DType, Vec<u32>)> {
    t.as_ref().map(|t| {
        let values = match t.dtype() {
            DType::I32 => t.to_vec::<i32>().unwrap().iter().map(|&v| v as u32).collect(),
            _ => t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect(),
        };
        (t.dims().to_vec(), t.dtype(), values)
    })
}

/// A three-layer MLP's loss over `vars` = [w1, b1, w2, b2, w3, b3].
fn mlp_loss(x: &Tensor, vars: &[Variable]) -> Result<Tensor> {
    let mut h = x.clone();
    for (k, pair) in vars.chunks(2).enumerate() {
        h = (h.matmul(&pair[0])? + &pair[1])?;
        if k < 2 {
            h = h.tanh()?;
        }
    }
    h.square()?.mean(&[0, 1], false)
}

fn mlp_vars() -> Result<Vec<Variable>> {
    let dims = [6usize, 5, 4, 3];
    let mut vars = Vec::new();
    for (k, pair) in dims.windows(2).enumerate() {
        vars.push(Variable::new(tapeflow::init::glorot_uniform([pair[0], pair[1]], DType::F32, k as u64)?));
        vars.push(Variable::new(Tensor::from_vec(vec![0.1f32 * (k as f32 + 1.0); pair[1]], [pair[1]])?));
    }
    Ok(vars)
}

#[test]
fn each_source_arrives_once_last_layer_first_and_matches_the_plain_call_bitwise() -> Result<()> {
    let vars = mlp_vars()?;
    let x = Tensor::from_vec((0..24).map(|i| (i as f32 * 0.37).sin()).collect(), [4, 6])?;
    for sequential in [true, false] {
        let options = GradientOptions::default().sequential(sequential);
        let tape = GradientTape::new().persistent(true);
        let loss = tape.record(|| mlp_loss(&x, &vars))?;
        let plain = tape.gradients_with(&[&loss], &vars, options.clone())?;
        let mut sink = Recorder::default();
        let streamed = tape.gradients_streaming(&[&loss], &vars, options, &mut sink)?;

        let mut seen: Vec<usize> = sink.arrivals.iter().map(|(k, _)| *k).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..vars.len()).collect::<Vec<_>>(), "every source exactly once");
        for (k, g) in &sink.arrivals {
            assert_eq!(bits(g), bits(&plain[*k]), "source {k}: the streamed gradient is the plain one");
        }
        for (s, p) in streamed.iter().zip(&plain) {
            assert_eq!(bits(s), bits(p));
        }
        // The last layer's weight is finished before the first layer's, and before the end
        // of the pass (ops ran after it arrived).
        let position = |k: usize| sink.arrivals.iter().position(|(j, _)| *j == k).unwrap();
        assert!(position(4) < position(0), "w3 before w1: {:?}", sink.arrivals.iter().map(|a| a.0).collect::<Vec<_>>());
        assert!(sink.between > 0);
        assert!(sink.at[position(4)] < sink.between, "w3 arrived mid-pass");
    }
    Ok(())
}

#[test]
fn duplicates_integers_tensors_intermediates_and_unconnected_sources_all_arrive() -> Result<()> {
    let w = Variable::new(constant([1.0, 2.0, 3.0]));
    let unused = Variable::new(constant([4.0, 5.0]));
    let count = Variable::new(Tensor::from_vec(vec![1i32, 2], [2])?);
    let x = constant([0.5, -0.5, 2.0]);
    for unconnected in [UnconnectedGradients::None, UnconnectedGradients::Zero] {
        let tape = GradientTape::new().persistent(true);
        tape.watch(&x);
        let (h, loss) = tape.record(|| -> Result<(Tensor, Tensor)> {
            let h = (&w * &x)?;
            let loss = h.exp()?.sum(&[0], false)?;
            Ok((h, loss))
        })?;
        let options = GradientOptions::default().unconnected(unconnected);
        // Variables (one listed twice, one unused, one int32), then tensors (a watched
        // input and an intermediate result).
        let variables = [&w, &unused, &count, &w];
        let plain = tape.gradients_with(&[&loss], &variables, options.clone())?;
        let mut sink = Recorder::default();
        let streamed = tape.gradients_streaming(&[&loss], &variables, options.clone(), &mut sink)?;
        check_all_arrived(&sink, &plain, &streamed);
        assert_eq!(bits(&streamed[0]), bits(&streamed[3]), "the same variable twice: the same gradient");
        assert_eq!(streamed[1].is_some(), unconnected == UnconnectedGradients::Zero);
        // An int32 source has no gradient (zeros when asked for them).
        assert_eq!(streamed[2].is_some(), unconnected == UnconnectedGradients::Zero);

        let tensors = [&x, &h];
        let plain = tape.gradients_with(&[&loss], &tensors, options.clone())?;
        let mut sink = Recorder::default();
        let streamed = tape.gradients_streaming(&[&loss], &tensors, options, &mut sink)?;
        check_all_arrived(&sink, &plain, &streamed);
        assert!(streamed.iter().all(Option::is_some));
    }
    Ok(())
}

fn check_all_arrived(sink: &Recorder, plain: &[Option<Tensor>], streamed: &[Option<Tensor>]) {
    let mut seen: Vec<usize> = sink.arrivals.iter().map(|(k, _)| *k).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..plain.len()).collect::<Vec<_>>(), "every source exactly once");
    for (k, g) in &sink.arrivals {
        assert_eq!(bits(g), bits(&plain[*k]), "source {k}");
        assert_eq!(bits(g), bits(&streamed[*k]), "source {k}");
    }
}

#[test]
fn a_failed_request_delivers_nothing_and_a_failed_pass_returns_its_error() -> Result<()> {
    let w = Variable::new(constant([1.0, 2.0]));
    let tape = GradientTape::new().persistent(true);
    let loss = tape.record(|| w.square()?.sum(&[0], false))?;
    // An output gradient of the wrong shape: refused before the pass.
    let mut sink = Recorder::default();
    let options = GradientOptions::default().output_gradients(vec![constant([1.0, 1.0])]);
    let error = tape.gradients_streaming(&[&loss], &[&w], options, &mut sink).unwrap_err();
    assert!(error.to_string().contains("output gradient"), "{error}");
    assert!(sink.arrivals.is_empty());

    // A gradient function that fails halfway through the pass.
    let v = Variable::new(constant([3.0]));
    let tape = GradientTape::new();
    let loss = tape.record(|| -> Result<Tensor> {
        let a = v.square()?;
        let b = custom_gradient(&[&a], |xs| {
            let y = (&xs[0] * 2.0)?;
            let grad = |_: &Tensor| -> Result<Vec<Option<Tensor>>> {
                Err(Error::InvalidArgument { op: "test_grad", reason: "refuses".into() })
            };
            Ok((y, grad))
        })?;
        (b + w.sum(&[0], false)?)?.sum(&[0], false)
    })?;
    let mut sink = Recorder::default();
    let error = tape.gradients_streaming(&[&loss], &[&w, &v], GradientOptions::default(), &mut sink).unwrap_err();
    assert!(error.to_string().contains("test_grad"), "{error}");
    assert!(sink.arrivals.iter().all(|(k, _)| *k != 1), "v's gradient never arrives");
    Ok(())
}

#[test]
fn independent_chains_on_the_parallel_schedule_stream_the_same_bits() -> Result<()> {
    // Two chains with real work and no shared op: the pass splits them over threads, and
    // their leaves are delivered once the parallel part is done.
    let a = Variable::new(tapeflow::init::glorot_uniform([96, 96], DType::F32, 1)?);
    let b = Variable::new(tapeflow::init::glorot_uniform([96, 96], DType::F32, 2)?);
    let x = Tensor::from_vec((0..96 * 96).map(|i| (i as f32 * 0.01).cos()).collect(), [96, 96])?;
    let tape = GradientTape::new().persistent(true);
    let loss = tape.record(|| -> Result<Tensor> {
        let mut ha = x.clone();
        let mut hb = x.clone();
        for _ in 0..4 {
            ha = ha.matmul(&a)?.tanh()?;
            hb = hb.matmul(&b)?.tanh()?;
        }
        ha.sum(&[0, 1], false)? + hb.sum(&[0, 1], false)?
    })?;
    let sequential = tape.gradients_with(&[&loss], &[&a, &b], GradientOptions::default().sequential(true))?;
    let mut sink = Recorder::default();
    let streamed = tape.gradients_streaming(&[&loss], &[&a, &b], GradientOptions::default(), &mut sink)?;
    assert_eq!(sink.arrivals.len(), 2);
    for (s, p) in streamed.iter().zip(&sequential) {
        assert_eq!(bits(s), bits(p));
    }
    Ok(())
}
