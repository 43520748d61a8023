//! Hostile input: a seeded random generator calls every op of the catalog, the tensor
//! constructors, `Variable` and every `GradientTape` function with random dtypes, ranks 0–3,
//! dimensions 0–4, mismatched shapes, bad axes, permutations and reshape targets, and the
//! values that break careless code (NaN, ±inf, -0, subnormals, f16::MAX, i32::MIN/MAX).
//!
//! Each call runs under `catch_unwind`: it must return `Ok` or `Err`, never panic. An `Err`
//! must name its op (and, when the call had tensor operands, one of their shapes and
//! dtypes). A failed `assign*` must leave the variable as it was. Every op that succeeds on
//! float inputs inside a tape must differentiate: `gradient` is `Ok(Some(g))` with the
//! input's shape and dtype (`Ok(None)` for int32), and some cases also take `jacobian`,
//! `batch_jacobian` and `gradient_with` (seeds of random shapes).
//!
//! The run is reproducible: `TAPEFLOW_HOSTILE_SEED` (default below) picks the values and
//! `TAPEFLOW_HOSTILE_ROUNDS` the number of rounds (each round calls every op once).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tapeflow::prelude::*;

/// Shape, slicing, indexing and einsum ops (catalog II).
#[path = "hostile/indexing.rs"]
mod indexing;

/// The convolutions of `tapeflow::nn`.
#[path = "hostile/nn_conv.rs"]
mod nn_conv;

/// `tapeflow::nn`: pooling, normalization, losses, dropout.
#[path = "hostile/nn_layers.rs"]
mod nn_layers;

const DEFAULT_SEED: u64 = 0x7A9E_F10E;
const DEFAULT_ROUNDS: usize = 400;
/// Calls a default run must make at least (counted, asserted).
const MIN_CALLS: usize = 20_000;

/// SplitMix64: small, fast and good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `1/n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn range(&mut self, lo: isize, hi: isize) -> isize {
        lo + self.below((hi - lo + 1) as usize) as isize
    }
}

const SPECIAL_F32: [f32; 20] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    -0.0,
    0.0,
    1e-40,  // subnormal
    -1e-45, // the smallest subnormal, negative
    f32::MIN_POSITIVE,
    65504.0, // f16::MAX
    -65504.0,
    f32::MAX,
    f32::MIN,
    1.0,
    -1.0,
    0.5,
    88.7,
    -103.0,
    1e30,
    300.0,
    2.0,
];

const SPECIAL_F16: [f16; 10] = [
    f16::NAN,
    f16::INFINITY,
    f16::NEG_INFINITY,
    f16::NEG_ZERO,
    f16::MAX,
    f16::MIN,
    f16::MIN_POSITIVE,
    f16::MIN_POSITIVE_SUBNORMAL,
    f16::from_bits(0x8001), // the smallest subnormal, negative
    f16::ONE,
];

const SPECIAL_I32: [i32; 9] = [i32::MIN, i32::MAX, i32::MIN + 1, 0, -1, 1, 2, 3, 46341];

/// Literal second operands (a Rust scalar adopts the tensor's dtype, or is refused).
#[derive(Clone, Copy, Debug)]
enum Literal {
    Float(f64),
    Int(i32),
}

const FLOAT_LITERALS: [f64; 9] = [f64::NAN, f64::INFINITY, -0.0, 2.5, 2.0, -1.0, 1e300, 1e-310, 65504.0];

/// A receiver or operand: a tensor or a variable holding one.
#[derive(Clone)]
enum Input {
    Tensor(Tensor),
    Variable(Variable),
}

impl Input {
    fn value(&self) -> Tensor {
        match self {
            Input::Tensor(t) => t.clone(),
            Input::Variable(v) => v.value(),
        }
    }

    fn describe(&self) -> String {
        let t = self.value();
        let kind = if matches!(self, Input::Variable(_)) { "variable " } else { "" };
        let mut values = t.values_text();
        if values.len() > 120 {
            values.truncate(120);
            values.push('…');
        }
        format!("{kind}{} {} {}", t.dtype(), t.shape(), values.replace('\n', ""))
    }
}

impl TensorMath for Input {
    fn to_tensor(&self) -> Tensor {
        match self {
            Input::Tensor(t) => t.clone(),
            Input::Variable(v) => v.read(),
        }
    }
}

thread_local! {
    /// Set while a call runs under `catch_unwind`: the panic hook then records the panic's
    /// location here instead of printing it.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A [`GradientSink`] that counts its calls.
#[derive(Default)]
struct CountingSink {
    calls: usize,
}

impl tapeflow::GradientSink for CountingSink {
    fn ready(&mut self, _: usize, _: Option<&Tensor>) {
        self.calls += 1;
    }
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info.location().map(ToString::to_string).unwrap_or_default();
                LOCATION.with(|l| *l.borrow_mut() = Some(at));
            } else {
                previous(info);
            }
        }));
    });
}

/// Calls started so far, watched by [`watchdog`].
static PROGRESS: AtomicUsize = AtomicUsize::new(0);

/// A hang is a failure too: if no call starts for 60 s, name the call and end the process.
fn watchdog() {
    std::thread::spawn(|| {
        let (mut last, mut still) = (usize::MAX, 0);
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = PROGRESS.load(Ordering::Relaxed);
            still = if now == last { still + 1 } else { 0 };
            last = now;
            if still >= 60 {
                // Straight to stderr: the test harness's capture would swallow `eprintln!`.
                let msg = format!(
                    "hostile: call #{now} has run for 60 s; rerun with TAPEFLOW_HOSTILE_TRACE=1 -- --nocapture\n"
                );
                let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
                std::process::exit(101);
            }
        }
    });
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// What the run saw per op.
#[derive(Default)]
struct Tally {
    ok: usize,
    err: usize,
    gradients: usize,
}

struct Hostile {
    rng: Rng,
    calls: usize,
    /// Failures grouped by kind (op and what went wrong): how many, and the first call.
    failures: BTreeMap<String, (usize, String)>,
    tally: BTreeMap<&'static str, Tally>,
    /// `TAPEFLOW_HOSTILE_TRACE=1`: print each call before making it (to find a hang).
    trace: bool,
}

impl Hostile {
    fn new(seed: u64) -> Self {
        let trace = std::env::var_os("TAPEFLOW_HOSTILE_TRACE").is_some();
        Hostile { rng: Rng(seed), calls: 0, failures: BTreeMap::new(), tally: BTreeMap::new(), trace }
    }

    /// Records a failure of kind `kind`; `example` (the call) is kept for the first one.
    fn fail(&mut self, kind: String, example: String) {
        self.failures.entry(kind).or_insert((0, example)).0 += 1;
    }

