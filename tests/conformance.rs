//! TensorFlow conformance: every case of `tests/data/tf_conformance/ops.json` (TensorFlow
//! 2.21.0 CPU results), and of every `*.json` file in the directory named by the
//! environment variable `TAPEFLOW_CONFORMANCE_DIR` when it is set, run through the public
//! API and compared with TensorFlow's values.
//!
//! A case names an op of the catalog, its attributes and inputs, and TensorFlow's
//! `output`; most also carry `grads` (the gradient of `sum(output * upstream)` with respect
//! to each input, `null` where TensorFlow returns `None`) and `grads2` (the gradient of
//! `sum(grads[grad_of] * upstream2)` with respect to each input, taken through nested
//! tapes). See `tests/data/tf_conformance/README.md` for where the data comes from.
//!
//! Tolerances, |got − want| ≤ rel·|want| + abs:
//! * float32, elementwise ops (and shape ops, cast): rel 1e-5, abs 1e-6;
//! * float32, matmul, reductions and the softmax family: rel 1e-4, abs 1e-6 (the same
//!   absolute floor as elementwise ops: these ops' values are O(1), so 1e-6 still leaves
//!   several float32 ulps for a different summation order);
//! * a gradient that sums over broadcast dimensions (its input has fewer elements than the
//!   output) is a reduction, and gets the reduction tolerance whatever the op;
//! * float16: rel 1e-2, abs 1e-3; int32: exact.
//!
//! NaN must match NaN and ±inf must match exactly; shapes and dtypes must match exactly.
//! Unknown ops, attributes or case fields are failures, never skipped.
//!
//! Run with `cargo test --test conformance -- --nocapture` to see the per-file summary
//! lines when everything passes.

use std::cell::RefCell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tapeflow::prelude::*;

use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------
// Case files
// ---------------------------------------------------------------------------------------

/// The fields a case may have; any other field is reported as a failure.
const CASE_FIELDS: &[&str] =
    &["op", "attrs", "inputs", "output", "upstream", "grads", "grad_of", "upstream2", "grads2", "note"];

/// A tensor as a case file writes it: dtype, shape and row-major values (as f64, which
/// holds every float32, float16 and int32 value exactly).
#[derive(Debug, Clone)]
struct TensorSpec {
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl TensorSpec {
    /// Reads `{"dtype": .., "shape": [..], "data": [..]}`; float data may hold the strings
    /// `"nan"`, `"inf"` and `"-inf"`.
    fn from_json(value: &Value) -> Result<Self, String> {
        let Some(members) = value.as_object() else {
            return Err(format!("a tensor must be an object, not {value}"));
        };
        if let Some(key) = members.keys().find(|k| !["dtype", "shape", "data"].contains(&k.as_str())) {
            return Err(format!("unknown tensor field {key:?}"));
        }
        let dtype = match value.get("dtype") {
            Some(Value::String(name)) => parse_dtype(name)?,
            other => return Err(format!("bad tensor dtype {other:?}")),
        };
        let shape = match value.get("shape") {
            Some(Value::Array(dims)) => dims.iter().map(json_usize).collect::<Result<Vec<_>, _>>()?,
            other => return Err(format!("bad tensor shape {other:?}")),
        };
        let data = match value.get("data") {
            Some(Value::Array(items)) => {
                items.iter().map(|item| json_element(item, dtype)).collect::<Result<Vec<_>, _>>()?
            }
            other => return Err(format!("bad tensor data {other:?}")),
        };
        let count: usize = shape.iter().product();
        if count != data.len() {
            return Err(format!("shape {shape:?} holds {count} elements but data has {}", data.len()));
        }
        Ok(TensorSpec { dtype, shape, data })
    }

    /// The tensor this spec describes.
    fn to_tensor(&self) -> Result<Tensor, String> {
        let shape = self.shape.clone();
        let tensor = match self.dtype {
            DType::F32 => Tensor::from_vec(self.data.iter().map(|&v| v as f32).collect::<Vec<_>>(), shape),
            DType::F16 => Tensor::from_vec(self.data.iter().map(|&v| f16::from_f64(v)).collect::<Vec<_>>(), shape),
            DType::I32 => Tensor::from_vec(self.data.iter().map(|&v| v as i32).collect::<Vec<_>>(), shape),
        };
        tensor.map_err(|e| format!("cannot build a {} tensor of shape {:?}: {e}", self.dtype, self.shape))
    }
}

/// A dtype from its TensorFlow name.
fn parse_dtype(name: &str) -> Result<DType, String> {
    match name {
        "float32" => Ok(DType::F32),
        "float16" => Ok(DType::F16),
        "int32" => Ok(DType::I32),
        _ => Err(format!("unknown dtype {name:?}")),
    }
}

/// A JSON integer (which may be negative).
fn json_int(value: &Value) -> Result<isize, String> {
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => Ok(n as isize),
        _ => Err(format!("expected an integer, found {value}")),
    }
}

