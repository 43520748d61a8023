//! Capture of the tensor work a closure does, for `tapeflow::function` (`function/`).
//!
//! While a function traces on this thread, every kernel call of the tape crate goes through
//! one of the wrappers here ([`op`], [`op_fallible`], [`op_n`], [`op_owned`], [`op_maybe`], [`op_grads`]),
//! variable reads through [`read_variable`] and every change of state (assignments,
//! optimizer updates, random draws) through [`effect`] or [`stateful`]. Each wrapper runs
//! the work eagerly, as it would run untraced, and appends a [`Node`] to the thread's
//! [`Recorder`]: the op's name, where its inputs come from (an earlier node's output slot,
//! or a constant: a tensor the trace did not make, such as a captured tensor or a scalar
//! built on the host) and a boxed closure that repeats the call on new inputs. The program
//! replays these closures in recording order, so a replay runs the very kernels, with the
//! very arguments, that the eager run ran: the same bits.
//!
//! Wrappers nest (a coarse one, like the backward pass's sum of contributions, calls ops
//! that are wrapped too): only the outermost captures, work inside a node runs as plain
//! eager code ([`DEPTH`]). Untraced code pays one thread-local read per wrapper.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use smallvec::SmallVec;
use tapeflow_dtype::{Error, Result, TensorId};

use crate::context::IdMap;
use crate::runtime::Tensor;
use crate::variable::Variable;

/// A node's inputs at replay, moved out of their slots where this is their last use (so a
/// kernel may reuse the buffer) and cloned (O(1)) otherwise.
pub(crate) type Inputs = SmallVec<[Tensor; 4]>;
/// A node's outputs.
pub(crate) type Outputs = SmallVec<[Tensor; 2]>;
/// What a node runs: the captured call, on new inputs, pushing its results to the second
/// argument (a buffer of the replay, reused node after node).
pub(crate) enum Exec {
    /// Reads its inputs where they are (the replay hands it references into its value
    /// slots: no tensor is cloned or moved for the call; profiles of a replay of tiny ops
    /// were mostly such moves).
    Ref(RefCall),
    /// Takes its inputs by value: where this is an input's last use it arrives as the only
    /// handle to its buffer, which the call may reuse (the backward pass's in-place sums).
    Owned(OwnedCall),
}

/// A captured call reading its inputs in place.
pub(crate) type RefCall = Box<dyn Fn(&[&Tensor], &mut Outputs) -> Result<()> + Send + Sync>;
/// A captured call taking its inputs by value.
pub(crate) type OwnedCall = Box<dyn Fn(&mut Inputs, &mut Outputs) -> Result<()> + Send + Sync>;

impl Exec {
    /// Runs the call on owned inputs (while tracing, and in a stage run side by side).
    pub fn run_owned(&self, inputs: &mut Inputs, outputs: &mut Outputs) -> Result<()> {
        match self {
            Exec::Ref(f) => {
                let refs: SmallVec<[&Tensor; 4]> = inputs.iter().collect();
                f(&refs, outputs)
            }
            Exec::Owned(f) => f(inputs, outputs),
        }
    }
}

/// Where a node's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Src {
    /// The value slot an argument or an earlier node filled.
    Slot(u32),
    /// A constant of the program (a tensor the trace did not make).
    Const(u32),
    /// Argument `i` of the call (a program reads arguments in place: never moved, so
    /// parts of the program running side by side can share them).
    Arg(u32),
}

/// One captured call.
pub(crate) struct Node {
    /// The op, for messages and symbolic prints.
    pub name: &'static str,
    pub inputs: SmallVec<[Src; 4]>,
    /// The slots its outputs fill.
    pub outputs: SmallVec<[u32; 1]>,
    pub exec: Exec,
    /// Whether the kernel can fail on data that the signature does not settle (indices out
    /// of range, an integer division by zero): variable writes before it are undone when it
    /// fails at replay.
    pub fallible: bool,
    /// Variables the node writes.
    pub writes: SmallVec<[Variable; 1]>,
    /// A plain read of the variable with this handle (dropped from the program when
    /// nothing uses its value).
    pub read: Option<TensorId>,
    /// How long the call took when traced: what the replay's scheduler weighs (a node
    /// worth a thread of its own, or not).
    pub nanos: u64,
    /// The elements the call reads and writes: a gate on `nanos`, which a first call's cold
    /// caches can inflate for a call on scalars.
    pub elements: usize,
}

