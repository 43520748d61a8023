//! TensorFlow conformance: every case of `tests/data/tf_conformance/ops.json` and
//! `ops2.json` (TensorFlow 2.21.0 CPU results for op catalogs I and II), of `nn.json`
//! (`tapeflow::nn`), and of every `*.json` file in the directory named by the environment
//! variable `TAPEFLOW_CONFORMANCE_DIR` when it is set, run through the public API and
//! compared with TensorFlow's values.
//!
//! A case names an op of the catalog, its attributes and inputs, and TensorFlow's
//! `output`; most also carry `grads` (the gradient of `sum(output * upstream)` with respect
//! to each input, `null` where TensorFlow returns `None`) and `grads2` (the gradient of
//! `sum(grads[grad_of] * upstream2)` with respect to each input, taken through nested
//! tapes). See `tests/data/tf_conformance/README.md` for where the data comes from.
//!
//! Tolerances, |got − want| ≤ rel·|want| + abs:
//! * float32, elementwise ops (and shape ops, cast): rel 1e-5, abs 1e-6;
//! * float32, matmul, reductions, scans, einsum and the softmax family: rel 1e-4, abs 1e-6
//!   (the same absolute floor as elementwise ops: these ops' values are O(1), so 1e-6 still
//!   leaves several float32 ulps for a different summation order);
//! * a gradient that sums over broadcast dimensions (its input has fewer elements than the
//!   output) is a reduction, and gets the reduction tolerance whatever the op;
//! * float16: rel 1e-2, abs 1e-3; int32 and bool: exact.
//!
//! NaN must match NaN and ±inf must match exactly; shapes and dtypes must match exactly.
//! Unknown ops, attributes or case fields are failures, never skipped.
//!
//! Run with `cargo test --test conformance -- --nocapture` to see the per-file summary
//! lines when everything passes. `TAPEFLOW_CONFORMANCE_OPS=equal,less` runs only the cases
//! of the named ops (the summary lines say how many were skipped), for checking some ops
//! while others are still missing; without it every case runs and counts.

use std::cell::RefCell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tapeflow::nn;
use tapeflow::prelude::*;

use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------
// Case files
// ---------------------------------------------------------------------------------------

/// The fields a case may have; any other field is reported as a failure.
const CASE_FIELDS: &[&str] =
    &["op", "attrs", "inputs", "output", "upstream", "grads", "grad_of", "upstream2", "grads2", "note"];