    /// Runs one library call under `catch_unwind` and counts it. A panic is recorded with
    /// the call and its inputs; an `Err` must name `op` and, when `operands` is not empty,
    /// the shape and dtype of one of them. Returns the value on success.
    fn call<T>(
        &mut self,
        op: &'static str,
        operands: &[&Tensor],
        describe: &dyn Fn() -> String,
        f: impl FnOnce() -> Result<T>,
    ) -> Option<T> {
        self.calls += 1;
        PROGRESS.store(self.calls, Ordering::Relaxed);
        if self.trace {
            eprintln!("{op}: {}", describe());
        }
        QUIET.with(|q| q.set(true));
        let outcome = catch_unwind(AssertUnwindSafe(f));
        QUIET.with(|q| q.set(false));
        match outcome {
            Ok(Ok(value)) => {
                self.tally.entry(op).or_default().ok += 1;
                Some(value)
            }
            Ok(Err(err)) => {
                self.tally.entry(op).or_default().err += 1;
                let msg = err.to_string();
                // sum_all, mean_all and max_all are TensorFlow's sum, mean and max.
                if !msg.contains(op.trim_end_matches("_all")) {
                    self.fail(format!("{op}: the error does not name the op"), format!("{msg:?} from {}", describe()));
                }
                let names_operand =
                    operands.is_empty() || operands.iter().any(|t| msg.contains(&t.shape().to_string()));
                let names_dtype = operands.is_empty() || operands.iter().any(|t| msg.contains(&t.dtype().to_string()));
                if !(names_operand && names_dtype) {
                    self.fail(
                        format!("{op}: the error names no operand's shape and dtype"),
                        format!("{msg:?} from {}", describe()),
                    );
                }
                None
            }
            Err(payload) => {
                let at = LOCATION.with(|l| l.borrow_mut().take()).unwrap_or_default();
                self.fail(format!("{op}: PANIC at {at}: {}", panic_text(payload)), describe());
                None
            }
        }
    }

    // ---- random inputs ----

    fn dtype(&mut self) -> DType {
        match self.rng.below(5) {
            0 | 1 => DType::F32,
            2 => DType::F16,
            3 => DType::I32,
            _ => DType::Bool,
        }
    }

    fn dim(&mut self) -> usize {
        match self.rng.below(10) {
            0 => 0,
            1..=3 => 1,
            k => 2 + k % 3,
        }
    }

    fn dims(&mut self) -> Vec<usize> {
        let rank = self.rng.below(4);
        let mut dims: Vec<usize> = (0..rank).map(|_| self.dim()).collect();
        if rank >= 2 && self.rng.one_in(25) {
            // No elements, but a dimension whose products overflow: [0, 2^62, 4], ...
            let (i, j) = (self.rng.below(rank), self.rng.below(rank));
            // Only counts no allocation can hold: a reduction over the empty axis must be an
            // Err, not an attempt to allocate terabytes.
            dims[i] = self.rng.pick(&[usize::MAX, 1 << 62, (1 << 61) + 1]);
            dims[j] = 0;
        }
        dims
    }

    /// An axis in `-rank..rank` three times in four, else anything in -4..=4.
    fn axis(&mut self, rank: usize) -> isize {
        if rank > 0 && !self.rng.one_in(4) {
            self.rng.range(-(rank as isize), rank as isize - 1)
        } else {
            self.rng.range(-4, 4)
        }
    }

    fn f32_value(&mut self) -> f32 {
        if self.rng.one_in(3) { self.rng.pick(&SPECIAL_F32) } else { (self.rng.below(2001) as f32 - 1000.0) / 100.0 }
    }

    fn tensor(&mut self, dtype: DType, dims: &[usize]) -> Tensor {
        let n: usize = if dims.contains(&0) { 0 } else { dims.iter().product() };
        assert!(n <= 4096, "the generator asked for a tensor of shape {dims:?}");
        let result =
            match dtype {
                DType::F32 => Tensor::from_vec((0..n).map(|_| self.f32_value()).collect::<Vec<f32>>(), dims),
                DType::F16 => Tensor::from_vec(
                    (0..n)
                        .map(|_| {
                            if self.rng.one_in(3) {
                                self.rng.pick(&SPECIAL_F16)
                            } else {
                                f16::from_f32(self.f32_value())
                            }
                        })
                        .collect::<Vec<f16>>(),
                    dims,
                ),
                DType::I32 => Tensor::from_vec(
                    (0..n)
                        .map(|_| {
                            if self.rng.one_in(3) { self.rng.pick(&SPECIAL_I32) } else { self.rng.range(-5, 5) as i32 }
                        })
                        .collect::<Vec<i32>>(),
                    dims,
                ),
                DType::Bool => Tensor::from_vec((0..n).map(|_| self.rng.one_in(2)).collect::<Vec<bool>>(), dims),
            };
        result.expect("the generator fills the shape")
    }

    fn random_tensor(&mut self) -> Tensor {
        let (dtype, dims) = (self.dtype(), self.dims());
        self.tensor(dtype, &dims)
    }

    /// A second operand for `like`: the same shape, a broadcast-compatible one, or any
    /// shape; usually `like`'s dtype.
    fn partner(&mut self, like: &Tensor) -> Tensor {
        let dtype = if self.rng.one_in(6) { self.dtype() } else { like.dtype() };
        let dims = match self.rng.below(10) {
            0..=3 => like.dims().to_vec(),
            4..=6 => {
                let skip = self.rng.below(like.rank() + 1);
                like.dims()[skip..].iter().map(|&d| if d != 0 && self.rng.one_in(2) { 1 } else { d }).collect()
            }
            _ => self.dims(),
        };
        // Dropping the zero of an empty [2^62, 0] would ask for 2^62 elements.
        let fits =
            dims.contains(&0) || dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_some_and(|n| n <= 4096);
        let dims = if fits { dims } else { like.dims().to_vec() };
        self.tensor(dtype, &dims)
    }

    fn input(&mut self, t: Tensor) -> Input {
        if self.rng.one_in(3) { Input::Variable(Variable::new(t)) } else { Input::Tensor(t) }
    }

    fn axes(&mut self, rank: usize) -> Vec<isize> {
        let len = self.rng.below(4);
        (0..len).map(|_| self.axis(rank)).collect()
    }

    fn literal(&mut self) -> Literal {
        if self.rng.one_in(2) {
            Literal::Float(self.rng.pick(&FLOAT_LITERALS))
        } else {
            Literal::Int(self.rng.pick(&SPECIAL_I32))
        }
    }

    // ---- the tape ----

    /// Runs `op` on `inputs` inside a persistent tape that watches them, then checks the
    /// gradient of the result with respect to every input (and sometimes the jacobians).
    fn differentiate(
        &mut self,
        op: &'static str,
        inputs: &[Input],
        describe: &dyn Fn() -> String,
        f: impl FnOnce() -> Result<Tensor>,
    ) {
        self.differentiate_with(op, inputs, &[], describe, f);
    }