/// What a trace has captured so far.
pub(crate) struct Recorder {
    pub nodes: Vec<Node>,
    /// Where each tensor the trace knows lives.
    pub ids: IdMap<Src>,
    /// The op that filled each slot (arguments: `"argument"`).
    pub slot_names: Vec<&'static str>,
    pub consts: Vec<Tensor>,
    /// The slot of each argument, in order.
    pub args: Vec<u32>,
    /// Each variable written during the trace with its value before the first write: a
    /// trace that fails puts them back.
    pub before_write: Vec<(Variable, Tensor)>,
    /// Every variable the trace read or wrote, once.
    pub touched: Vec<Variable>,
}

impl Recorder {
    fn new(args: &[Tensor]) -> Self {
        let mut recorder = Recorder {
            nodes: Vec::new(),
            ids: IdMap::default(),
            slot_names: Vec::new(),
            consts: Vec::new(),
            args: Vec::with_capacity(args.len()),
            before_write: Vec::new(),
            touched: Vec::new(),
        };
        for arg in args {
            let slot = match recorder.ids.get(&arg.id()) {
                // The same tensor passed twice: one slot (the signature records the alias).
                Some(Src::Slot(slot)) => *slot,
                _ => recorder.new_slot(arg.id(), "argument"),
            };
            recorder.args.push(slot);
        }
        recorder
    }

    fn new_slot(&mut self, id: TensorId, name: &'static str) -> u32 {
        // 2^32 slots would need terabytes of nodes before this line could fail.
        let slot = u32::try_from(self.slot_names.len()).expect("a program holds fewer than 2^32 values");
        self.slot_names.push(name);
        self.ids.insert(id, Src::Slot(slot));
        slot
    }

    /// Where `t` comes from; a tensor the trace has not seen becomes a constant.
    pub fn source(&mut self, t: &Tensor) -> Src {
        if let Some(src) = self.ids.get(&t.id()) {
            return *src;
        }
        // As for slots: 2^32 constants cannot be held in memory first.
        let index = u32::try_from(self.consts.len()).expect("a program holds fewer than 2^32 constants");
        self.consts.push(t.clone());
        let src = Src::Const(index);
        self.ids.insert(t.id(), src);
        src
    }

    fn touch(&mut self, var: &Variable) {
        if !self.touched.iter().any(|v| v.handle_id() == var.handle_id()) {
            self.touched.push(var.clone());
        }
    }

    /// Notes the values of `writes` before their first write of the trace.
    fn before_writes(&mut self, writes: &[&Variable]) {
        for var in writes {
            self.touch(var);
            if !self.before_write.iter().any(|(v, _)| v.handle_id() == var.handle_id()) {
                self.before_write.push(((*var).clone(), var.current()));
            }
        }
    }

    fn push(&mut self, node: NodeParts<'_>, outputs: &[Tensor], nanos: u64) {
        let NodeParts { name, inputs, exec, fallible, writes, read } = node;
        let elements = inputs
            .iter()
            .map(|t| t.num_elements())
            .chain(outputs.iter().map(Tensor::num_elements))
            .fold(0usize, usize::saturating_add);
        let inputs: SmallVec<[Src; 4]> = inputs.iter().map(|t| self.source(t)).collect();
        if !inputs.is_empty()
            && inputs.iter().all(|s| matches!(s, Src::Const(_)))
            && writes.is_empty()
            && read.is_none()
        {
            // Constant folding: a pure call of constants gives the same tensors every
            // replay, so its outputs (already computed) are constants of the program.
            for t in outputs {
                self.source(t);
            }
            return;
        }
        let outputs = outputs.iter().map(|t| self.new_slot(t.id(), name)).collect();
        let writes = writes.iter().map(|v| (*v).clone()).collect();
        self.nodes.push(Node { name, inputs, outputs, exec, fallible, writes, read, nanos, elements });
    }

    /// Puts back every variable the trace wrote, as it was before (a failed trace changes
    /// nothing).
    pub fn restore(&self) {
        for (var, value) in self.before_write.iter().rev() {
            var.restore(value.clone());
        }
    }
}

/// A node as a wrapper hands it over.
struct NodeParts<'a> {
    name: &'static str,
    inputs: &'a [&'a Tensor],
    exec: Exec,
    fallible: bool,
    writes: &'a [&'a Variable],
    read: Option<TensorId>,
}

