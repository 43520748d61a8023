//! `tapeflow::function`: TensorFlow's `tf.function`. A closure is traced once per input
//! signature and its tensor work replayed on later calls (`docs/function.md`).
//!
//! Tracing runs the closure eagerly while the capture layer (`trace.rs`) records every
//! kernel call, variable read and write, optimizer update and random draw it makes —
//! forward ops and the tapes' backward passes alike, since both are made of the same
//! wrapped calls. The result is a [`Program`](program::Program) of boxed calls over value
//! slots; a replay runs those calls in order, so it computes with the very kernels and
//! arguments of the eager run and gives its bits.

mod args;
mod program;
mod schedule;

use std::marker::PhantomData;

use smallvec::SmallVec;
use tapeflow_dtype::{DType, Error, Result};

use crate::runtime::Tensor;
use crate::trace;
use crate::variable::Variable;

use args::Signature;
pub use args::{FunctionArgs, FunctionOutput};
use program::Program;

/// How many programs (input signatures) a function keeps by default; the oldest is dropped
/// for a new one past that.
const DEFAULT_MAX_PROGRAMS: usize = 8;

/// A compiled step: `tapeflow::function(closure)`, TensorFlow's `tf.function`.
///
/// The first call with an input signature (the arguments' dtypes and shapes) traces: the
/// closure runs eagerly, its results are returned and its tensor work is captured as a
/// program. Later calls with that signature replay the program without running the
/// closure, so Rust code in the closure (host values, side effects) runs when tracing only,
/// as a `tf.function`'s Python does. State that must change per call lives in variables:
/// optimizers and [`random::Generator`](crate::random::Generator) keep theirs there.
///
/// Calls made while a tape or a forward accumulator records on the thread, or from inside
/// another function's trace, run the closure eagerly (the outer tape or trace then sees its
/// ops, as TensorFlow inlines a function into the graph around it).
pub struct Function<F, A, O> {
    closure: F,
    programs: Vec<(Signature, Program)>,
    max_programs: usize,
    run_eagerly: bool,
    verify: bool,
    _types: PhantomData<fn(A) -> O>,
}

/// Wraps `closure` as a compiled function (`@tf.function`).
pub fn function<F, A, O>(closure: F) -> Function<F, A, O>
where
    F: FnMut(A) -> Result<O>,
    A: FunctionArgs,
    O: FunctionOutput,
{
    Function {
        closure,
        programs: Vec::new(),
        max_programs: DEFAULT_MAX_PROGRAMS,
        run_eagerly: false,
        verify: false,
        _types: PhantomData,
    }
}

/// The argument tensors of one call (O(1) clones; no heap for up to eight).
type ArgTensors = SmallVec<[Tensor; 8]>;

fn arg_tensors<A: FunctionArgs>(args: &A) -> ArgTensors {
    let mut tensors = ArgTensors::new();
    args.for_each_tensor(&mut |t| tensors.push(t.clone()));
    tensors
}