/// A JSON non-negative integer.
fn json_usize(value: &Value) -> Result<usize, String> {
    usize::try_from(json_int(value)?).map_err(|_| format!("expected a non-negative integer, found {value}"))
}

/// One element of a tensor's data, checked against the dtype.
fn json_element(value: &Value, dtype: DType) -> Result<f64, String> {
    let number = match value {
        Value::String(s) if dtype.is_float() => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            _ => return Err(format!("bad float element {value}")),
        },
        _ => value.as_f64().ok_or_else(|| format!("bad {dtype} element {value}"))?,
    };
    if dtype == DType::I32 && (number.fract() != 0.0 || number < f64::from(i32::MIN) || number > f64::from(i32::MAX)) {
        return Err(format!("bad int32 element {value}"));
    }
    Ok(number)
}

/// An optional tensor field.
fn optional_tensor(case: &Value, key: &str) -> Result<Option<TensorSpec>, String> {
    match case.get(key) {
        None => Ok(None),
        Some(value) => TensorSpec::from_json(value).map(Some).map_err(|e| format!("{key}: {e}")),
    }
}

/// An optional list of gradients (`null` entries stay `None`).
fn optional_grads(case: &Value, key: &str) -> Result<Option<Vec<Option<TensorSpec>>>, String> {
    match case.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Null => Ok(None),
                _ => TensorSpec::from_json(item).map(Some).map_err(|e| format!("{key}[{i}]: {e}")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(format!("{key} must be an array, not {other}")),
    }
}

/// One conformance case.
#[derive(Debug)]
struct Case {
    op: String,
    attrs: Map<String, Value>,
    inputs: Vec<TensorSpec>,
    output: TensorSpec,
    upstream: Option<TensorSpec>,
    grads: Option<Vec<Option<TensorSpec>>>,
    second_order: Option<SecondOrder>,
}

/// The second-order part of a case.
#[derive(Debug)]
struct SecondOrder {
    grad_of: usize,
    upstream2: TensorSpec,
    grads2: Vec<Option<TensorSpec>>,
}