    /// [`differentiate`](Self::differentiate) where an `Err` may also name one of `extra`.
    fn differentiate_with(
        &mut self,
        op: &'static str,
        inputs: &[Input],
        extra: &[Tensor],
        describe: &dyn Fn() -> String,
        f: impl FnOnce() -> Result<Tensor>,
    ) {
        let tape = GradientTape::new().persistent(true);
        for input in inputs {
            match input {
                Input::Tensor(t) => tape.watch(t),
                Input::Variable(v) => tape.watch(v),
            }
        }
        let values: Vec<Tensor> = inputs.iter().map(Input::value).collect();
        let operands: Vec<&Tensor> = values.iter().chain(extra).collect();
        let Some(y) = self.call(op, &operands, describe, || tape.record(f)) else { return };
        let differentiable = |t: &Tensor| t.dtype().is_float();
        // An empty input with a dimension past 2^32 ([2^62, 0, 3]): the forward op must not
        // panic, but a gradient may need an intermediate no allocation can hold (softmax's
        // backward sums over the empty axis with keepdims: [2^62, 1, 3]), so an Err is fine.
        let exotic = values.iter().any(|t| t.dims().iter().any(|&d| d > 1 << 32));
        for (input, value) in inputs.iter().zip(&values) {
            let g = match input {
                Input::Tensor(t) => self.call(gradient_op(exotic), &[], describe, || tape.gradient(&y, t)),
                Input::Variable(v) => self.call(gradient_op(exotic), &[], describe, || tape.gradient(&y, v)),
            };
            if g.is_none() && exotic {
                continue;
            }
            let Some(g) = g else {
                self.fail(format!("{op}: gradient is an Err after a successful op"), describe());
                continue;
            };
            self.tally.entry(op).or_default().gradients += 1;
            // Labels of the cross-entropy are inputs, not differentiable ones.
            let expect_some = differentiable(&y)
                && differentiable(value)
                && !(op == "sparse_softmax_cross_entropy" && value.dtype() == DType::I32)
                && !NO_GRADIENT.contains(&op);
            match g {
                Some(g) if expect_some => {
                    if g.shape() != value.shape() || g.dtype() != value.dtype() {
                        self.fail(
                            format!("{op}: gradient of the wrong shape or dtype"),
                            format!("{} {} from {}", g.shape(), g.dtype(), describe()),
                        );
                    }
                }
                None if !expect_some => {}
                other => self.fail(
                    format!(
                        "{op}: gradient is {} (expected {})",
                        if other.is_some() { "Some" } else { "None" },
                        if expect_some { "Some" } else { "None" }
                    ),
                    format!("output {} {} from {}", y.shape(), y.dtype(), describe()),
                ),
            }
        }
        let Some(first) = inputs.first().filter(|_| !exotic) else { return };
        let source = first.value();
        // A seed of the target's shape, or of another one: a VJP or an Err.
        if self.rng.one_in(4) {
            let seed_dims = if self.rng.one_in(2) { y.dims().to_vec() } else { self.dims() };
            let seed_dtype = if self.rng.one_in(4) { self.dtype() } else { y.dtype() };
            let seed = self.tensor(seed_dtype, &seed_dims);
            let options = GradientOptions::default().output_gradients(vec![seed.clone()]);
            // Half the time through the streaming call, whose sink must then have seen the
            // one source exactly once.
            let streaming = self.rng.one_in(2);
            let mut sink = CountingSink::default();
            let got = match (first, streaming) {
                (Input::Tensor(t), false) => {
                    self.call("gradient", &[&y, &seed], describe, || tape.gradient_with(&y, t, options))
                }
                (Input::Variable(v), false) => {
                    self.call("gradient", &[&y, &seed], describe, || tape.gradient_with(&y, v, options))
                }
                (Input::Tensor(t), true) => self.call("gradient", &[&y, &seed], describe, || {
                    Ok(tape.gradients_streaming(&[&y], &[t], options, &mut sink)?.pop().flatten())
                }),
                (Input::Variable(v), true) => self.call("gradient", &[&y, &seed], describe, || {
                    Ok(tape.gradients_streaming(&[&y], &[v], options, &mut sink)?.pop().flatten())
                }),
            };
            if streaming && got.is_some() && sink.calls != 1 {
                self.fail(format!("{op}: the streaming sink saw {} calls for one source", sink.calls), describe());
            }
            if let Some(Some(g)) = got
                && g.shape() != source.shape()
            {
                self.fail(
                    format!("{op}: gradient_with of the wrong shape"),
                    format!("{} from {}", g.shape(), describe()),
                );
            }
        }
        if y.num_elements() <= 64 && self.rng.one_in(6) {
            let j = match first {
                Input::Tensor(t) => self.call("jacobian", &[], describe, || tape.jacobian(&y, t)),
                Input::Variable(v) => self.call("jacobian", &[], describe, || tape.jacobian(&y, v)),
            };
            match j {
                Some(Some(j)) => {
                    let mut want = y.dims().to_vec();
                    want.extend_from_slice(source.dims());
                    if j.dims() != want.as_slice() || j.dtype() != source.dtype() {
                        self.fail(
                            format!("{op}: jacobian of the wrong shape or dtype"),
                            format!("{} {} from {}", j.shape(), j.dtype(), describe()),
                        );
                    }
                }
                Some(None) => {}
                None => self.fail(format!("{op}: jacobian is an Err after a successful op"), describe()),
            }
        }
        if y.num_elements() <= 64 && self.rng.one_in(6) {
            let bj = match first {
                Input::Tensor(t) => {
                    self.call("batch_jacobian", &[&y, &source], describe, || tape.batch_jacobian(&y, t))
                }
                Input::Variable(v) => {
                    self.call("batch_jacobian", &[&y, &source], describe, || tape.batch_jacobian(&y, v))
                }
            };
            if let Some(Some(j)) = bj {
                let mut want = y.dims().to_vec();
                want.extend_from_slice(&source.dims()[1..]);
                if j.dims() != want.as_slice() {
                    self.fail(
                        format!("{op}: batch_jacobian of the wrong shape"),
                        format!("{} from {}", j.shape(), describe()),
                    );
                }
            }
        }
    }

    // ---- the catalog ----

    fn unary_case(&mut self, op: &'static str) {
        let x = self.random_tensor();
        let x = self.input(x);
        let describe = || format!("{op}({})", x.describe());
        let inputs = [x.clone()];
        self.differentiate(op, &inputs, &describe, || unary(op, &x));
    }