thread_local! {
    /// The trace recording on this thread.
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
    /// Whether [`RECORDER`] holds one (read on every wrapped call, without a borrow).
    static TRACING: Cell<bool> = const { Cell::new(false) };
    /// How many captured calls are running inside each other: work inside a node is the
    /// node's, not captured again.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether a function traces on this thread (at any depth): the backward pass and the
/// other places that hand work to rayon themselves stay on the calling thread, so that
/// every op is captured in order.
#[inline]
pub(crate) fn tracing() -> bool {
    TRACING.with(Cell::get)
}

/// Whether a wrapped call made now is captured (a trace records, and not inside a node).
#[inline]
pub(crate) fn capturing() -> bool {
    tracing() && DEPTH.with(Cell::get) == 0
}

/// Marks the calls made until it drops as inside a node.
struct Inside;

impl Inside {
    fn enter() -> Self {
        DEPTH.with(|d| d.set(d.get() + 1));
        Inside
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Runs `f` as if no trace recorded (a nested eager computation, `Function::verify`'s
/// eager run).
pub(crate) fn untraced<T>(f: impl FnOnce() -> T) -> T {
    let _inside = Inside::enter();
    f()
}

/// Runs `exec` on `inputs` and captures it: the eager half of every wrapper.
fn capture(node: NodeParts<'_>) -> Result<Outputs> {
    RECORDER.with(|r| {
        if let Some(recorder) = r.borrow_mut().as_mut() {
            recorder.before_writes(node.writes);
        }
    });
    let mut outputs = Outputs::new();
    let start = Instant::now();
    {
        let _inside = Inside::enter();
        let mut inputs: Inputs = node.inputs.iter().map(|t| (*t).clone()).collect();
        node.exec.run_owned(&mut inputs, &mut outputs)?;
    }
    push_node(node, &outputs, elapsed_nanos(start));
    Ok(outputs)
}

/// Appends a call whose `outputs` were computed (in `nanos`) to the thread's recorder.
fn push_node(node: NodeParts<'_>, outputs: &[Tensor], nanos: u64) {
    RECORDER.with(|r| {
        if let Some(recorder) = r.borrow_mut().as_mut() {
            recorder.push(node, outputs, nanos);
        }
    });
}

fn elapsed_nanos(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `f(inputs)`, captured while a function traces. Every tensor the call reads must be in
/// `inputs` (a tensor captured by the closure would be frozen); host parameters are moved
/// into it.
#[inline]
pub(crate) fn op<const N: usize, F>(name: &'static str, inputs: [&Tensor; N], f: F) -> Result<Tensor>
where
    F: Fn([&Tensor; N]) -> Result<Tensor> + Send + Sync + 'static,
{
    if !capturing() {
        return f(inputs);
    }
    captured_op(name, inputs, false, f)
}

/// [`op`] for a kernel that can fail on the values of its inputs (indices out of range,
/// integer division by zero), not only on their shapes and dtypes.
#[inline]
pub(crate) fn op_fallible<const N: usize, F>(name: &'static str, inputs: [&Tensor; N], f: F) -> Result<Tensor>
where
    F: Fn([&Tensor; N]) -> Result<Tensor> + Send + Sync + 'static,
{
    if !capturing() {
        return f(inputs);
    }
    captured_op(name, inputs, true, f)
}

/// The capturing half of [`op`] and [`op_fallible`] (out of line: untraced calls inline only
/// the check).
fn captured_op<const N: usize, F>(name: &'static str, inputs: [&Tensor; N], fallible: bool, f: F) -> Result<Tensor>
where
    F: Fn([&Tensor; N]) -> Result<Tensor> + Send + Sync + 'static,
{
    let exec = Exec::Ref(Box::new(move |ins: &[&Tensor], out: &mut Outputs| {
        out.push(f(std::array::from_fn(|i| ins[i]))?);
        Ok(())
    }));
    one(capture(NodeParts { name, inputs: &inputs, exec, fallible, writes: &[], read: None })?)
}

/// [`op`] over a list of inputs (concat, stack, sums of many terms).
#[inline]
pub(crate) fn op_n<F>(name: &'static str, inputs: &[Tensor], f: F) -> Result<Tensor>
where
    F: Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
{
    if !capturing() {
        return f(inputs);
    }
    let refs: SmallVec<[&Tensor; 4]> = inputs.iter().collect();
    let exec = Exec::Owned(Box::new(move |ins: &mut Inputs, out: &mut Outputs| {
        out.push(f(ins)?);
        Ok(())
    }));
    one(capture(NodeParts { name, inputs: &refs, exec, fallible: false, writes: &[], read: None })?)
}

/// [`op_n`] whose call takes its inputs by value: at replay, an input used for the last
/// time arrives as the only handle to its buffer, which the call may then reuse (the
/// backward pass's in-place sums).
#[inline]
pub(crate) fn op_owned<F>(name: &'static str, inputs: Inputs, f: F) -> Result<Tensor>
where
    F: Fn(Inputs) -> Result<Tensor> + Send + Sync + 'static,
{
    if !capturing() {
        return f(inputs);
    }
    let refs: SmallVec<[&Tensor; 4]> = inputs.iter().collect();
    let exec = Exec::Owned(Box::new(move |ins: &mut Inputs, out: &mut Outputs| {
        out.push(f(std::mem::take(ins))?);
        Ok(())
    }));
    one(capture(NodeParts { name, inputs: &refs, exec, fallible: false, writes: &[], read: None })?)
}

/// [`op_fallible`] for a kernel with two outputs (a loss and the probabilities it
/// computed on the way).
#[inline]
pub(crate) fn op_pair_fallible<const N: usize, F>(
    name: &'static str,
    inputs: [&Tensor; N],
    f: F,
) -> Result<(Tensor, Tensor)>
where
    F: Fn([&Tensor; N]) -> Result<(Tensor, Tensor)> + Send + Sync + 'static,
{
    if !capturing() {
        return f(inputs);
    }
    let exec = Exec::Ref(Box::new(move |ins: &[&Tensor], out: &mut Outputs| {
        let (a, b) = f(std::array::from_fn(|i| ins[i]))?;
        out.extend([a, b]);
        Ok(())
    }));
    let mut outputs = capture(NodeParts { name, inputs: &inputs, exec, fallible: true, writes: &[], read: None })?;
    match (outputs.pop(), outputs.pop()) {
        (Some(b), Some(a)) => Ok((a, b)),
        _ => Err(Error::InvalidArgument { op: "function", reason: format!("`{name}` gave fewer than two outputs") }),
    }
}

/// [`op`] for a fused kernel that may decline (`None`: the caller takes the composed
/// path, whose ops are captured themselves). Whether it declines depends on shapes and
/// dtypes only, so a replay takes the same path.
#[inline]
pub(crate) fn op_maybe<const N: usize, F>(name: &'static str, inputs: [&Tensor; N], f: F) -> Result<Option<Tensor>>
where
    F: Fn([&Tensor; N]) -> Result<Option<Tensor>> + Send + Sync + 'static,
{
    if !capturing() {
        return f(inputs);
    }
    let start = Instant::now();
    let Some(first) = untraced(|| f(inputs))? else { return Ok(None) };
    let nanos = elapsed_nanos(start);
    let exec = Exec::Ref(Box::new(move |ins: &[&Tensor], out: &mut Outputs| {
        out.push(f(std::array::from_fn(|i| ins[i]))?.ok_or_else(|| declined(name))?);
        Ok(())
    }));
    let node = NodeParts { name, inputs: &inputs, exec, fallible: false, writes: &[], read: None };
    push_node(node, std::slice::from_ref(&first), nanos);
    Ok(Some(first))
}

/// The gradients of a fused first-order rule: one per input, `None` where not needed.
pub(crate) type Grads = SmallVec<[Option<Tensor>; 2]>;

/// [`op_maybe`] for a fused rule that gives several inputs' gradients at once.
#[inline]
pub(crate) fn op_grads<const N: usize, F>(name: &'static str, inputs: [&Tensor; N], f: F) -> Result<Option<Grads>>
where
    F: Fn([&Tensor; N]) -> Result<Option<Grads>> + Send + Sync + 'static,
{
    if !capturing() {
        return f(inputs);
    }
    let start = Instant::now();
    let Some(grads) = untraced(|| f(inputs))? else { return Ok(None) };
    let nanos = elapsed_nanos(start);
    let present: SmallVec<[bool; 2]> = grads.iter().map(Option::is_some).collect();
    let exec = Exec::Ref(Box::new(move |ins: &[&Tensor], out: &mut Outputs| {
        let grads = f(std::array::from_fn(|i| ins[i]))?.ok_or_else(|| declined(name))?;
        if grads.iter().map(Option::is_some).ne(present.iter().copied()) {
            return Err(declined(name));
        }
        out.extend(grads.into_iter().flatten());
        Ok(())
    }));
    let outputs: Outputs = grads.iter().flatten().cloned().collect();
    push_node(NodeParts { name, inputs: &inputs, exec, fallible: false, writes: &[], read: None }, &outputs, nanos);
    Ok(Some(grads))
}

fn declined(name: &'static str) -> Error {
    Error::InvalidArgument {
        op: "function",
        reason: format!("the fused kernel `{name}` declined at replay the inputs it took when traced"),
    }
}

fn one(mut outputs: Outputs) -> Result<Tensor> {
    outputs
        .pop()
        .ok_or_else(|| Error::InvalidArgument { op: "function", reason: "a captured op gave no output".into() })
}

/// A change of state (`writes` are the variables it changes) that also reads `inputs`:
/// run now, and captured while a function traces.
pub(crate) fn effect<const N: usize, F>(
    name: &'static str,
    inputs: [&Tensor; N],
    writes: &[&Variable],
    f: F,
) -> Result<()>
where
    F: Fn([&Tensor; N]) -> Result<()> + Send + Sync + 'static,
{
    if !capturing() {
        return f(inputs);
    }
    let exec = Exec::Ref(Box::new(move |ins: &[&Tensor], _: &mut Outputs| f(std::array::from_fn(|i| ins[i]))));
    capture(NodeParts { name, inputs: &inputs, exec, fallible: false, writes, read: None }).map(drop)
}

/// [`effect`] over a list of inputs (an optimizer's gradients).
pub(crate) fn effect_n<F>(name: &'static str, inputs: &[&Tensor], writes: &[&Variable], f: F) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<()> + Send + Sync + 'static,
{
    if !capturing() {
        let owned: SmallVec<[Tensor; 4]> = inputs.iter().map(|t| (*t).clone()).collect();
        return f(&owned);
    }
    let exec = Exec::Owned(Box::new(move |ins: &mut Inputs, _: &mut Outputs| f(ins)));
    capture(NodeParts { name, inputs, exec, fallible: false, writes, read: None }).map(drop)
}

/// A change of state that also makes a tensor (a random draw advancing its generator).
pub(crate) fn stateful<F>(name: &'static str, writes: &[&Variable], f: F) -> Result<Tensor>
where
    F: Fn() -> Result<Tensor> + Send + Sync + 'static,
{
    if !capturing() {
        return f();
    }
    let exec = Exec::Ref(Box::new(move |_: &[&Tensor], out: &mut Outputs| {
        out.push(f()?);
        Ok(())
    }));
    one(capture(NodeParts { name, inputs: &[], exec, fallible: false, writes, read: None })?)
}

/// Notes a read of `var` whose value is `value` (the tensor handed to the caller): the
/// program reads the variable's current value at that point.
pub(crate) fn read_variable(var: &Variable, value: &Tensor) {
    if !capturing() {
        return;
    }
    let handle = var.clone();
    let exec = Exec::Ref(Box::new(move |_: &[&Tensor], out: &mut Outputs| {
        out.push(handle.current());
        Ok(())
    }));
    RECORDER.with(|r| {
        if let Some(recorder) = r.borrow_mut().as_mut() {
            recorder.touch(var);
            let node = NodeParts {
                name: "ReadVariableOp",
                inputs: &[],
                exec,
                fallible: false,
                writes: &[],
                read: Some(var.handle_id()),
            };
            recorder.push(node, std::slice::from_ref(value), 0);
        }
    });
}

/// The op that made `id` when it is a value of the program this thread traces (outside
/// any node): the answer to the value crate's symbolic hook.
fn symbolic(id: TensorId) -> Option<&'static str> {
    if !capturing() {
        return None;
    }
    RECORDER.with(|r| {
        let recorder = r.try_borrow().ok()?;
        let recorder = recorder.as_ref()?;
        match recorder.ids.get(&id)? {
            Src::Slot(slot) => recorder.slot_names.get(*slot as usize).copied(),
            Src::Const(_) | Src::Arg(_) => None,
        }
    })
}

/// A trace in progress on this thread; dropping it (also on a panic in the closure) ends
/// the trace and hands nothing over.
pub(crate) struct Tracing {
    previous_hook: Option<tapeflow_dtype::SymbolicHook>,
    ended: bool,
}

/// Starts tracing on this thread with `args` as the program's arguments.
pub(crate) fn begin(args: &[Tensor]) -> Tracing {
    RECORDER.with(|r| *r.borrow_mut() = Some(Recorder::new(args)));
    TRACING.with(|t| t.set(true));
    Tracing { previous_hook: tapeflow_dtype::set_symbolic_hook(Some(symbolic)), ended: false }
}

impl Tracing {
    /// Ends the trace and returns what it captured.
    pub fn end(mut self) -> Recorder {
        self.ended = true;
        // `begin` installed the recorder and only `finish` takes it: a function called
        // while another traces runs inline and never begins a trace of its own.
        self.finish().expect("a trace in progress holds its recorder")
    }

    fn finish(&mut self) -> Option<Recorder> {
        tapeflow_dtype::set_symbolic_hook(self.previous_hook.take());
        TRACING.with(|t| t.set(false));
        RECORDER.with(|r| r.borrow_mut().take())
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if !self.ended
            && let Some(recorder) = self.finish()
        {
            // A closure that panicked: what it wrote goes back.
            recorder.restore();
        }
    }
}