impl Case {
    /// Reads and validates one case.
    fn from_json(case: &Value) -> Result<Self, String> {
        let Some(members) = case.as_object() else {
            return Err("a case must be an object".into());
        };
        if let Some(key) = members.keys().find(|k| !CASE_FIELDS.contains(&k.as_str())) {
            return Err(format!("unknown case field {key:?}"));
        }
        let op = match case.get("op") {
            Some(Value::String(op)) => op.clone(),
            other => return Err(format!("bad op {other:?}")),
        };
        let attrs = match case.get("attrs") {
            None => Map::new(),
            Some(Value::Object(attrs)) => attrs.clone(),
            Some(other) => return Err(format!("attrs must be an object, not {other}")),
        };
        let inputs = match case.get("inputs") {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| TensorSpec::from_json(item).map_err(|e| format!("inputs[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
            other => return Err(format!("bad inputs {other:?}")),
        };
        let output = optional_tensor(case, "output")?.ok_or("missing output")?;
        let upstream = optional_tensor(case, "upstream")?;
        let grads = optional_grads(case, "grads")?;
        if grads.as_ref().is_some_and(|g| g.len() != inputs.len()) {
            return Err("grads must have one entry per input".into());
        }
        let second_order =
            match (case.get("grad_of"), optional_tensor(case, "upstream2")?, optional_grads(case, "grads2")?) {
                (None, None, None) => None,
                (Some(grad_of), Some(upstream2), Some(grads2)) => {
                    let grad_of = json_usize(grad_of).map_err(|e| format!("grad_of: {e}"))?;
                    if grad_of >= inputs.len() || grads2.len() != inputs.len() {
                        return Err("grad_of must name an input and grads2 have one entry per input".into());
                    }
                    Some(SecondOrder { grad_of, upstream2, grads2 })
                }
                _ => return Err("grad_of, upstream2 and grads2 go together".into()),
            };
        if second_order.is_some() && (grads.is_none() || upstream.is_none()) {
            return Err("grads2 needs grads and upstream".into());
        }
        Ok(Case { op, attrs, inputs, output, upstream, grads, second_order })
    }

    /// The dtype of the first input (the one a report names).
    fn dtype(&self) -> String {
        self.inputs.first().map_or_else(|| "-".into(), |t| t.dtype.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------------------

/// A unary op of the public API.
type UnaryFn = fn(&Tensor) -> Result<Tensor>;
/// A binary op of the public API.
type BinaryFn = fn(&Tensor, &Tensor) -> Result<Tensor>;
/// A reduction over some axes.
type ReduceFn = fn(&Tensor, &[isize], bool) -> Result<Tensor>;

/// How many float32 rounding errors an op's result accumulates, which picks its tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Accuracy {
    /// One rounding per element (unary, binary, shape ops, cast).
    Elementwise,
    /// A sum per element (matmul, reductions, the softmax family).
    Accumulating,
}

/// A catalog op with its attributes parsed.
enum Op {
    Unary(UnaryFn),
    Binary(BinaryFn),
    Reduce { some_axes: ReduceFn, all: UnaryFn, axes: Option<Vec<isize>>, keepdims: bool },
    Matmul { transpose_a: bool, transpose_b: bool },
    Reshape(Vec<isize>),
    Transpose(Vec<usize>),
    BroadcastTo(Vec<usize>),
    Concat(isize),
    Softmax(isize),
    LogSoftmax(isize),
    SparseSoftmaxCrossEntropy,
    Cast(DType),
}

/// A case's attributes; every lookup marks the key as read, so keys no op reads are
/// reported instead of ignored.
struct Attrs<'a> {
    attrs: &'a Map<String, Value>,
    read: RefCell<Vec<&'static str>>,
}

impl<'a> Attrs<'a> {
    /// Wraps a case's `attrs` object.
    fn new(attrs: &'a Map<String, Value>) -> Self {
        Attrs { attrs, read: RefCell::new(Vec::new()) }
    }

    /// The attribute `key`, if present (`null` counts as present).
    fn get(&self, key: &'static str) -> Option<&'a Value> {
        self.read.borrow_mut().push(key);
        self.attrs.get(key)
    }

    /// A required attribute.
    fn required(&self, key: &'static str) -> Result<&'a Value, String> {
        self.get(key).ok_or_else(|| format!("missing attr {key:?}"))
    }

    /// An integer attribute, `default` if absent.
    fn int_or(&self, key: &'static str, default: isize) -> Result<isize, String> {
        self.get(key).map_or(Ok(default), |v| json_int(v).map_err(|e| format!("attr {key}: {e}")))
    }

    /// A boolean attribute, `default` if absent.
    fn bool_or(&self, key: &'static str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("attr {key} must be a bool, not {other}")),
        }
    }

    /// A required list of integers.
    fn ints(&self, key: &'static str) -> Result<Vec<isize>, String> {
        match self.required(key)? {
            Value::Array(items) => {
                items.iter().map(json_int).collect::<Result<_, _>>().map_err(|e| format!("attr {key}: {e}"))
            }
            other => Err(format!("attr {key} must be a list, not {other}")),
        }
    }

    /// A required list of non-negative integers.
    fn usizes(&self, key: &'static str) -> Result<Vec<usize>, String> {
        self.ints(key)?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| format!("attr {key}: negative value {v}")))
            .collect()
    }

    /// Fails if the attributes hold a key that was never read.
    fn check_all_read(&self) -> Result<(), String> {
        let read = self.read.borrow();
        let unknown: Vec<&str> = self.attrs.keys().map(String::as_str).filter(|k| !read.contains(k)).collect();
        if unknown.is_empty() { Ok(()) } else { Err(format!("unknown attr(s) {unknown:?} for this op")) }
    }
}

impl Op {
    /// The op `name` with its attributes; unknown ops and attributes are errors.
    fn parse(name: &str, attrs: &Map<String, Value>) -> Result<Self, String> {
        let attrs = Attrs::new(attrs);
        let unary = |f: UnaryFn| Ok(Op::Unary(f));
        let binary = |f: BinaryFn| Ok(Op::Binary(f));
        let op = match name {
            "neg" => unary(TensorMath::neg),
            "abs" => unary(TensorMath::abs),
            "exp" => unary(TensorMath::exp),
            "log" => unary(TensorMath::log),
            "sqrt" => unary(TensorMath::sqrt),
            "rsqrt" => unary(TensorMath::rsqrt),
            "square" => unary(TensorMath::square),
            "tanh" => unary(TensorMath::tanh),
            "sigmoid" => unary(TensorMath::sigmoid),
            "relu" => unary(TensorMath::relu),
            "sin" => unary(TensorMath::sin),
            "cos" => unary(TensorMath::cos),
            "softplus" => unary(TensorMath::softplus),
            "log1p" => unary(TensorMath::log1p),
            "expm1" => unary(TensorMath::expm1),
            "reciprocal" => unary(TensorMath::reciprocal),
            "add" => binary(|a, b| a.add(b)),
            "sub" => binary(|a, b| a.sub(b)),
            "mul" => binary(|a, b| a.mul(b)),
            "div" => binary(|a, b| a.div(b)),
            "pow" => binary(|a, b| a.pow(b)),
            "maximum" => binary(|a, b| a.maximum(b)),
            "minimum" => binary(|a, b| a.minimum(b)),
            "sum" => Self::reduce(&attrs, TensorMath::sum, TensorMath::sum_all),
            "mean" => Self::reduce(&attrs, TensorMath::mean, TensorMath::mean_all),
            "max" => Self::reduce(&attrs, TensorMath::max, TensorMath::max_all),
            "matmul" => Ok(Op::Matmul {
                transpose_a: attrs.bool_or("transpose_a", false)?,
                transpose_b: attrs.bool_or("transpose_b", false)?,
            }),
            "reshape" => Ok(Op::Reshape(attrs.ints("shape")?)),
            "transpose" => Ok(Op::Transpose(attrs.usizes("perm")?)),
            "broadcast_to" => Ok(Op::BroadcastTo(attrs.usizes("shape")?)),
            "concat" => Ok(Op::Concat(json_int(attrs.required("axis")?).map_err(|e| format!("attr axis: {e}"))?)),
            // tf.nn.softmax and log_softmax default to the last axis.
            "softmax" => Ok(Op::Softmax(attrs.int_or("axis", -1)?)),
            "log_softmax" => Ok(Op::LogSoftmax(attrs.int_or("axis", -1)?)),
            "sparse_softmax_cross_entropy" => Ok(Op::SparseSoftmaxCrossEntropy),
            "cast" => match attrs.required("dtype")? {
                Value::String(name) => parse_dtype(name).map(Op::Cast),
                other => Err(format!("attr dtype must be a string, not {other}")),
            },
            _ => Err(format!("unknown op {name:?}")),
        }?;
        attrs.check_all_read()?;
        Ok(op)
    }

    /// A reduction: `axis` null (all axes), an int or a list; `keepdims` defaults to false.
    fn reduce(attrs: &Attrs<'_>, some_axes: ReduceFn, all: UnaryFn) -> Result<Self, String> {
        let axes = match attrs.get("axis") {
            None | Some(Value::Null) => None,
            Some(axis @ Value::Number(_)) => Some(vec![json_int(axis)?]),
            Some(Value::Array(items)) => Some(items.iter().map(json_int).collect::<Result<_, _>>()?),
            Some(other) => return Err(format!("attr axis must be null, an int or a list, not {other}")),
        };
        let keepdims = attrs.bool_or("keepdims", false)?;
        Ok(Op::Reduce { some_axes, all, axes, keepdims })
    }

    /// How many inputs the op takes.
    fn arity(&self) -> usize {
        match self {
            Op::Binary(_) | Op::Matmul { .. } | Op::Concat(_) | Op::SparseSoftmaxCrossEntropy => 2,
            _ => 1,
        }
    }

    /// Which tolerance the op's values get.
    fn accuracy(&self) -> Accuracy {
        match self {
            Op::Reduce { .. }
            | Op::Matmul { .. }
            | Op::Softmax(_)
            | Op::LogSoftmax(_)
            | Op::SparseSoftmaxCrossEntropy => Accuracy::Accumulating,
            _ => Accuracy::Elementwise,
        }
    }

    /// Runs the op through the public API (recorded on whatever tapes are active).
    fn apply(&self, inputs: &[Tensor]) -> Result<Tensor> {
        let x = &inputs[0];
        match self {
            Op::Unary(f) => f(x),
            Op::Binary(f) => f(x, &inputs[1]),
            Op::Reduce { all, axes: None, keepdims: false, .. } => all(x),
            Op::Reduce { some_axes, axes: None, keepdims: true, .. } => {
                // keepdims with every axis reduced: every dimension kept as 1.
                let every_axis: Vec<isize> = (0..x.rank() as isize).collect();
                some_axes(x, &every_axis, true)
            }
            Op::Reduce { some_axes, axes: Some(axes), keepdims, .. } => some_axes(x, axes, *keepdims),
            Op::Matmul { transpose_a, transpose_b } => x.matmul_transposed(&inputs[1], *transpose_a, *transpose_b),
            Op::Reshape(shape) => x.reshape(shape),
            Op::Transpose(perm) => x.transpose(perm),
            Op::BroadcastTo(shape) => x.broadcast_to(shape.as_slice()),
            Op::Concat(axis) => concat(&inputs[..2], *axis),
            Op::Softmax(axis) => x.softmax(*axis),
            Op::LogSoftmax(axis) => x.log_softmax(*axis),
            Op::SparseSoftmaxCrossEntropy => x.sparse_softmax_cross_entropy(&inputs[1]),
            Op::Cast(dtype) => x.cast(*dtype),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------

/// How closely a float value must match: |got − want| ≤ rel·|want| + abs.
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    rel: f64,
    abs: f64,
}

impl Tolerance {
    /// The tolerance for values of `dtype` from an op of `accuracy` (int32: exact).
    fn new(dtype: DType, accuracy: Accuracy) -> Self {
        match (dtype, accuracy) {
            (DType::F32, Accuracy::Elementwise) => Tolerance { rel: 1e-5, abs: 1e-6 },
            (DType::F32, Accuracy::Accumulating) => Tolerance { rel: 1e-4, abs: 1e-6 },
            (DType::F16, _) => Tolerance { rel: 1e-2, abs: 1e-3 },
            (DType::I32, _) => Tolerance { rel: 0.0, abs: 0.0 },
        }
    }

    /// The largest error allowed around `want`.
    fn allowed(self, want: f64) -> f64 {
        self.rel * want.abs() + self.abs
    }
}

/// Compares a result with the file's tensor: dtype and shape exactly, values within
/// `accuracy`'s tolerance. The error names the worst element.
fn compare(got: &Tensor, want: &TensorSpec, accuracy: Accuracy) -> Result<(), String> {
    if got.dtype() != want.dtype || got.dims() != want.shape.as_slice() {
        return Err(format!("want {} {:?}, got {} {:?}", want.dtype, want.shape, got.dtype(), got.dims()));
    }
    let tolerance = Tolerance::new(want.dtype, accuracy);
    let values = got.to_f64_vec();
    // (index, excess = error / allowed error), the largest excess over the failing elements
    let mut worst: Option<(usize, f64)> = None;
    let mut failing = 0;
    for (&g, &w) in values.iter().zip(&want.data) {
        if g.is_finite() && w.is_finite() {
            report::observe(want.dtype, (g - w).abs(), tolerance.allowed(w));
        }
    }
    for (i, (&g, &w)) in values.iter().zip(&want.data).enumerate() {
        let excess = if w.is_nan() || g.is_nan() || w.is_infinite() || g.is_infinite() {
            if (w.is_nan() && g.is_nan()) || g == w { 0.0 } else { f64::INFINITY }
        } else {
            let error = (g - w).abs();
            let allowed = tolerance.allowed(w);
            if error <= allowed {
                0.0
            } else if allowed == 0.0 {
                f64::INFINITY
            } else {
                error / allowed
            }
        };
        if excess > 0.0 {
            failing += 1;
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => {
            let (g, w) = (values[i], want.data[i]);
            let error = if g.is_finite() && w.is_finite() {
                format!(" (|err| {:.3e}, allowed {:.3e})", (g - w).abs(), tolerance.allowed(w))
            } else {
                String::new()
            };
            Err(format!(
                "{failing} of {} elements off; worst at {:?}: want {w}, got {g}{error}{}",
                values.len(),
                unravel(i, &want.shape),
                preview(&want.data, &values),
            ))
        }
    }
}

/// The first few wanted and obtained values, when the tensor is small enough to show.
fn preview(want: &[f64], got: &[f64]) -> String {
    if want.len() > 8 {
        return String::new();
    }
    let short = |v: &[f64]| v.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(", ");
    format!("; want [{}], got [{}]", short(want), short(got))
}

/// The multi-index of row-major flat index `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        *slot = flat % dim.max(1);
        flat /= dim.max(1);
    }
    index
}

/// The accuracy a gradient w.r.t. `input` gets: a gradient summed over broadcast
/// dimensions (the input has fewer elements than the op's output) is a reduction.
fn gradient_accuracy(op: &Op, input: &TensorSpec, output: &TensorSpec) -> Accuracy {
    if input.data.len() < output.data.len() { Accuracy::Accumulating } else { op.accuracy() }
}

/// Whether every element is zero.
fn all_zero(spec: &TensorSpec) -> bool {
    spec.data.iter().all(|&v| v == 0.0)
}

// ---------------------------------------------------------------------------------------
// Running cases
// ---------------------------------------------------------------------------------------

/// Watches every float input on `tape` (int32 inputs carry no gradient).
fn watch_float_inputs(tape: &GradientTape, inputs: &[Tensor]) {
    for input in inputs.iter().filter(|t| t.dtype().is_float()) {
        tape.watch(input);
    }
}

/// Gradient options seeding the target with `upstream` (none: TensorFlow's ones).
fn seeded(upstream: Option<&Tensor>) -> GradientOptions {
    match upstream {
        Some(seed) => GradientOptions::default().output_gradients(vec![seed.clone()]),
        None => GradientOptions::default(),
    }
}

/// Worst errors per op family and dtype, printed when `TAPEFLOW_CONFORMANCE_REPORT` is set
/// (the default output stays one line per file).
mod report {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use tapeflow::prelude::DType;

    /// (family, dtype) → (worst |error|, worst |error| / allowed)
    type Worst = BTreeMap<(&'static str, String), (f64, f64)>;

    thread_local! {
        static FAMILY: RefCell<&'static str> = const { RefCell::new("-") };
        static WORST: RefCell<Worst> = const { RefCell::new(BTreeMap::new()) };
    }

    /// The catalog family of an op name.
    pub fn family(op: &str) -> &'static str {
        match op {
            "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum" => "binary",
            "sum" | "mean" | "max" => "reduce",
            "matmul" => "matmul",
            "reshape" | "transpose" | "broadcast_to" | "concat" | "cast" => "shape",
            "softmax" | "log_softmax" | "sparse_softmax_cross_entropy" => "nn",
            _ => "unary",
        }
    }

    pub fn set_family(op: &str) {
        FAMILY.with(|f| *f.borrow_mut() = family(op));
    }

    pub fn observe(dtype: DType, error: f64, allowed: f64) {
        let family = FAMILY.with(|f| *f.borrow());
        WORST.with(|w| {
            let mut w = w.borrow_mut();
            let entry = w.entry((family, dtype.to_string())).or_insert((0.0, 0.0));
            entry.0 = entry.0.max(error);
            if allowed > 0.0 {
                entry.1 = entry.1.max(error / allowed);
            }
        });
    }

    pub fn print() {
        WORST.with(|w| {
            for ((family, dtype), (error, ratio)) in w.borrow().iter() {
                println!("  worst {family:7} {dtype:8}: |err| {error:.3e}, {:.1} % of the tolerance", 100.0 * ratio);
            }
        });
    }
}

/// Runs one case; returns one `field: reason` line per failing field.
fn run_case(case: &Case) -> Vec<String> {
    report::set_family(&case.op);
    let op = match Op::parse(&case.op, &case.attrs) {
        Ok(op) => op,
        Err(reason) => return vec![format!("op/attrs: {reason}")],
    };
    if case.inputs.len() != op.arity() {
        return vec![format!("inputs: the op takes {} inputs, the case has {}", op.arity(), case.inputs.len())];
    }
    let built = |spec: &TensorSpec| spec.to_tensor();
    let inputs = match case.inputs.iter().map(built).collect::<Result<Vec<_>, _>>() {
        Ok(inputs) => inputs,
        Err(reason) => return vec![format!("inputs: {reason}")],
    };
    let upstream = match case.upstream.as_ref().map(built).transpose() {
        Ok(upstream) => upstream,
        Err(reason) => return vec![format!("upstream: {reason}")],
    };

    let mut failures = Vec::new();
    match op.apply(&inputs) {
        Ok(out) => {
            if let Err(reason) = compare(&out, &case.output, op.accuracy()) {
                failures.push(format!("output: {reason}"));
            }
        }
        Err(e) => failures.push(format!("output: the op failed: {e}")),
    }
    // Checked even when every entry is null: then the library must return None for each
    // (for int32 inputs, and for a float input cast to int32).
    if let Some(grads) = &case.grads {
        failures.extend(check_first_order(&op, case, &inputs, upstream.as_ref(), grads));
    }
    if let Some(second) = &case.second_order {
        failures.extend(check_second_order(&op, case, &inputs, upstream.as_ref(), second));
    }
    failures
}

/// Compares one gradient list with the file's: `null` must be `None`, a tensor must be
/// `Some` with the same dtype, shape and values. With `zeros_may_be_none`, `None` also
/// stands for an all-zero tensor.
fn compare_grads(
    field: &str,
    op: &Op,
    case: &Case,
    got: &[Option<Tensor>],
    want: &[Option<TensorSpec>],
    zeros_may_be_none: bool,
) -> Vec<String> {
    if got.len() != want.len() {
        return vec![format!("{field}: want {} gradients, got {}", want.len(), got.len())];
    }
    let mut failures = Vec::new();
    for (i, (got, want)) in got.iter().zip(want).enumerate() {
        let verdict = match (got, want) {
            (None, None) => Ok(()),
            (Some(g), None) => Err(format!("want None, got Some({} {:?})", g.dtype(), g.dims())),
            (None, Some(w)) if zeros_may_be_none && all_zero(w) => Ok(()),
            (None, Some(w)) => Err(format!("want Some({} {:?}), got None", w.dtype, w.shape)),
            (Some(g), Some(w)) => compare(g, w, gradient_accuracy(op, &case.inputs[i], &case.output)),
        };
        if let Err(reason) = verdict {
            failures.push(format!("{field}[{i}]: {reason}"));
        }
    }
    failures
}

/// First order: the op recorded on a tape watching every float input, then the gradient
/// of the output seeded with `upstream` w.r.t. every input.
fn check_first_order(
    op: &Op,
    case: &Case,
    inputs: &[Tensor],
    upstream: Option<&Tensor>,
    want: &[Option<TensorSpec>],
) -> Vec<String> {
    let tape = GradientTape::new();
    let result = tape
        .record(|| {
            watch_float_inputs(&tape, inputs);
            op.apply(inputs)
        })
        .and_then(|out| tape.gradients_with(&[&out], inputs, seeded(upstream)));
    match result {
        Ok(got) => compare_grads("grads", op, case, &got, want, false),
        Err(e) => vec![format!("grads: the gradient failed: {e}")],
    }
}

/// Second order through nested tapes: an outer tape watching every float input records an
/// inner tape's gradient of the output (seeded with `upstream`) w.r.t. input `grad_of`;
/// then the outer tape's gradient of that, seeded with `upstream2`, w.r.t. every input.
///
/// The file writes all-zeros, never null, for float inputs the first-order gradient does
/// not depend on (e.g. `neg`, `add`, the `a` of `mul`), even where TensorFlow's tape itself
/// returns `None`: the generator evidently asked for zeros for unconnected gradients. So a
/// `None` from the library is accepted where the file has exactly zero everywhere (an
/// unconnected gradient is a zero one); anywhere else `None` fails, and a `null` in the
/// file still demands `None`.
fn check_second_order(
    op: &Op,
    case: &Case,
    inputs: &[Tensor],
    upstream: Option<&Tensor>,
    second: &SecondOrder,
) -> Vec<String> {
    let upstream2 = match second.upstream2.to_tensor() {
        Ok(t) => t,
        Err(reason) => return vec![format!("upstream2: {reason}")],
    };
    let outer = GradientTape::new();
    let first = outer.record(|| {
        watch_float_inputs(&outer, inputs);
        let inner = GradientTape::new();
        let out = inner.record(|| {
            watch_float_inputs(&inner, inputs);
            op.apply(inputs)
        })?;
        inner.gradient_with(&out, &inputs[second.grad_of], seeded(upstream))
    });
    let first = match first {
        Ok(Some(first)) => first,
        Ok(None) => return vec![format!("grads2: the inner gradient w.r.t. input {} is None", second.grad_of)],
        Err(e) => return vec![format!("grads2: the inner gradient failed: {e}")],
    };
    match outer.gradients_with(&[&first], inputs, seeded(Some(&upstream2))) {
        Ok(got) => compare_grads("grads2", op, case, &got, &second.grads2, true),
        Err(e) => vec![format!("grads2: the outer gradient failed: {e}")],
    }
}

/// Runs a case, turning a panic in the library into a failure.
fn run_case_guarded(case: &Case) -> Vec<String> {
    panic::catch_unwind(AssertUnwindSafe(|| run_case(case))).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into());
        vec![format!("panicked: {message}")]
    })
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

/// One failing case, as the final report lists it.
struct Failure {
    file: String,
    index: usize,
    op: String,
    attrs: String,
    dtype: String,
    note: Option<String>,
    reasons: Vec<String>,
}

impl fmt::Display for Failure {
    /// `file #index op attrs dtype (note)`, then one indented line per failing field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{} {} {} {}", self.file, self.index, self.op, self.attrs, self.dtype)?;
        if let Some(note) = &self.note {
            write!(f, " (note: {note})")?;
        }
        for reason in &self.reasons {
            write!(f, "\n    {reason}")?;
        }
        Ok(())
    }
}