    fn binary_case(&mut self, op: &'static str) {
        let a = self.random_tensor();
        if self.rng.one_in(5) {
            // A Rust literal as the second operand.
            let lit = self.literal();
            let a = self.input(a);
            let describe = || format!("{op}({}, {lit:?})", a.describe());
            let inputs = [a.clone()];
            // An Err about the literal names its shape `()` and the dtype it was to adopt.
            let literal_shape = Tensor::zeros([], a.value().dtype());
            self.differentiate_with(op, &inputs, &[literal_shape], &describe, || match lit {
                Literal::Float(v) => binary(op, &a, v),
                Literal::Int(v) => binary(op, &a, v),
            });
            return;
        }
        let b = self.partner(&a);
        let (a, b) = if self.rng.one_in(2) { (a, b) } else { (b, a) };
        let (a, b) = (self.input(a), self.input(b));
        let describe = || format!("{op}({}, {})", a.describe(), b.describe());
        let inputs = [a.clone(), b.clone()];
        self.differentiate(op, &inputs, &describe, || match &b {
            Input::Tensor(t) => binary(op, &a, t),
            Input::Variable(v) => binary(op, &a, v),
        });
    }

    // ---- masks (catalog II) ----

    /// A unary mask op (logical_not, is_nan, is_finite, is_inf) of a random tensor.
    fn mask_unary_case(&mut self, op: &'static str) {
        let x = self.random_tensor();
        let x = self.input(x);
        let describe = || format!("{op}({})", x.describe());
        let inputs = [x.clone()];
        self.differentiate(op, &inputs, &describe, || mask_unary(op, &x));
    }

    /// A comparison or logical op of a random tensor and a partner, or a literal (a number
    /// or a bool).
    fn mask_binary_case(&mut self, op: &'static str) {
        let a = self.random_tensor();
        if self.rng.one_in(5) {
            let a = self.input(a);
            let literal_shape = Tensor::zeros([], a.value().dtype());
            let inputs = [a.clone()];
            if self.rng.one_in(2) {
                let lit = self.rng.one_in(2);
                let describe = || format!("{op}({}, {lit})", a.describe());
                self.differentiate_with(op, &inputs, &[literal_shape], &describe, || mask_binary(op, &a, lit));
            } else {
                let lit = self.literal();
                let describe = || format!("{op}({}, {lit:?})", a.describe());
                self.differentiate_with(op, &inputs, &[literal_shape], &describe, || match lit {
                    Literal::Float(v) => mask_binary(op, &a, v),
                    Literal::Int(v) => mask_binary(op, &a, v),
                });
            }
            return;
        }
        let b = self.partner(&a);
        let (a, b) = if self.rng.one_in(2) { (a, b) } else { (b, a) };
        let (a, b) = (self.input(a), self.input(b));
        let describe = || format!("{op}({}, {})", a.describe(), b.describe());
        let inputs = [a.clone(), b.clone()];
        self.differentiate(op, &inputs, &describe, || match &b {
            Input::Tensor(t) => mask_binary(op, &a, t),
            Input::Variable(v) => mask_binary(op, &a, v),
        });
    }

    /// `select(cond, x, y)`: a condition that is usually bool and broadcasts, values that
    /// usually share a dtype; y sometimes a literal.
    fn select_case(&mut self) {
        let x = self.random_tensor();
        let cond_dtype = if self.rng.one_in(5) { self.dtype() } else { DType::Bool };
        let cond_like = self.partner(&x);
        let cond = self.tensor(cond_dtype, cond_like.dims());
        let x = self.input(x);
        let describe_cond = Input::Tensor(cond.clone()).describe();
        if self.rng.one_in(5) {
            let lit = self.literal();
            let describe = || format!("select({describe_cond}, {}, {lit:?})", x.describe());
            let literal_shape = Tensor::zeros([], x.value().dtype());
            let inputs = [x.clone()];
            self.differentiate_with("select", &inputs, &[cond.clone(), literal_shape], &describe, || match lit {
                Literal::Float(v) => select(&cond, x.to_tensor(), v),
                Literal::Int(v) => select(&cond, x.to_tensor(), v),
            });
            return;
        }
        let y = self.partner(&x.value());
        let y = self.input(y);
        let describe = || format!("select({describe_cond}, {}, {})", x.describe(), y.describe());
        let inputs = [x.clone(), y.clone()];
        self.differentiate_with("select", &inputs, std::slice::from_ref(&cond), &describe, || {
            select(&cond, x.to_tensor(), y.to_tensor())
        });
    }

    /// `any` / `all` over random (often bad) axes.
    fn any_all_case(&mut self, op: &'static str) {
        let x = if self.rng.one_in(4) {
            self.random_tensor()
        } else {
            let dims = self.dims();
            self.tensor(DType::Bool, &dims)
        };
        let (axes, keepdims) = (self.axes(x.rank()), self.rng.one_in(2));
        let x = self.input(x);
        let describe = || format!("{op}({}, axes {axes:?}, keepdims {keepdims})", x.describe());
        let inputs = [x.clone()];
        self.differentiate(op, &inputs, &describe, || {
            if op == "any" { x.any(&axes, keepdims) } else { x.all(&axes, keepdims) }
        });
    }

    /// leaky_relu(alpha), clip_by_value(min, max) and gelu(approximate) with random
    /// attributes.
    fn attributed_case(&mut self, op: &'static str) {
        let x = self.random_tensor();
        let x = self.input(x);
        let (p, q) = (self.rng.pick(&ATTRIBUTE_VALUES), self.rng.pick(&ATTRIBUTE_VALUES));
        let approximate = self.rng.one_in(2);
        let describe = || format!("{op}({}, {p}, {q}, approximate {approximate})", x.describe());
        let inputs = [x.clone()];
        self.differentiate(op, &inputs, &describe, || match op {
            "leaky_relu" => x.leaky_relu(p),
            "gelu" => x.gelu(approximate),
            _ => x.clip_by_value(p, q),
        });
    }

    /// `+ - * /` and unary `-` as operators (tensors only; their errors name add, sub, ...).
    fn operator_case(&mut self, op: &'static str) {
        let a = self.random_tensor();
        let b = self.partner(&a);
        let describe = || {
            format!("operator {op}({}, {})", Input::Tensor(a.clone()).describe(), Input::Tensor(b.clone()).describe())
        };
        let inputs = [Input::Tensor(a.clone()), Input::Tensor(b.clone())];
        match op {
            "add" => self.differentiate(op, &inputs, &describe, || &a + &b),
            "sub" => self.differentiate(op, &inputs, &describe, || &a - &b),
            "mul" => self.differentiate(op, &inputs, &describe, || &a * &b),
            "div" => self.differentiate(op, &inputs, &describe, || &a / &b),
            _ => self.differentiate(op, &inputs[..1], &describe, || -&a),
        }
    }