/// A tensor as a case file writes it: dtype, shape and row-major values (as f64, which
/// holds every float32, float16 and int32 value exactly; bool as 0 and 1).
#[derive(Debug, Clone)]
struct TensorSpec {
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl TensorSpec {
    /// Reads `{"dtype": .., "shape": [..], "data": [..]}`; float data may hold the strings
    /// `"nan"`, `"inf"` and `"-inf"`, bool data are `true` and `false`.
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
            DType::Bool => Tensor::from_vec(self.data.iter().map(|&v| v != 0.0).collect::<Vec<_>>(), shape),
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
        "bool" => Ok(DType::Bool),
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

/// A JSON number, or one of the strings `"nan"`, `"inf"`, `"-inf"`.
fn json_float(value: &Value) -> Result<f64, String> {
    match value {
        Value::String(s) => match s.as_str() {
            "nan" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            _ => Err(format!("bad float {value}")),
        },
        _ => value.as_f64().ok_or_else(|| format!("expected a number, found {value}")),
    }
}

/// One element of a tensor's data, checked against the dtype.
fn json_element(value: &Value, dtype: DType) -> Result<f64, String> {
    let number = match (value, dtype) {
        (Value::Bool(b), DType::Bool) => return Ok(f64::from(u8::from(*b))),
        (_, DType::Bool) | (Value::Bool(_), _) => return Err(format!("bad {dtype} element {value}")),
        (Value::String(_), _) if dtype.is_float() => {
            json_float(value).map_err(|_| format!("bad float element {value}"))?
        }
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
/// An op applied to a case's inputs, in the case's order.
type RunFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

/// How many float32 rounding errors an op's result accumulates, which picks its tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Accuracy {
    /// One rounding per element (unary, binary, shape ops, cast).
    Elementwise,
    /// A sum per element (matmul, reductions, the softmax family).
    Accumulating,
}

/// A catalog op with its attributes parsed: how many inputs it takes, the tolerance its
/// values get, the family the report groups it in, and how it runs through the public API
/// (recorded on whatever tapes are active).
///
/// Adding an op to the harness is one arm in [`Op::parse`]: `Op::unary`, `Op::binary`,
/// `Op::reduce` or `Op::new(arity, family, closure)`, with `.accumulating()` for ops whose
/// values are sums.
struct Op {
    arity: usize,
    accuracy: Accuracy,
    family: &'static str,
    run: RunFn,
}

/// A case's attributes; every lookup marks the key as read, so keys no op reads are
/// reported instead of ignored.
struct Attrs<'a> {
    attrs: &'a Map<String, Value>,
    read: RefCell<Vec<&'static str>>,
}

// `float` and `float_or` serve the catalog II ops' scalar attributes (alpha, clip bounds,
// pad constants).
#[allow(dead_code)]
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

    /// A required integer attribute.
    fn int(&self, key: &'static str) -> Result<isize, String> {
        json_int(self.required(key)?).map_err(|e| format!("attr {key}: {e}"))
    }

    /// A required number attribute (float data may be `"nan"`, `"inf"`, `"-inf"`).
    fn float(&self, key: &'static str) -> Result<f64, String> {
        json_float(self.required(key)?).map_err(|e| format!("attr {key}: {e}"))
    }

    /// A number attribute, `default` if absent.
    fn float_or(&self, key: &'static str, default: f64) -> Result<f64, String> {
        if self.attrs.contains_key(key) { self.float(key) } else { Ok(default) }
    }

    /// A required string attribute.
    fn string(&self, key: &'static str) -> Result<String, String> {
        match self.required(key)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("attr {key} must be a string, not {other}")),
        }
    }

    /// A required dtype attribute (its TensorFlow name).
    fn dtype(&self, key: &'static str) -> Result<DType, String> {
        parse_dtype(&self.string(key)?)
    }

    /// An axis attribute: absent or `null` (every axis: `None`), an int or a list of ints.
    fn axes(&self, key: &'static str) -> Result<Option<Vec<isize>>, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(axis @ Value::Number(_)) => Ok(Some(vec![json_int(axis).map_err(|e| format!("attr {key}: {e}"))?])),
            Some(Value::Array(items)) => {
                items.iter().map(json_int).collect::<Result<_, _>>().map(Some).map_err(|e| format!("attr {key}: {e}"))
            }
            Some(other) => Err(format!("attr {key} must be null, an int or a list, not {other}")),
        }
    }

    /// A `[height, width]` attribute of a windowed op (`strides`, `dilations`): absent is
    /// `default`, an int `n` is `[n, n]`, a list is `[h, w]`.
    fn hw_or(&self, key: &'static str, default: usize) -> Result<[usize; 2], String> {
        match self.get(key) {
            None => Ok([default; 2]),
            Some(Value::Array(items)) => {
                let hw = items.iter().map(json_usize).collect::<Result<Vec<_>, _>>()?;
                <[usize; 2]>::try_from(hw).map_err(|hw| format!("attr {key} must have 2 values, not {hw:?}"))
            }
            Some(n) => json_usize(n).map(|n| [n, n]).map_err(|e| format!("attr {key}: {e}")),
        }
    }

    /// A required window attribute (`ksize`, `strides`): one int for both axes or
    /// `[height, width]`.
    fn pair(&self, key: &'static str) -> Result<[usize; 2], String> {
        self.required(key)?;
        self.hw_or(key, 1)
    }

    /// The `padding` attribute of a windowed op (`"SAME"` or `"VALID"`).
    fn padding(&self) -> Result<nn::Padding, String> {
        match self.string("padding")?.as_str() {
            "SAME" => Ok(nn::Padding::Same),
            "VALID" => Ok(nn::Padding::Valid),
            other => Err(format!("attr padding must be SAME or VALID, not {other:?}")),
        }
    }

    /// Fails if the attributes hold a key that was never read.
    fn check_all_read(&self) -> Result<(), String> {
        let read = self.read.borrow();
        let unknown: Vec<&str> = self.attrs.keys().map(String::as_str).filter(|k| !read.contains(k)).collect();
        if unknown.is_empty() { Ok(()) } else { Err(format!("unknown attr(s) {unknown:?} for this op")) }
    }
}