impl<F, A, O> Function<F, A, O>
where
    F: FnMut(A) -> Result<O>,
    A: FunctionArgs,
    O: FunctionOutput,
{
    /// Calls the function: replays the program of the arguments' signature, or traces one.
    /// A call that returns `Err` changes no variable.
    pub fn call(&mut self, args: A) -> Result<O> {
        if self.run_eagerly || trace::tracing() || !crate::context::nothing_records() {
            return (self.closure)(args);
        }
        let tensors = arg_tensors(&args);
        let refs: SmallVec<[&Tensor; 8]> = tensors.iter().collect();
        let Some(k) = self.programs.iter().position(|(sig, _)| sig.matches(&refs)) else {
            return self.trace(args, &refs);
        };
        if self.verify {
            return self.verified(k, args, &refs);
        }
        let program = &mut self.programs[k].1;
        program.run(&refs)?;
        O::from_tensors(&mut program.out.drain(..))
    }

    /// The number of programs the function holds (one per input signature traced; a trace
    /// that failed keeps none).
    pub fn trace_count(&self) -> usize {
        self.programs.len()
    }

    /// The number of captured calls in each program, in the order traced (for tests and
    /// benchmarks: what a replay runs).
    pub fn program_sizes(&self) -> Vec<usize> {
        self.programs.iter().map(|(_, p)| p.len()).collect()
    }

    /// Each program as text, one captured call per line (its op, inputs, outputs and the
    /// time it took when traced; calls the replay runs side by side marked `‖`): what a
    /// replay runs, for debugging (TF: `get_concrete_function().graph`).
    pub fn describe(&self) -> String {
        self.programs
            .iter()
            .enumerate()
            .map(|(k, (sig, p))| format!("program {k} ({sig:?}):\n{}", p.describe()))
            .collect()
    }

    /// `tf.config.run_functions_eagerly(true)` for this function: every call runs the
    /// closure eagerly (nothing is traced or replayed).
    pub fn run_eagerly(mut self, eagerly: bool) -> Self {
        self.run_eagerly = eagerly;
        self
    }

    /// Every replay also runs the closure eagerly from the same state and returns an `Err`
    /// naming the first result or variable whose bits differ (a host value frozen into the
    /// program shows up at once). The eager run's results and state are kept.
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// How many programs (input signatures) to keep; the oldest is dropped past that.
    pub fn max_traces(mut self, max: usize) -> Self {
        self.max_programs = max.max(1);
        self.programs.truncate(self.max_programs);
        self
    }

    fn trace(&mut self, args: A, refs: &[&Tensor]) -> Result<O> {
        let signature = Signature::of(refs);
        if log::log_enabled!(log::Level::Debug) {
            let why = match self.programs.last() {
                None => "first call".to_string(),
                Some((sig, _)) => format!("new input signature: {}", sig.difference(refs)),
            };
            log::debug!("function: tracing ({why}); {} program(s) held", self.programs.len());
        }
        let owned: Vec<Tensor> = refs.iter().map(|t| (*t).clone()).collect();
        let tracing = trace::begin(&owned);
        let result = (self.closure)(args);
        let recorder = tracing.end();
        match result {
            Err(e) => {
                recorder.restore();
                Err(e)
            }
            Ok(out) => {
                let program = Program::new(recorder, &out.tensors());
                if self.programs.len() >= self.max_programs {
                    log::debug!("function: {} programs held, the oldest is dropped", self.programs.len());
                    self.programs.remove(0);
                }
                self.programs.push((signature, program));
                Ok(out)
            }
        }
    }

    /// A replay checked against an eager run from the same state.
    fn verified(&mut self, k: usize, args: A, refs: &[&Tensor]) -> Result<O> {
        let program = &mut self.programs[k].1;
        let vars: Vec<Variable> = program.touched.clone();
        let before: Vec<Tensor> = vars.iter().map(Variable::current).collect();
        let replayed = program.run(refs).map(|()| program.out.drain(..).collect::<Vec<Tensor>>());
        let replayed_state: Vec<Tensor> = vars.iter().map(Variable::current).collect();
        for (var, value) in vars.iter().zip(&before) {
            var.restore(value.clone());
        }
        let eager = (self.closure)(args);
        let verdict = match (&replayed, &eager) {
            (Err(_), Err(_)) => Ok(()),
            (Ok(_), Err(e)) => Err(format!("the eager run failed ({e}) and the replay did not")),
            (Err(e), Ok(_)) => Err(format!("the replay failed ({e}) and the eager run did not")),
            (Ok(r), Ok(out)) => {
                compare("result", r, &out.tensors()).and_then(|()| compare_vars(&vars, &replayed_state))
            }
        };
        match verdict {
            Ok(()) => eager,
            Err(reason) => {
                for (var, value) in vars.iter().zip(before) {
                    var.restore(value);
                }
                Err(Error::InvalidArgument { op: "function", reason: format!("verify: {reason}") })
            }
        }
    }
}

/// The first difference in bits between `replayed` and `eager`, named by `what` and index.
fn compare(what: &str, replayed: &[Tensor], eager: &[Tensor]) -> std::result::Result<(), String> {
    if replayed.len() != eager.len() {
        return Err(format!("{} {what}s replayed, {} eager", replayed.len(), eager.len()));
    }
    for (i, (r, e)) in replayed.iter().zip(eager).enumerate() {
        if let Some(detail) = bit_difference(r, e) {
            return Err(format!("{what} {i} differs from the eager run: {detail}"));
        }
    }
    Ok(())
}

fn compare_vars(vars: &[Variable], replayed: &[Tensor]) -> std::result::Result<(), String> {
    for (var, r) in vars.iter().zip(replayed) {
        if let Some(detail) = bit_difference(r, &var.current()) {
            return Err(format!("variable '{}' differs from the eager run: {detail}", var.name()));
        }
    }
    Ok(())
}

/// Where two tensors differ in dtype, shape or bits (`None`: identical).
fn bit_difference(a: &Tensor, b: &Tensor) -> Option<String> {
    if a.dtype() != b.dtype() || a.shape() != b.shape() {
        return Some(format!("{} {} against {} {}", a.shape(), a.dtype(), b.shape(), b.dtype()));
    }
    fn first<T: tapeflow_dtype::Element + Copy>(a: &Tensor, b: &Tensor, bits: impl Fn(T) -> u64) -> Option<usize> {
        let (a, b) = (a.as_slice::<T>().ok()?, b.as_slice::<T>().ok()?);
        a.iter().zip(b).position(|(x, y)| bits(*x) != bits(*y))
    }
    let at = match a.dtype() {
        DType::F32 => first::<f32>(a, b, |x| u64::from(x.to_bits())),
        DType::F16 => first::<half::f16>(a, b, |x| u64::from(x.to_bits())),
        DType::I32 => first::<i32>(a, b, |x| x as u32 as u64),
        DType::Bool => first::<bool>(a, b, u64::from),
    }?;
    let (x, y) = (a.to_f64_vec()[at], b.to_f64_vec()[at]);
    Some(format!("element {at} is {x:e} replayed, {y:e} eager ({} {})", a.shape(), a.dtype()))
}