    fn reduce_case(&mut self, op: &'static str) {
        let x = self.random_tensor();
        let (axes, keepdims) = (self.axes(x.rank()), self.rng.one_in(2));
        let x = self.input(x);
        let describe = || format!("{op}({}, axes {axes:?}, keepdims {keepdims})", x.describe());
        let inputs = [x.clone()];
        self.differentiate(op, &inputs, &describe, || match op {
            "sum" => x.sum(&axes, keepdims),
            "mean" => x.mean(&axes, keepdims),
            "max" => x.max(&axes, keepdims),
            "sum_all" => x.sum_all(),
            "mean_all" => x.mean_all(),
            "min" => x.min(&axes, keepdims),
            "prod" => x.prod(&axes, keepdims),
            "logsumexp" => x.logsumexp(&axes, keepdims),
            "variance" => x.variance(&axes, keepdims),
            "std" => x.std(&axes, keepdims),
            "min_all" => x.min_all(),
            "prod_all" => x.prod_all(),
            _ => x.max_all(),
        });
    }

    /// argmax / argmin (int32 out, no gradient) and cumsum / cumprod along one axis.
    fn axis_case(&mut self, op: &'static str) {
        let x = self.random_tensor();
        let (axis, exclusive, reverse) = (self.axis(x.rank()), self.rng.one_in(2), self.rng.one_in(2));
        let x = self.input(x);
        let describe = || format!("{op}({}, axis {axis}, exclusive {exclusive}, reverse {reverse})", x.describe());
        let inputs = [x.clone()];
        self.differentiate(op, &inputs, &describe, || match op {
            "argmax" => x.argmax(axis),
            "argmin" => x.argmin(axis),
            "cumsum" => x.cumsum(axis, exclusive, reverse),
            _ => x.cumprod(axis, exclusive, reverse),
        });
    }

    fn matmul_case(&mut self) {
        let (ta, tb) = (self.rng.one_in(2), self.rng.one_in(2));
        let (a, b) = if self.rng.one_in(3) {
            (self.random_tensor(), self.random_tensor())
        } else {
            // Compatible operands (mostly): batch dims, then m×k and k×n, transposed as asked.
            let dtype = self.dtype();
            let batch: Vec<usize> = (0..self.rng.below(2)).map(|_| self.dim()).collect();
            let (m, k, n) = (self.dim(), self.dim(), self.dim());
            let k2 = if self.rng.one_in(5) { self.dim() } else { k };
            let mut da = if self.rng.one_in(2) { batch.clone() } else { Vec::new() };
            da.extend(if ta { [k, m] } else { [m, k] });
            let mut db = batch;
            db.extend(if tb { [n, k2] } else { [k2, n] });
            (self.tensor(dtype, &da), self.tensor(dtype, &db))
        };
        let (a, b) = (self.input(a), self.input(b));
        let describe = || format!("matmul({}, {}, transpose_a {ta}, transpose_b {tb})", a.describe(), b.describe());
        let inputs = [a.clone(), b.clone()];
        self.differentiate("matmul", &inputs, &describe, || a.matmul_transposed(b.to_tensor(), ta, tb));
    }

    fn reshape_case(&mut self) {
        let x = self.random_tensor();
        let n = x.num_elements() as isize;
        let target: Vec<isize> = match self.rng.below(4) {
            0 => vec![-1],
            1 => vec![n],
            2 => {
                let mut t = vec![1, -1];
                t.rotate_left(self.rng.below(2));
                t
            }
            _ => (0..self.rng.below(5))
                .map(|_| self.rng.pick(&[-2, -1, -1, 0, 1, 2, 3, 4, 6, isize::MAX, isize::MIN, 1 << 40]))
                .collect(),
        };
        let x = self.input(x);
        let describe = || format!("reshape({}, {target:?})", x.describe());
        let inputs = [x.clone()];
        self.differentiate("reshape", &inputs, &describe, || x.reshape(&target));
    }