impl Op {
    /// An elementwise-accurate op of `arity` inputs.
    fn new(arity: usize, family: &'static str, run: impl Fn(&[Tensor]) -> Result<Tensor> + 'static) -> Self {
        Op { arity, accuracy: Accuracy::Elementwise, family, run: Box::new(run) }
    }

    /// A one-input op without attributes.
    fn unary(f: UnaryFn) -> Self {
        Op::new(1, "unary", move |t| f(&t[0]))
    }

    /// A two-input op without attributes.
    fn binary(f: BinaryFn) -> Self {
        Op::new(2, "binary", move |t| f(&t[0], &t[1]))
    }

    /// The same op with the reduction tolerance (its values are sums).
    fn accumulating(self) -> Self {
        Op { accuracy: Accuracy::Accumulating, ..self }
    }

    /// The same op grouped under another family in the report.
    fn family(self, family: &'static str) -> Self {
        Op { family, ..self }
    }

    /// The op `name` with its attributes; unknown ops and attributes are errors.
    fn parse(name: &str, attrs: &Map<String, Value>) -> Result<Self, String> {
        let attrs = Attrs::new(attrs);
        let op = match name {
            "neg" => Op::unary(TensorMath::neg),
            "abs" => Op::unary(TensorMath::abs),
            "exp" => Op::unary(TensorMath::exp),
            "log" => Op::unary(TensorMath::log),
            "sqrt" => Op::unary(TensorMath::sqrt),
            "rsqrt" => Op::unary(TensorMath::rsqrt),
            "square" => Op::unary(TensorMath::square),
            "tanh" => Op::unary(TensorMath::tanh),
            "sigmoid" => Op::unary(TensorMath::sigmoid),
            "relu" => Op::unary(TensorMath::relu),
            "sin" => Op::unary(TensorMath::sin),
            "cos" => Op::unary(TensorMath::cos),
            "softplus" => Op::unary(TensorMath::softplus),
            "log1p" => Op::unary(TensorMath::log1p),
            "expm1" => Op::unary(TensorMath::expm1),
            "reciprocal" => Op::unary(TensorMath::reciprocal),
            "add" => Op::binary(|a, b| a.add(b)),
            "sub" => Op::binary(|a, b| a.sub(b)),
            "mul" => Op::binary(|a, b| a.mul(b)),
            "div" => Op::binary(|a, b| a.div(b)),
            "pow" => Op::binary(|a, b| a.pow(b)),
            "maximum" => Op::binary(|a, b| a.maximum(b)),
            "minimum" => Op::binary(|a, b| a.minimum(b)),
            "sum" => Op::reduce(&attrs, TensorMath::sum, Some(TensorMath::sum_all))?,
            "mean" => Op::reduce(&attrs, TensorMath::mean, Some(TensorMath::mean_all))?,
            "max" => Op::reduce(&attrs, TensorMath::max, Some(TensorMath::max_all))?,
            // Catalog II: reductions and scans.
            "min" => Op::reduce(&attrs, TensorMath::min, Some(TensorMath::min_all))?,
            "prod" => Op::reduce(&attrs, TensorMath::prod, Some(TensorMath::prod_all))?,
            "logsumexp" => Op::reduce(&attrs, TensorMath::logsumexp, None)?,
            "variance" => Op::reduce(&attrs, TensorMath::variance, None)?,
            "std" => Op::reduce(&attrs, TensorMath::std, None)?,
            // tf.math.argmax / argmin default to axis 0.
            "argmax" | "argmin" => {
                let axis = attrs.int_or("axis", 0)?;
                let max = name == "argmax";
                Op::new(1, "reduce", move |t| if max { t[0].argmax(axis) } else { t[0].argmin(axis) })
            }
            // tf.math.cumsum / cumprod default to axis 0, inclusive, forward.
            "cumsum" | "cumprod" => {
                let axis = attrs.int_or("axis", 0)?;
                let exclusive = attrs.bool_or("exclusive", false)?;
                let reverse = attrs.bool_or("reverse", false)?;
                let prod = name == "cumprod";
                Op::new(1, "scan", move |t| {
                    if prod { t[0].cumprod(axis, exclusive, reverse) } else { t[0].cumsum(axis, exclusive, reverse) }
                })
                .accumulating()
            }
            "matmul" => {
                let transpose_a = attrs.bool_or("transpose_a", false)?;
                let transpose_b = attrs.bool_or("transpose_b", false)?;
                Op::new(2, "matmul", move |t| t[0].matmul_transposed(&t[1], transpose_a, transpose_b)).accumulating()
            }
            "reshape" => {
                let shape = attrs.ints("shape")?;
                Op::new(1, "shape", move |t| t[0].reshape(&shape))
            }
            "transpose" => {
                let perm = attrs.usizes("perm")?;
                Op::new(1, "shape", move |t| t[0].transpose(&perm))
            }
            "broadcast_to" => {
                let shape = attrs.usizes("shape")?;
                Op::new(1, "shape", move |t| t[0].broadcast_to(shape.as_slice()))
            }
            "concat" => {
                let axis = attrs.int("axis")?;
                Op::new(2, "shape", move |t| concat(&t[..2], axis))
            }
            // tf.nn.softmax and log_softmax default to the last axis.
            "softmax" => {
                let axis = attrs.int_or("axis", -1)?;
                Op::new(1, "nn", move |t| t[0].softmax(axis)).accumulating()
            }
            "log_softmax" => {
                let axis = attrs.int_or("axis", -1)?;
                Op::new(1, "nn", move |t| t[0].log_softmax(axis)).accumulating()
            }
            "sparse_softmax_cross_entropy" => {
                Op::binary(|logits, labels| logits.sparse_softmax_cross_entropy(labels)).family("nn").accumulating()
            }
            // tapeflow::nn: convolutions (NHWC, TensorFlow's padding).
            "conv2d" => {
                let (strides, padding, dilations) =
                    (attrs.hw_or("strides", 1)?, attrs.padding()?, attrs.hw_or("dilations", 1)?);
                Op::new(2, "nn", move |t| nn::conv2d(&t[0], &t[1], strides, padding, dilations)).accumulating()
            }
            "conv2d_transpose" => {
                let (strides, padding) = (attrs.hw_or("strides", 1)?, attrs.padding()?);
                let output_shape = attrs.usizes("output_shape")?;
                Op::new(2, "nn", move |t| nn::conv2d_transpose(&t[0], &t[1], output_shape.clone(), strides, padding))
                    .accumulating()
            }
            "depthwise_conv2d" => {
                let (strides, padding) = (attrs.hw_or("strides", 1)?, attrs.padding()?);
                Op::new(2, "nn", move |t| nn::depthwise_conv2d(&t[0], &t[1], strides, padding)).accumulating()
            }
            "cast" => {
                let dtype = attrs.dtype("dtype")?;
                Op::new(1, "shape", move |t| t[0].cast(dtype))
            }
            // Catalog II: masks (bool results, or bool operands).
            "equal" => Op::binary(|a, b| a.equal(b)).family("mask"),
            "not_equal" => Op::binary(|a, b| a.not_equal(b)).family("mask"),
            "less" => Op::binary(|a, b| a.less(b)).family("mask"),
            "less_equal" => Op::binary(|a, b| a.less_equal(b)).family("mask"),
            "greater" => Op::binary(|a, b| a.greater(b)).family("mask"),
            "greater_equal" => Op::binary(|a, b| a.greater_equal(b)).family("mask"),
            "logical_and" => Op::binary(|a, b| a.logical_and(b)).family("mask"),
            "logical_or" => Op::binary(|a, b| a.logical_or(b)).family("mask"),
            "logical_xor" => Op::binary(|a, b| a.logical_xor(b)).family("mask"),
            "logical_not" => Op::unary(TensorMath::logical_not).family("mask"),
            "is_nan" => Op::unary(TensorMath::is_nan).family("mask"),
            "is_finite" => Op::unary(TensorMath::is_finite).family("mask"),
            "is_inf" => Op::unary(TensorMath::is_inf).family("mask"),
            "select" => Op::new(3, "mask", |t| select(&t[0], &t[1], &t[2])),
            "any" => Op::reduce(&attrs, TensorMath::any, None)?.family("mask"),
            "all" => Op::reduce(&attrs, TensorMath::all, None)?.family("mask"),
            // Catalog II: elementwise math.
            "floor" => Op::unary(TensorMath::floor),
            "ceil" => Op::unary(TensorMath::ceil),
            "round" => Op::unary(TensorMath::round),
            "sign" => Op::unary(TensorMath::sign),
            "tan" => Op::unary(TensorMath::tan),
            "asin" => Op::unary(TensorMath::asin),
            "acos" => Op::unary(TensorMath::acos),
            "atan" => Op::unary(TensorMath::atan),
            "sinh" => Op::unary(TensorMath::sinh),
            "cosh" => Op::unary(TensorMath::cosh),
            "asinh" => Op::unary(TensorMath::asinh),
            "acosh" => Op::unary(TensorMath::acosh),
            "atanh" => Op::unary(TensorMath::atanh),
            "erf" => Op::unary(TensorMath::erf),
            "erfc" => Op::unary(TensorMath::erfc),
            "log_sigmoid" => Op::unary(TensorMath::log_sigmoid),
            "softsign" => Op::unary(TensorMath::softsign),
            "elu" => Op::unary(TensorMath::elu),
            "selu" => Op::unary(TensorMath::selu),
            "relu6" => Op::unary(TensorMath::relu6),
            "silu" => Op::unary(TensorMath::silu),
            "gelu" => {
                let approximate = attrs.bool_or("approximate", false)?;
                Op::new(1, "unary", move |t| t[0].gelu(approximate))
            }
            "leaky_relu" => {
                // tf.nn.leaky_relu's default slope.
                let alpha = attrs.float_or("alpha", 0.2)?;
                Op::new(1, "unary", move |t| t[0].leaky_relu(alpha))
            }
            "clip_by_value" => {
                let (min, max) = (attrs.float("min")?, attrs.float("max")?);
                Op::new(1, "unary", move |t| t[0].clip_by_value(min, max))
            }
            "squared_difference" => Op::binary(|a, b| a.squared_difference(b)),
            "floordiv" => Op::binary(|a, b| a.floordiv(b)),
            "floormod" => Op::binary(|a, b| a.floormod(b)),
            "atan2" => Op::binary(|a, b| a.atan2(b)),
            // Catalog II: shapes, slicing, gathers and scatters, einsum.
            "squeeze" => {
                // null: every size-1 axis (our empty list).
                let axes = attrs.axes("axis")?.unwrap_or_default();
                Op::new(1, "index", move |t| t[0].squeeze(&axes))
            }
            "expand_dims" => {
                let axis = attrs.int("axis")?;
                Op::new(1, "index", move |t| t[0].expand_dims(axis))
            }
            "stack" => {
                let axis = attrs.int_or("axis", 0)?;
                Op::new(2, "index", move |t| stack(&t[..2], axis))
            }
            "tile" => {
                let multiples = attrs.usizes("multiples")?;
                Op::new(1, "index", move |t| t[0].tile(&multiples))
            }
            "pad" => {
                let paddings = match attrs.required("paddings")? {
                    Value::Array(rows) => rows
                        .iter()
                        .map(|row| match row {
                            Value::Array(pair) if pair.len() == 2 => {
                                let side = |v: &Value| {
                                    json_int(v).and_then(|v| usize::try_from(v).map_err(|_| format!("negative {v}")))
                                };
                                Ok([side(&pair[0])?, side(&pair[1])?])
                            }
                            other => Err(format!("attr paddings: {other} is not a pair")),
                        })
                        .collect::<Result<Vec<[usize; 2]>, String>>()?,
                    other => return Err(format!("attr paddings must be a list, not {other}")),
                };
                let mode = match attrs.get("mode").map(|v| v.as_str()) {
                    None | Some(Some("CONSTANT")) => PadMode::Constant(attrs.float_or("constant_values", 0.0)?),
                    Some(Some("REFLECT")) => PadMode::Reflect,
                    Some(Some("SYMMETRIC")) => PadMode::Symmetric,
                    Some(other) => return Err(format!("attr mode: unknown pad mode {other:?}")),
                };
                Op::new(1, "index", move |t| t[0].pad(&paddings, mode))
            }
            "reverse" => {
                let axes = attrs.ints("axis")?;
                Op::new(1, "index", move |t| t[0].reverse(&axes))
            }
            "slice" => {
                let (begin, size) = (attrs.usizes("begin")?, attrs.ints("size")?);
                Op::new(1, "index", move |t| t[0].slice(&begin, &size))
            }
            "strided_slice" => {
                let (begin, end, strides) = (attrs.ints("begin")?, attrs.ints("end")?, attrs.ints("strides")?);
                Op::new(1, "index", move |t| t[0].strided_slice(&begin, &end, &strides))
            }
            "gather" => {
                let axis = attrs.int_or("axis", 0)?;
                Op::new(2, "index", move |t| t[0].gather(&t[1], axis))
            }
            "gather_nd" => Op::binary(|params, indices| params.gather_nd(indices)).family("index"),
            // Inputs (indices, updates), as tf.scatter_nd.
            "scatter_nd" => {
                let shape = attrs.usizes("shape")?;
                Op::new(2, "index", move |t| scatter_nd(&t[0], &t[1], shape.as_slice()))
            }
            "one_hot" => {
                let depth = usize::try_from(attrs.int("depth")?).map_err(|_| "attr depth: negative".to_string())?;
                Op::new(1, "index", move |t| one_hot(&t[0], depth))
            }
            "unsorted_segment_sum" => {
                let segments = usize::try_from(attrs.int("num_segments")?)
                    .map_err(|_| "attr num_segments: negative".to_string())?;
                Op::new(2, "index", move |t| unsorted_segment_sum(&t[0], &t[1], segments)).accumulating()
            }
            "einsum" => {
                let equation = attrs.string("equation")?;
                // One operand per comma-separated term left of the arrow.
                let arity = equation.split("->").next().map_or(1, |lhs| lhs.split(',').count());
                Op::new(arity, "einsum", move |t| einsum(&equation, t)).accumulating()
            }
            // tapeflow::nn: pooling, normalization, losses.
            "max_pool2d" | "avg_pool2d" => {
                let (ksize, strides, padding) = (attrs.pair("ksize")?, attrs.pair("strides")?, attrs.padding()?);
                let max = name == "max_pool2d";
                Op::new(1, "nn", move |t| {
                    if max {
                        nn::max_pool2d(&t[0], ksize, strides, padding)
                    } else {
                        nn::avg_pool2d(&t[0], ksize, strides, padding)
                    }
                })
                .accumulating()
            }
            "bias_add" => Op::binary(|value, bias| nn::bias_add(value, bias)).family("nn"),
            // Inputs x, mean, variance, offset, scale.
            "batch_normalization" => {
                let epsilon = attrs.float("variance_epsilon")?;
                Op::new(5, "nn", move |t| {
                    nn::batch_normalization(&t[0], &t[1], &t[2], Some(&t[3]), Some(&t[4]), epsilon)
                })
            }
            // Inputs logits, labels.
            "softmax_cross_entropy" => {
                Op::binary(|logits, labels| nn::softmax_cross_entropy(logits, labels)).family("nn").accumulating()
            }
            "sigmoid_cross_entropy" => {
                Op::binary(|logits, labels| nn::sigmoid_cross_entropy(logits, labels)).family("nn")
            }
            "l2_loss" => Op::unary(|t| nn::l2_loss(t)).family("nn").accumulating(),
            "l2_normalize" => {
                let axis = attrs.int("axis")?;
                Op::new(1, "nn", move |t| nn::l2_normalize(&t[0], axis)).accumulating()
            }
            _ => return Err(format!("unknown op {name:?}")),
        };
        attrs.check_all_read()?;
        Ok(op)
    }