/// Runs every case of one file, prints its summary line and returns its failures (a file
/// that cannot be read counts as one failure).
fn run_file(path: &Path) -> Vec<Failure> {
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let unreadable = |reason: String| {
        println!("conformance {name}: cannot be read: {reason}");
        vec![Failure {
            file: name.clone(),
            index: 0,
            op: "-".into(),
            attrs: "-".into(),
            dtype: "-".into(),
            note: None,
            reasons: vec![reason],
        }]
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return unreadable(format!("{}: {e}", path.display())),
    };
    let document = match serde_json::from_str::<Value>(&text) {
        Ok(document) => document,
        Err(e) => return unreadable(format!("JSON: {e}")),
    };
    let Some(Value::Array(cases)) = document.get("cases") else {
        return unreadable("no \"cases\" array".into());
    };

    let mut failures = Vec::new();
    for (index, raw) in cases.iter().enumerate() {
        let field = |key: &str| raw.get(key).map_or_else(|| "-".to_string(), |v| v.to_string());
        let (op, attrs) = (field("op").trim_matches('"').to_string(), field("attrs"));
        let note = match raw.get("note") {
            Some(Value::String(note)) => Some(note.clone()),
            _ => None,
        };
        let (dtype, reasons) = match Case::from_json(raw) {
            Ok(case) => (case.dtype(), run_case_guarded(&case)),
            Err(reason) => ("-".into(), vec![format!("case: {reason}")]),
        };
        if !reasons.is_empty() {
            failures.push(Failure { file: name.clone(), index, op, attrs, dtype, note, reasons });
        }
    }
    let total = cases.len();
    println!("conformance {name}: {} passed, {} failed of {total} cases", total - failures.len(), failures.len());
    failures
}