    fn transpose_case(&mut self) {
        let x = self.random_tensor();
        let rank = x.rank();
        let perm: Vec<usize> = if self.rng.one_in(2) {
            let mut p: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                let j = self.rng.below(i + 1);
                p.swap(i, j);
            }
            p
        } else {
            (0..self.rng.below(5)).map(|_| self.rng.pick(&[0, 1, 2, 3, 4, usize::MAX])).collect()
        };
        let x = self.input(x);
        let describe = || format!("transpose({}, {perm:?})", x.describe());
        let inputs = [x.clone()];
        self.differentiate("transpose", &inputs, &describe, || x.transpose(&perm));
    }

    fn broadcast_to_case(&mut self) {
        let x = self.random_tensor();
        let target: Vec<usize> = match self.rng.below(8) {
            0..=3 => {
                let mut t: Vec<usize> = (0..self.rng.below(2)).map(|_| self.dim()).collect();
                t.extend(x.dims().iter().map(|&d| if d == 1 { self.dim() } else { d }));
                t
            }
            4 => vec![usize::MAX, 2],
            5 => vec![1 << 40, 1 << 40, 8],
            _ => self.dims(),
        };
        let x = self.input(x);
        let describe = || format!("broadcast_to({}, {target:?})", x.describe());
        let inputs = [x.clone()];
        self.differentiate("broadcast_to", &inputs, &describe, || x.broadcast_to(target.as_slice()));
    }

    fn concat_case(&mut self) {
        let first = self.random_tensor();
        let count = self.rng.below(4);
        let axis = self.axis(first.rank());
        let values: Vec<Input> = (0..count)
            .map(|_| {
                let t = if self.rng.one_in(3) {
                    self.random_tensor()
                } else {
                    // Same dtype and rank; the concat axis (if valid) may differ in length.
                    let mut dims = first.dims().to_vec();
                    let others = dims.iter().enumerate().filter(|&(i, _)| Some(i) != first.shape().resolve_axis(axis));
                    let small = others.map(|(_, &d)| d).try_fold(1usize, usize::checked_mul).is_some_and(|n| n <= 64);
                    if let Some(a) = first.shape().resolve_axis(axis).filter(|_| small) {
                        dims[a] = self.dim();
                    }
                    self.tensor(first.dtype(), &dims)
                };
                self.input(t)
            })
            .collect();
        let describe = || {
            let parts: Vec<String> = values.iter().map(Input::describe).collect();
            format!("concat([{}], axis {axis})", parts.join(", "))
        };
        self.differentiate("concat", &values, &describe, || concat(&values, axis));
    }

    fn cast_case(&mut self) {
        let x = self.random_tensor();
        let x = self.input(x);
        let to = self.dtype();
        let describe = || format!("cast({}, {to})", x.describe());
        let inputs = [x.clone()];
        self.differentiate("cast", &inputs, &describe, || x.cast(to));
    }

    fn softmax_case(&mut self, op: &'static str) {
        let x = self.random_tensor();
        let axis = self.axis(x.rank());
        let x = self.input(x);
        let describe = || format!("{op}({}, axis {axis})", x.describe());
        let inputs = [x.clone()];
        self.differentiate(
            op,
            &inputs,
            &describe,
            || if op == "softmax" { x.softmax(axis) } else { x.log_softmax(axis) },
        );
    }

    fn cross_entropy_case(&mut self) {
        let op = "sparse_softmax_cross_entropy";
        let (logits, labels) = if self.rng.one_in(3) {
            (self.random_tensor(), self.random_tensor())
        } else {
            let (n, c) = (self.dim(), self.dim());
            let dtype = if self.rng.one_in(5) { DType::I32 } else { self.rng.pick(&[DType::F32, DType::F16]) };
            let logits = self.tensor(dtype, &[n, c]);
            let labels: Vec<i32> = (0..n)
                .map(|_| {
                    if self.rng.one_in(6) { self.rng.pick(&SPECIAL_I32) } else { self.rng.range(0, c as isize) as i32 }
                })
                .collect();
            let label_dims = if self.rng.one_in(8) { vec![n + 1] } else { vec![n] };
            let labels = Tensor::from_vec(labels, [n]).expect("n labels");
            let labels = if label_dims[0] == n { labels } else { self.tensor(DType::I32, &label_dims) };
            (logits, labels)
        };
        let (logits, labels) = (self.input(logits), self.input(labels));
        let describe = || format!("{op}({}, {})", logits.describe(), labels.describe());
        let inputs = [logits.clone(), labels.clone()];
        self.differentiate(op, &inputs, &describe, || logits.sparse_softmax_cross_entropy(labels.to_tensor()));
    }

    /// Constructors, accessors and Display.
    fn tensor_case(&mut self) {
        let dims = self.dims();
        let dtype = self.dtype();
        let n: usize = if dims.contains(&0) { 0 } else { dims.iter().product() };
        let len = if self.rng.one_in(2) { n } else { self.rng.below(6) };
        let describe = || format!("from_vec({len} values of {dtype}, {dims:?})");
        let made = match dtype {
            DType::F32 => {
                self.call("from_vec", &[], &describe, || Tensor::from_vec(vec![f32::NAN; len], dims.as_slice()))
            }
            DType::F16 => {
                self.call("from_vec", &[], &describe, || Tensor::from_vec(vec![f16::MAX; len], dims.as_slice()))
            }
            DType::I32 => {
                self.call("from_vec", &[], &describe, || Tensor::from_vec(vec![i32::MIN; len], dims.as_slice()))
            }
            DType::Bool => self.call("from_vec", &[], &describe, || Tensor::from_vec(vec![true; len], dims.as_slice())),
        };
        if made.is_some() != (len == n) {
            self.fail("from_vec: Ok for a wrong length or Err for the right one".into(), describe());
        }
        let value = self.rng.pick(&[f64::NAN, f64::INFINITY, 2.5, 1e10, -0.0, 3.0, f64::from(i32::MIN), 1e-320]);
        let describe = || format!("full({dims:?}, {value}, {dtype})");
        let t = self.call("full", &[], &describe, || Tensor::full(dims.as_slice(), value, dtype));
        if t.is_some_and(|t| t.dims() != dims.as_slice() || t.dtype() != dtype) {
            self.fail("full: the wrong shape or dtype".into(), describe());
        }
        let describe = || format!("zeros/ones({dims:?}, {dtype})");
        for (name, make) in [("zeros", Tensor::zeros as fn(Shape, DType) -> Tensor), ("ones", Tensor::ones)] {
            let t = self.call(name, &[], &describe, || Ok(make(Shape::from(dims.as_slice()), dtype)));
            if t.is_some_and(|t| t.dims() != dims.as_slice() || t.dtype() != dtype) {
                self.fail(format!("{name}: the wrong shape or dtype"), describe());
            }
        }
        let t = self.random_tensor();
        let describe = || format!("accessors of {}", Input::Tensor(t.clone()).describe());
        self.call("Display", &[], &describe, || Ok(t.to_string()));
        self.call("to_scalar", &[&t], &describe, || t.to_scalar::<f32>());
        self.call("to_scalar", &[&t], &describe, || t.to_scalar::<i32>());
        self.call("to_vec", &[&t], &describe, || t.to_vec::<f16>());
        self.call("stop_gradient", &[], &describe, || Ok(stop_gradient(&t)));
    }

    /// Variable creation and updates with wrong shapes, dtypes and values; a failed update
    /// must leave the value bit for bit as it was.
    fn variable_case(&mut self) {
        let init = self.random_tensor();
        let to = self.dtype();
        let describe = || format!("Variable::with_dtype({}, {to})", Input::Tensor(init.clone()).describe());
        let v = self.call("Variable", &[&init], &describe, || Variable::with_dtype(init.clone(), to));
        let v = v.unwrap_or_else(|| Variable::new(init.clone()));
        let describe = || format!("Display of {}", Input::Variable(v.clone()).describe());
        self.call("Display", &[], &describe, || Ok(v.to_string()));
        for _ in 0..3 {
            let before = v.value();
            let which = self.rng.pick(&["assign", "assign_add", "assign_sub"]);
            let delta = if self.rng.one_in(4) { None } else { Some(self.partner(&before)) };
            let lit = self.literal();
            let describe = || match &delta {
                Some(d) => format!(
                    "{which}({}, {})",
                    Input::Variable(v.clone()).describe(),
                    Input::Tensor(d.clone()).describe()
                ),
                None => format!("{which}({}, {lit:?})", Input::Variable(v.clone()).describe()),
            };
            // An Err about a literal names its shape `()` and the dtype it was to adopt.
            let literal_shape = Tensor::zeros([], before.dtype());
            let operands: Vec<&Tensor> = match &delta {
                Some(d) => vec![&before, d],
                None => vec![&before, &literal_shape],
            };
            let done = self.call(which, &operands, &describe, || {
                let operand: Operand = match (&delta, lit) {
                    (Some(d), _) => d.into_operand(),
                    (None, Literal::Float(x)) => x.into_operand(),
                    (None, Literal::Int(x)) => x.into_operand(),
                };
                match which {
                    "assign" => v.assign(operand),
                    "assign_add" => v.assign_add(operand),
                    _ => v.assign_sub(operand),
                }
            });
            let after = v.value();
            if after.shape() != before.shape() || after.dtype() != before.dtype() {
                self.fail(format!("{which}: the variable changed shape or dtype"), describe());
            }
            if done.is_none() && bits(&after) != bits(&before) {
                self.fail(format!("{which}: a failed update changed the variable"), describe());
            }
        }
    }

    /// A non-persistent tape refuses a second gradient with TensorFlow's message.
    fn reuse_case(&mut self) {
        let x = Variable::new(self.tensor(DType::F32, &[2]));
        let describe = || "a second gradient on a non-persistent tape".to_string();
        let tape = GradientTape::new();
        let y = self.call("exp", &[], &describe, || tape.record(|| x.exp()));
        let Some(y) = y else { return };
        self.call("gradient", &[], &describe, || tape.gradient(&y, &x));
        if self.call("gradient", &[], &describe, || tape.gradient(&y, &x)).is_some() {
            self.fail("a non-persistent tape gave a second gradient".into(), describe());
        }
    }
}