    /// A reduction: `axis` null (all axes), an int or a list; `keepdims` defaults to false.
    /// `all` reduces every axis without keepdims where the API has such a function (else
    /// `some_axes` gets every axis).
    fn reduce(attrs: &Attrs<'_>, some_axes: ReduceFn, all: Option<UnaryFn>) -> Result<Self, String> {
        let axes = attrs.axes("axis")?;
        let keepdims = attrs.bool_or("keepdims", false)?;
        let op = Op::new(1, "reduce", move |t| {
            let x = &t[0];
            match (&axes, all) {
                (None, Some(all)) if !keepdims => all(x),
                (None, _) => {
                    // Every axis reduced (kept as 1 with keepdims).
                    let every_axis: Vec<isize> = (0..x.rank() as isize).collect();
                    some_axes(x, &every_axis, keepdims)
                }
                (Some(axes), _) => some_axes(x, axes, keepdims),
            }
        });
        Ok(op.accumulating())
    }

    /// Runs the op on a case's inputs.
    fn apply(&self, inputs: &[Tensor]) -> Result<Tensor> {
        (self.run)(inputs)
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
    /// The tolerance for values of `dtype` from an op of `accuracy` (int32 and bool: exact).
    fn new(dtype: DType, accuracy: Accuracy) -> Self {
        match (dtype, accuracy) {
            (DType::F32, Accuracy::Elementwise) => Tolerance { rel: 1e-5, abs: 1e-6 },
            (DType::F32, Accuracy::Accumulating) => Tolerance { rel: 1e-4, abs: 1e-6 },
            (DType::F16, _) => Tolerance { rel: 1e-2, abs: 1e-3 },
            (DType::I32 | DType::Bool, _) => Tolerance { rel: 0.0, abs: 0.0 },
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
    if input.data.len() < output.data.len() { Accuracy::Accumulating } else { op.accuracy }
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

    /// (family, dtype) → (worst |error|, worst |error| / allowed)
    type Worst = BTreeMap<(&'static str, String), (f64, f64)>;

    thread_local! {
        static FAMILY: RefCell<&'static str> = const { RefCell::new("-") };
        static WORST: RefCell<Worst> = const { RefCell::new(BTreeMap::new()) };
    }

    /// The family (`Op::family`) the next observations belong to.
    pub fn set_family(family: &'static str) {
        FAMILY.with(|f| *f.borrow_mut() = family);
    }

    pub fn observe(dtype: impl std::fmt::Display, error: f64, allowed: f64) {
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
    let op = match Op::parse(&case.op, &case.attrs) {
        Ok(op) => op,
        Err(reason) => return vec![format!("op/attrs: {reason}")],
    };
    report::set_family(op.family);
    if case.inputs.len() != op.arity {
        return vec![format!("inputs: the op takes {} inputs, the case has {}", op.arity, case.inputs.len())];
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
            if let Err(reason) = compare(&out, &case.output, op.accuracy) {
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
    failures.extend(check_compiled(&op, case, &inputs, upstream.as_ref()));
    failures
}

/// The case's whole computation — output, first-order gradients, second-order gradients
/// through nested tapes — as one closure, for [`check_compiled`].
fn everything(op: &Op, case: &Case, inputs: &[Tensor], upstream: Option<&Tensor>) -> Result<Vec<Tensor>> {
    let mut results = vec![op.apply(inputs)?];
    if case.grads.is_some() {
        let tape = GradientTape::new();
        let out = tape.record(|| {
            watch_float_inputs(&tape, inputs);
            op.apply(inputs)
        })?;
        results.extend(tape.gradients_with(&[&out], inputs, seeded(upstream))?.into_iter().flatten());
    }
    if let Some(second) = &case.second_order {
        let upstream2 = second.upstream2.to_tensor().map_err(|reason| Error::InvalidArgument { op: "test", reason })?;
        let outer = GradientTape::new();
        let first = outer.record(|| {
            watch_float_inputs(&outer, inputs);
            let inner = GradientTape::new();
            let out = inner.record(|| {
                watch_float_inputs(&inner, inputs);
                op.apply(inputs)
            })?;
            inner.gradient_with(&out, &inputs[second.grad_of], seeded(upstream))
        })?;
        if let Some(first) = first {
            results.push(first.clone());
            results.extend(outer.gradients_with(&[&first], inputs, seeded(Some(&upstream2)))?.into_iter().flatten());
        }
    }
    Ok(results)
}

/// The case inside `tapeflow::function`: traced on the case's inputs, then replayed on
/// them and on other values of the same signature (floats halved and shifted), each
/// replay bit for bit what the eager computation gives on those values (or the same `Err`
/// kind: both fail). Catches a value frozen into a program by an op that is not captured.
fn check_compiled(op: &Op, case: &Case, inputs: &[Tensor], upstream: Option<&Tensor>) -> Vec<String> {
    let shifted: Vec<Tensor> = inputs
        .iter()
        .map(|t| match t.dtype() {
            DType::F32 | DType::F16 => (t * 0.5).and_then(|h| h + 0.25).unwrap_or_else(|_| t.clone()),
            _ => t.clone(),
        })
        .collect();
    let mut compiled = tapeflow::function(|args: Vec<Tensor>| everything(op, case, &args, upstream));
    let mut failures = Vec::new();
    for (round, args) in [inputs, inputs, &shifted[..], inputs].into_iter().enumerate() {
        let eager = everything(op, case, args, upstream);
        let got = compiled.call(args.to_vec());
        match (eager, got) {
            (Ok(want), Ok(got)) => {
                let bits = |ts: &[Tensor]| -> Vec<(DType, Vec<usize>, Vec<u64>)> {
                    ts.iter()
                        .map(|t| (t.dtype(), t.dims().to_vec(), t.to_f64_vec().iter().map(|v| v.to_bits()).collect()))
                        .collect()
                };
                if bits(&want) != bits(&got) {
                    failures.push(format!("compiled: call {round} differs from the eager run"));
                }
            }
            (Err(_), Err(_)) => {}
            (Ok(_), Err(e)) => failures.push(format!("compiled: call {round} failed ({e}), eager did not")),
            (Err(e), Ok(_)) => failures.push(format!("compiled: call {round} succeeded, eager failed ({e})")),
        }
    }
    if failures.is_empty() && compiled.trace_count() > 1 {
        failures.push(format!("compiled: {} traces for one signature", compiled.trace_count()));
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

/// The ops named by `TAPEFLOW_CONFORMANCE_OPS` (comma-separated), when it is set: only their
/// cases run, so that work on some ops can be checked before every op of a file exists.
/// Unset (the normal run, and CI's), every case runs and counts.
struct OpFilter(Option<Vec<String>>);

impl OpFilter {
    fn from_env() -> Self {
        OpFilter(
            std::env::var("TAPEFLOW_CONFORMANCE_OPS")
                .ok()
                .map(|list| list.split(',').map(str::trim).filter(|op| !op.is_empty()).map(String::from).collect()),
        )
    }

    /// Whether cases of `op` run.
    fn admits(&self, op: &str) -> bool {
        self.0.as_ref().is_none_or(|ops| ops.iter().any(|o| o == op))
    }
}

/// What one file's run found.
struct FileRun {
    failures: Vec<Failure>,
    /// Cases run (all of them without a filter).
    run: usize,
}

/// Runs every case of one file that `filter` admits, prints its summary line and returns
/// its failures (a file that cannot be read counts as one failure).
fn run_file(path: &Path, filter: &OpFilter) -> FileRun {
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let unreadable = |reason: String| {
        println!("conformance {name}: cannot be read: {reason}");
        let failures = vec![Failure {
            file: name.clone(),
            index: 0,
            op: "-".into(),
            attrs: "-".into(),
            dtype: "-".into(),
            note: None,
            reasons: vec![reason],
        }];
        FileRun { failures, run: 1 }
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
    let mut run = 0;
    for (index, raw) in cases.iter().enumerate() {
        let field = |key: &str| raw.get(key).map_or_else(|| "-".to_string(), |v| v.to_string());
        let (op, attrs) = (field("op").trim_matches('"').to_string(), field("attrs"));
        if !filter.admits(&op) {
            continue;
        }
        run += 1;
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
    let skipped = cases.len() - run;
    let filtered =
        if skipped > 0 { format!(" ({skipped} skipped by TAPEFLOW_CONFORMANCE_OPS)") } else { String::new() };
    println!("conformance {name}: {} passed, {} failed of {run} cases{filtered}", run - failures.len(), failures.len());
    FileRun { failures, run }
}

/// The project's copies of the TensorFlow cases (catalog I, then catalog II), then every
/// `*.json` (sorted by name) in `$TAPEFLOW_CONFORMANCE_DIR` when it is set. An unreadable
/// directory is an error.
fn case_files() -> Result<Vec<PathBuf>, String> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tf_conformance");
    let mut files = vec![data.join("ops.json"), data.join("ops2.json"), data.join("nn.json")];
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
    let filter = OpFilter::from_env();
    let runs: Vec<FileRun> = files.iter().map(|path| run_file(path, &filter)).collect();
    if let Some(ops) = &filter.0 {
        assert!(runs.iter().any(|r| r.run > 0), "conformance: TAPEFLOW_CONFORMANCE_OPS={ops:?} matches no case");
    }
    let failures: Vec<Failure> = runs.into_iter().flat_map(|r| r.failures).collect();
    if std::env::var_os("TAPEFLOW_CONFORMANCE_REPORT").is_some() {
        report::print();
    }
    if !failures.is_empty() {
        let list = failures.iter().map(Failure::to_string).collect::<Vec<_>>().join("\n");
        panic!("{} conformance case(s) failed:\n{list}", failures.len());
    }
}