/// The project's copy of the TensorFlow cases, then every `*.json` (sorted by name) in
/// `$TAPEFLOW_CONFORMANCE_DIR` when it is set. An unreadable directory is an error.
fn case_files() -> Result<Vec<PathBuf>, String> {
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tf_conformance/ops.json")];
    if let Some(dir) = std::env::var_os("TAPEFLOW_CONFORMANCE_DIR") {
        let dir = PathBuf::from(dir);
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("TAPEFLOW_CONFORMANCE_DIR={}: {e}", dir.display()))?;
        let mut extra = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| format!("TAPEFLOW_CONFORMANCE_DIR={}: {e}", dir.display()))?.path();
            if path.is_file() && path.extension().is_some_and(|ext| ext == "json") {
                extra.push(path);
            }
        }
        extra.sort();
        files.extend(extra);
    }
    Ok(files)
}

/// Every case file: one summary line per file, then a panic listing every failing case.
#[test]
fn tensorflow_conformance() {
    let files = case_files().unwrap_or_else(|e| panic!("conformance: {e}"));
    let failures: Vec<Failure> = files.iter().flat_map(|path| run_file(path)).collect();
    if std::env::var_os("TAPEFLOW_CONFORMANCE_REPORT").is_some() {
        report::print();
    }
    if !failures.is_empty() {
        let list = failures.iter().map(Failure::to_string).collect::<Vec<_>>().join("\n");
        panic!("{} conformance case(s) failed:\n{list}", failures.len());
    }
}