use tapeflow::{IntoOperand, Operand};

/// The op an `Err` of `gradient` must name: "gradient", or "" (anything) for exotic inputs,
/// whose backward rules may fail inside (naming the rule's op, e.g. `sum`).
fn gradient_op(exotic: bool) -> &'static str {
    if exotic { "" } else { "gradient" }
}

fn bits(t: &Tensor) -> Vec<u64> {
    t.to_f64_vec().into_iter().map(f64::to_bits).collect()
}

fn unary(op: &str, x: &Input) -> Result<Tensor> {
    match op {
        "neg" => x.neg(),
        "abs" => x.abs(),
        "exp" => x.exp(),
        "log" => x.log(),
        "sqrt" => x.sqrt(),
        "rsqrt" => x.rsqrt(),
        "square" => x.square(),
        "tanh" => x.tanh(),
        "sigmoid" => x.sigmoid(),
        "relu" => x.relu(),
        "sin" => x.sin(),
        "cos" => x.cos(),
        "softplus" => x.softplus(),
        "log1p" => x.log1p(),
        "expm1" => x.expm1(),
        "reciprocal" => x.reciprocal(),
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        "round" => x.round(),
        "sign" => x.sign(),
        "tan" => x.tan(),
        "asin" => x.asin(),
        "acos" => x.acos(),
        "atan" => x.atan(),
        "sinh" => x.sinh(),
        "cosh" => x.cosh(),
        "asinh" => x.asinh(),
        "acosh" => x.acosh(),
        "atanh" => x.atanh(),
        "erf" => x.erf(),
        "erfc" => x.erfc(),
        "log_sigmoid" => x.log_sigmoid(),
        "softsign" => x.softsign(),
        "elu" => x.elu(),
        "selu" => x.selu(),
        "relu6" => x.relu6(),
        "silu" => x.silu(),
        _ => unreachable!("not a unary op: {op}"),
    }
}

fn binary(op: &str, a: &Input, b: impl IntoOperand) -> Result<Tensor> {
    match op {
        "add" => a.add(b),
        "sub" => a.sub(b),
        "mul" => a.mul(b),
        "div" => a.div(b),
        "pow" => a.pow(b),
        "maximum" => a.maximum(b),
        "minimum" => a.minimum(b),
        "squared_difference" => a.squared_difference(b),
        "floordiv" => a.floordiv(b),
        "floormod" => a.floormod(b),
        "atan2" => a.atan2(b),
        _ => unreachable!("not a binary op: {op}"),
    }
}

fn mask_unary(op: &str, x: &Input) -> Result<Tensor> {
    match op {
        "logical_not" => x.logical_not(),
        "is_nan" => x.is_nan(),
        "is_finite" => x.is_finite(),
        "is_inf" => x.is_inf(),
        _ => unreachable!("not a unary mask op: {op}"),
    }
}

fn mask_binary(op: &str, a: &Input, b: impl IntoOperand) -> Result<Tensor> {
    match op {
        "equal" => a.equal(b),
        "not_equal" => a.not_equal(b),
        "less" => a.less(b),
        "less_equal" => a.less_equal(b),
        "greater" => a.greater(b),
        "greater_equal" => a.greater_equal(b),
        "logical_and" => a.logical_and(b),
        "logical_or" => a.logical_or(b),
        "logical_xor" => a.logical_xor(b),
        _ => unreachable!("not a binary mask op: {op}"),
    }
}

const MASK_UNARY: [&str; 4] = ["logical_not", "is_nan", "is_finite", "is_inf"];
const MASK_BINARY: [&str; 9] = [
    "equal",
    "not_equal",
    "less",
    "less_equal",
    "greater",
    "greater_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
];

const UNARY: [&str; 37] = [
    "neg",
    "abs",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "square",
    "tanh",
    "sigmoid",
    "relu",
    "sin",
    "cos",
    "softplus",
    "log1p",
    "expm1",
    "reciprocal",
    "floor",
    "ceil",
    "round",
    "sign",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "asinh",
    "acosh",
    "atanh",
    "erf",
    "erfc",
    "log_sigmoid",
    "softsign",
    "elu",
    "selu",
    "relu6",
    "silu",
];
const BINARY: [&str; 11] =
    ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "squared_difference", "floordiv", "floormod", "atan2"];
/// Ops with an attribute (random scalars, NaN and inverted bounds included; gelu's
/// `approximate` either way).
const ATTRIBUTED: [&str; 3] = ["leaky_relu", "clip_by_value", "gelu"];
/// Ops TensorFlow's gradient registry leaves without a gradient: `None` on success.
const NO_GRADIENT: [&str; 4] = ["floor", "ceil", "round", "floordiv"];
/// Attribute values: ordinary, zero, negative, huge, non-integral (int32 bounds refuse
/// them) and NaN.
const ATTRIBUTE_VALUES: [f64; 10] = [0.2, 0.0, -1.5, 1.0, 3.0, -2.0, 1e30, 0.5, f64::NAN, f64::NEG_INFINITY];
const REDUCE: [&str; 13] = [
    "sum",
    "mean",
    "max",
    "sum_all",
    "mean_all",
    "max_all",
    "min",
    "prod",
    "logsumexp",
    "variance",
    "std",
    "min_all",
    "prod_all",
];
const AXIS_OPS: [&str; 4] = ["argmax", "argmin", "cumsum", "cumprod"];
const OPERATORS: [&str; 5] = ["add", "sub", "mul", "div", "neg"];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn hostile_inputs_never_panic_and_successes_differentiate() {
    install_panic_hook();
    watchdog();
    let seed = env_or("TAPEFLOW_HOSTILE_SEED", DEFAULT_SEED);
    let rounds = env_or("TAPEFLOW_HOSTILE_ROUNDS", DEFAULT_ROUNDS);
    let mut h = Hostile::new(seed);
    for _ in 0..rounds {
        for op in UNARY {
            h.unary_case(op);
        }
        for op in BINARY {
            h.binary_case(op);
        }
        for op in ATTRIBUTED {
            h.attributed_case(op);
        }
        for op in OPERATORS {
            h.operator_case(op);
        }
        for op in REDUCE {
            h.reduce_case(op);
        }
        for op in AXIS_OPS {
            h.axis_case(op);
        }
        for op in MASK_UNARY {
            h.mask_unary_case(op);
        }
        for op in MASK_BINARY {
            h.mask_binary_case(op);
        }
        h.select_case();
        h.any_all_case("any");
        h.any_all_case("all");
        h.matmul_case();
        h.reshape_case();
        h.transpose_case();
        h.broadcast_to_case();
        h.concat_case();
        h.cast_case();
        h.softmax_case("softmax");
        h.softmax_case("log_softmax");
        h.cross_entropy_case();
        h.tensor_case();
        h.variable_case();
        h.reuse_case();
        h.indexing_cases();
        h.conv_cases();
        h.nn_layers_cases();
    }
    let summary: Vec<String> =
        h.tally.iter().map(|(op, t)| format!("{op}: {} ok, {} err, {} gradients", t.ok, t.err, t.gradients)).collect();
    println!("seed {seed:#x}, {rounds} rounds, {} calls\n  {}", h.calls, summary.join("\n  "));
    let failures: Vec<String> =
        h.failures.iter().map(|(kind, (count, example))| format!("{count} × {kind}\n    first: {example}")).collect();
    assert!(failures.is_empty(), "{} kinds of failure (seed {seed:#x}):\n{}", failures.len(), failures.join("\n"));
    // Every op of the catalog succeeded (so its gradient was checked) and failed somewhere.
    for op in UNARY
        .iter()
        .chain(&BINARY)
        .chain(&ATTRIBUTED)
        .chain(&REDUCE)
        .chain(&AXIS_OPS)
        .chain(&[
            "matmul",
            "reshape",
            "transpose",
            "broadcast_to",
            "concat",
            "cast",
            "softmax",
            "log_softmax",
            "sparse_softmax_cross_entropy",
        ])
        .chain(&indexing::OPS)
        .chain(&nn_conv::OPS)
        .chain(&nn_layers::OPS)
    {
        let t = h.tally.get(op).unwrap_or_else(|| panic!("{op} was never called"));
        assert!(t.ok > 0 && t.gradients > 0, "{op} never succeeded: {} ok, {} gradients", t.ok, t.gradients);
    }
    // The mask ops succeeded (their gradients checked to be None) and failed somewhere.
    for op in MASK_UNARY.iter().chain(&MASK_BINARY).chain(&["select", "any", "all"]) {
        let t = h.tally.get(op).unwrap_or_else(|| panic!("{op} was never called"));
        assert!(
            t.ok > 0 && t.err > 0 && t.gradients > 0,
            "{op}: {} ok, {} err, {} gradients",
            t.ok,
            t.err,
            t.gradients
        );
    }
    if rounds == DEFAULT_ROUNDS {
        assert!(h.calls >= MIN_CALLS, "only {} calls", h.calls);
    }
}

/// The panics and hangs the generator found, pinned one by one: empty tensors whose other
/// dimensions overflow any product, results too large for any allocation, accessor errors.
#[test]
fn regressions_found_by_the_generator() {
    let huge = (1usize << 61) + 1;
    let empty = |dims: &[usize]| Tensor::from_vec(Vec::<f32>::new(), dims).unwrap();
    let names = |r: Result<Tensor>, op: &str| {
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains(op) && msg.contains("float32"), "{msg}");
    };
    // Were endless loops over 2^61 empty lanes or rows.
    assert_eq!(empty(&[huge, 0, 3]).log_softmax(1).unwrap().dims(), &[huge, 0, 3]);
    assert_eq!(empty(&[usize::MAX, 0, 4]).softmax(0).unwrap().num_elements(), 0);
    assert_eq!(concat(&[empty(&[huge, 1, 0])], -2).unwrap().num_elements(), 0);
    // Were "attempt to multiply with overflow" panics.
    assert_eq!(empty(&[2, usize::MAX, 0]).max(&[], false).unwrap().num_elements(), 0);
    assert_eq!((empty(&[0, usize::MAX, 2]) - empty(&[0, 1, 2])).unwrap().num_elements(), 0);
    assert_eq!(empty(&[0, 4, 1 << 62]).relu().unwrap().num_elements(), 0);
    names(constant(1.0).broadcast_to([usize::MAX, 2]), "broadcast_to");
    names(constant([1.0, 2.0]).broadcast_to([1 << 40, 1 << 40, 2]), "broadcast_to");
    // The average pool's gradient over an empty input whose row (width × channels) alone
    // exceeds usize.
    let x = empty(&[0, 0, usize::MAX, 3]);
    let tape = GradientTape::new();
    tape.watch(&x);
    let y = tape.record(|| tapeflow::nn::avg_pool2d(&x, [2, 1], [3, 7], tapeflow::nn::Padding::Same)).unwrap();
    assert_eq!(tape.gradient(&y, &x).unwrap().unwrap().dims(), &[0, 0, usize::MAX, 3]);
    // A matrix of 2^64 − 1 rows in an empty batch.
    let product = empty(&[0, 1, usize::MAX]).matmul_transposed(constant([[1.0], [2.0], [3.0]]), true, true).unwrap();
    assert_eq!(product.dims(), &[0, usize::MAX, 3]);
    // moments of an empty input whose kept statistics no allocation can hold: its own Err
    // (it named its inner mean).
    let error = tapeflow::nn::moments(empty(&[4, usize::MAX, 4, 0]), &[-1, -2], true).unwrap_err().to_string();
    assert!(error.starts_with("moments") && error.contains("float32"), "{error}");
    // Results that no allocation can hold are an Err, not an abort.
    names(empty(&[1 << 62, 0]).sum(&[1], false), "sum");
    names(empty(&[1 << 62, 0]).matmul(empty(&[0, 2])), "matmul");
    // Tensor::zeros/ones are infallible by the API: a documented panic, and try_* variants.
    assert!(Tensor::try_zeros([usize::MAX, 2], DType::F32).unwrap_err().to_string().contains("zeros"));
    assert!(Tensor::try_ones([1 << 62, 4], DType::I32).unwrap_err().to_string().contains("ones"));
    assert!(std::panic::catch_unwind(|| Tensor::zeros([usize::MAX, 2], DType::F32)).is_err());
    assert!(Tensor::full([usize::MAX, 2], 0.0, DType::F32).is_err());
    // Accessor errors named `as_slice` instead of the accessor called.
    assert!(constant(1).to_scalar::<f32>().unwrap_err().to_string().starts_with("to_scalar"));
    assert!(constant([1]).to_vec::<f32>().unwrap_err().to_string().starts_with("to_vec"));
}
