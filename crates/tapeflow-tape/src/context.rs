//! The thread's active tapes and the one function every op calls to record itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use smallvec::SmallVec;
use tapeflow_dtype::{DType, Result, Shape, TensorId};
use tapeflow_kernels::{BinaryOp, ReduceOp, UnaryOp};

use crate::custom::AccessLog;
use crate::forward::{AccCore, Tangent};
use crate::ops::{binary, matmul, reduce, shape, unary};
use crate::runtime::Tensor;
use crate::variable::Variable;

/// Hashes a tensor id (a counter) with one multiply: ids need no DoS-resistant hashing, and
/// the tape's sets and maps sit on every recorded op's path.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by tensor id.
pub(crate) type IdMap<V> = HashMap<TensorId, V, BuildHasherDefault<IdHasher>>;

/// The gradients a backward rule returns, one per input (`None` where not needed or not
/// defined).
pub(crate) type InputGrads = SmallVec<[Option<Tensor>; 2]>;

/// A backward rule as a closure, for the ops recorded less often than the elementwise ones:
/// given the gradient of the op's output and which inputs need a gradient, the gradients of
/// its inputs. Written with differentiable ops, so it records on whatever tapes are active.
pub(crate) type CustomRule = Arc<dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// A [`CustomRule`] that also has a batched form, chosen by its last argument: when it is
/// true, `g` carries a leading seed axis (`[R] ++ output shape`, one seed per jacobian row)
/// and the gradients carry it too (`[R] ++ input shape`). One closure for both forms keeps
/// recording at one allocation; most rules differ only by an axis shifted by one.
pub(crate) type BatchableRule = Arc<dyn Fn(&Tensor, &[bool], bool) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// How to go back through one recorded op. The elementwise ops, which dominate scalar code,
/// are plain values holding their saved tensors, so recording them allocates nothing.
#[derive(Clone)]
pub(crate) enum Rule {
    /// A variable read: the gradient passes through.
    Identity,
    /// `y = op(x)`; for ops whose derivative uses y alone, `x` holds y as well (see
    /// `ops::unary::unary`).
    Unary { op: UnaryOp, x: Tensor, y: Tensor },
    /// `out = op(a, b)`; `out` is kept for pow only, whose gradient reads it (boxed: the
    /// rule of every other binary op then stays two tensors large, and a rule is moved
    /// several times per recorded op).
    Binary { op: BinaryOp, a: Tensor, b: Tensor, out: Option<Box<Tensor>> },
    /// `a + b` or (`sub`) `a - b`, of operands of shapes `a` and `b`.
    AddSub { sub: bool, a: Shape, b: Shape },
    /// `op(a) · op(b)`.
    Matmul { a: Tensor, b: Tensor, transpose_a: bool, transpose_b: bool },
    /// `y = op(x)` over the (resolved) `axes`.
    Reduce { op: ReduceOp, x: Tensor, y: Tensor, axes: SmallVec<[usize; 4]> },
    /// A reshape from `shape`: the gradient is reshaped back.
    Reshape { shape: Shape },
    /// `broadcast_to` from `shape`.
    BroadcastTo { shape: Shape },
    /// A transpose, whose inverse permutation is `inverse`.
    Transpose { inverse: SmallVec<[usize; 4]> },
    /// A cast from the float dtype `from`.
    Cast { from: DType },
    /// Any other op, without a batched form (a vectorized jacobian through it falls back
    /// to one backward pass per row).
    Custom(CustomRule),
    /// Any other op, with a batched form.
    Batchable(BatchableRule),
}

impl Rule {
    /// The gradients of the op's inputs given `g`, the gradient of its output.
    pub fn apply(&self, g: &Tensor, needs: &[bool]) -> Result<InputGrads> {
        match self {
            Rule::Identity => Ok(smallvec::smallvec![Some(g.clone())]),
            Rule::Unary { op, x, y } => Ok(smallvec::smallvec![Some(unary::derivative(*op, x, y, g)?)]),
            Rule::Binary { op, a, b, out } => binary::derivatives(*op, a, b, out.as_deref(), g, needs),
            Rule::AddSub { sub, a, b } => binary::add_sub_derivatives(*sub, a, b, g, needs),
            Rule::Matmul { a, b, transpose_a, transpose_b } => {
                matmul::derivatives(a, b, *transpose_a, *transpose_b, g, needs)
            }
            Rule::Reduce { op, x, y, axes } => Ok(smallvec::smallvec![Some(reduce::derivative(*op, x, y, axes, g)?)]),
            Rule::Reshape { shape } => Ok(smallvec::smallvec![Some(shape::reshape(g, &shape::signed(shape))?)]),
            Rule::BroadcastTo { shape } => Ok(smallvec::smallvec![Some(binary::unbroadcast(g, shape)?)]),
            Rule::Transpose { inverse } => Ok(smallvec::smallvec![Some(shape::transpose(g, inverse)?)]),
            Rule::Cast { from } => Ok(smallvec::smallvec![Some(shape::cast(g, *from)?)]),
            Rule::Custom(rule) => rule(g, needs).map(SmallVec::from_vec),
            Rule::Batchable(rule) => rule(g, needs, false).map(SmallVec::from_vec),
        }
    }

    /// [`apply`](Self::apply) with `g` of shape `[R] ++ output shape` (R seeds stacked on a
    /// leading axis, the vectorized jacobian's one pass); gradients have shape
    /// `[R] ++ input shape`. `None` when the op has no batched form.
    pub fn apply_batched(&self, g: &Tensor, needs: &[bool]) -> Result<Option<InputGrads>> {
        let one = |grad: Result<Tensor>| grad.map(|t| Some(smallvec::smallvec![Some(t)]));
        match self {
            Rule::Identity | Rule::Cast { .. } => self.apply(g, needs).map(Some),
            Rule::Unary { op, x, y } => one(unary::batched_derivative(*op, x, y, g)),
            Rule::Binary { op, a, b, out } => {
                binary::batched_derivatives(*op, a, b, out.as_deref(), g, needs).map(Some)
            }
            Rule::AddSub { sub, a, b } => binary::batched_add_sub_derivatives(*sub, a, b, g, needs).map(Some),
            Rule::Matmul { a, b, transpose_a, transpose_b } => {
                matmul::batched_derivatives(a, b, *transpose_a, *transpose_b, g, needs).map(Some)
            }
            Rule::Reduce { op, x, y, axes } => one(reduce::batched_derivative(*op, x, y, axes, g)),
            Rule::Reshape { shape } => one(shape::batched_reshape_back(g, shape)),
            Rule::BroadcastTo { shape } => one(binary::batched_unbroadcast(g, shape)),
            Rule::Transpose { inverse } => one(shape::batched_transpose_back(g, inverse)),
            Rule::Custom(_) => Ok(None),
            Rule::Batchable(rule) => rule(g, needs, true).map(|grads| Some(SmallVec::from_vec(grads))),
        }
    }

    /// The op's name where the rule has no batched form (for the jacobian's fallback log).
    pub fn without_batched_form(&self) -> Option<&'static str> {
        match self {
            Rule::Custom(_) => Some("an op recorded with `record_custom`"),
            _ => None,
        }
    }

    /// [`apply`](Self::apply) for a backward pass that no tape records (first order): rules
    /// with a fused kernel run it on raw buffers, giving the same bits; the others run as
    /// `apply` (their ops then record nothing).
    pub fn apply_first_order(&self, g: &Tensor, needs: &[bool]) -> Result<InputGrads> {
        let fused = match self {
            Rule::Unary { op, x, y } => {
                unary::derivative_first_order(*op, x, y, g)?.map(|d| smallvec::smallvec![Some(d)])
            }
            Rule::Binary { op, a, b, .. } => binary::derivatives_first_order(*op, a, b, g, needs)?,
            _ => None,
        };
        match fused {
            Some(grads) => Ok(grads),
            None => self.apply(g, needs),
        }
    }
}

impl Rule {
    /// A rough count of the rule's work (multiply-adds or elements touched): whether the
    /// independent parts of a backward pass are worth a thread each.
    pub fn work(&self) -> usize {
        match self {
            Rule::Unary { op, y, .. } => y.num_elements().saturating_mul(op.cost()),
            Rule::Binary { a, b, .. } => a.num_elements().max(b.num_elements()).saturating_mul(2),
            Rule::AddSub { a, b, .. } => a.num_elements().max(b.num_elements()),
            Rule::Matmul { a, b, transpose_b, .. } => {
                let d = b.dims();
                let cols = match (d.len(), transpose_b) {
                    (0 | 1, _) => 1,
                    (r, true) => d[r - 2],
                    (r, false) => d[r - 1],
                };
                // Two products of m·k·n each.
                a.num_elements().saturating_mul(cols).saturating_mul(2)
            }
            Rule::Reduce { x, .. } => x.num_elements(),
            Rule::Reshape { shape } | Rule::BroadcastTo { shape } => shape.num_elements(),
            Rule::Identity | Rule::Transpose { .. } | Rule::Cast { .. } | Rule::Custom(_) | Rule::Batchable(_) => 1,
        }
    }
}

/// Where a recorded op's input comes from on one tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Not tracked by the tape: no gradient flows to it.
    Untracked,
    /// A watched tensor or variable handle.
    Leaf,
    /// The output of the tape's entry at this index.
    Op(u32),
}

/// One input of a recorded op.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Input {
    pub id: TensorId,
    pub link: Link,
}

/// The recorded ops as a struct of arrays, one index per op in recording order (a
/// topological order): the rule that goes back through op `i` is `rules[i]`, its inputs
/// `inputs[starts[i]..starts[i + 1]]`. Recording an op appends to three flat vectors
/// instead of moving an entry struct with its own input list, and the backward pass reads
/// inputs (every entry's, to find the live ops) without touching the rules.
#[derive(Clone, Default)]
pub(crate) struct Entries {
    /// Each op's backward rule.
    pub rules: Vec<Rule>,
    /// Where each op's inputs start in `inputs`, plus one trailing end (empty when no op is
    /// recorded).
    starts: Vec<u32>,
    /// Every op's inputs, op after op.
    inputs: Vec<Input>,
}

impl Entries {
    /// The number of recorded ops.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The inputs of op `i`.
    #[inline]
    pub fn inputs(&self, i: usize) -> &[Input] {
        &self.inputs[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// Forgets every op, keeping the capacity.
    pub fn clear(&mut self) {
        self.rules.clear();
        self.starts.clear();
        self.inputs.clear();
    }

    /// The most ops or inputs any of the vectors has room for.
    fn capacity(&self) -> usize {
        self.rules.capacity().max(self.inputs.capacity())
    }

    /// Appends the inputs of a new op (the caller then pushes its rule, or drops the
    /// inputs again with [`discard_inputs`](Self::discard_inputs)); false when none of them
    /// is tracked, so the op is not the tape's.
    fn push_inputs(&mut self, inputs: impl IntoIterator<Item = TensorId>, tracked: &IdMap<Link>) -> bool {
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        let mut any = false;
        for id in inputs {
            let link = tracked.get(&id).copied().unwrap_or(Link::Untracked);
            any |= link != Link::Untracked;
            self.inputs.push(Input { id, link });
        }
        any
    }

    /// Drops the inputs appended since the last complete op.
    fn discard_inputs(&mut self) {
        let end = self.starts.last().map_or(0, |&s| s as usize);
        self.inputs.truncate(end);
    }

    /// Completes the op whose inputs were just appended.
    fn push_rule(&mut self, rule: Rule) {
        let end = u32::try_from(self.inputs.len()).expect("a tape holds fewer than 2^32 op inputs");
        self.starts.push(end);
        self.rules.push(rule);
    }
}

/// What a tape has recorded and watches.
pub(crate) struct TapeState {
    /// Recorded ops.
    pub entries: Entries,
    /// Ids the tape tracks — watched tensors, watched variables' handles ([`Link::Leaf`]) and
    /// recorded outputs ([`Link::Op`]) — so the backward pass follows indices, not ids.
    pub tracked: IdMap<Link>,
    /// Watched variables, in the order they were first watched.
    pub variables: Vec<Variable>,
    /// A non-persistent tape that has computed its one set of gradients.
    pub used: bool,
    /// Nesting depth of `record` scopes currently running this tape.
    pub scope_depth: usize,
    /// Handles of variables read while the tape was paused by `stop_recording` (to explain
    /// a `None` gradient).
    pub read_while_paused: Vec<TensorId>,
}

/// The largest entry arena (and id map) kept for reuse by the thread's next tape.
const SPARE_MAX_ENTRIES: usize = 1 << 12;

thread_local! {
    /// The emptied entry arena and id map of the thread's last finished gradient
    /// computation. A loop that makes a tape per step otherwise grows new vectors by
    /// doubling every step: the reallocations' copies were 5 % of a 100-op scalar chain
    /// (callgrind).
    static SPARE: RefCell<(Entries, IdMap<Link>)> = RefCell::new((Entries::default(), IdMap::default()));
}

/// Keeps `entries` and `tracked`, emptied, for the next tape made on this thread.
pub(crate) fn recycle(mut entries: Entries, mut tracked: IdMap<Link>) {
    if entries.capacity() > SPARE_MAX_ENTRIES || tracked.capacity() > SPARE_MAX_ENTRIES {
        return;
    }
    entries.clear();
    tracked.clear();
    // Re-entered or during thread teardown: the vectors are simply freed.
    let _ = SPARE.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut() {
            if spare.0.capacity() < entries.capacity() {
                spare.0 = entries;
            }
            if spare.1.capacity() < tracked.capacity() {
                spare.1 = tracked;
            }
        }
    });
}

impl Drop for TapeState {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.entries), std::mem::take(&mut self.tracked));
    }
}

impl TapeState {
    /// An empty state, reusing the thread's spare vectors if there are any.
    fn new() -> Self {
        let (entries, tracked) = SPARE
            .try_with(|spare| spare.try_borrow_mut().map(|mut spare| std::mem::take(&mut *spare)).unwrap_or_default())
            .unwrap_or_default();
        TapeState {
            entries,
            tracked,
            variables: Vec::new(),
            used: false,
            scope_depth: 0,
            read_while_paused: Vec::new(),
        }
    }

    /// Where `id` comes from on this tape.
    pub fn link(&self, id: TensorId) -> Link {
        self.tracked.get(&id).copied().unwrap_or(Link::Untracked)
    }

    /// Starts tracking `id` as a leaf; false if the tape tracked it already.
    pub fn track_leaf(&mut self, id: TensorId) -> bool {
        match self.tracked.entry(id) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Link::Leaf);
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
        }
    }

    /// Appends an op whose inputs (already in the arena) produced `output`.
    fn push_op(&mut self, output: TensorId, rule: Rule) {
        let index = u32::try_from(self.entries.len()).expect("a tape holds fewer than 2^32 ops");
        self.tracked.insert(output, Link::Op(index));
        self.entries.push_rule(rule);
    }

    /// Records `inputs -> output` if the tape tracks one of the inputs, with the rule
    /// `rule()` gives; returns whether it recorded.
    fn record(
        &mut self,
        inputs: impl IntoIterator<Item = TensorId>,
        output: TensorId,
        rule: impl FnOnce() -> Option<Rule>,
    ) -> bool {
        let TapeState { entries, tracked, .. } = self;
        if !entries.push_inputs(inputs, tracked) {
            entries.discard_inputs();
            return false;
        }
        match rule() {
            Some(rule) => self.push_op(output, rule),
            None => self.entries.discard_inputs(),
        }
        true
    }
}

/// A tape's shared core: configuration and state.
pub(crate) struct TapeCore {
    pub persistent: bool,
    pub watch_accessed_variables: bool,
    state: Mutex<TapeState>,
}

impl TapeCore {
    pub fn new(persistent: bool, watch_accessed_variables: bool) -> Self {
        TapeCore { persistent, watch_accessed_variables, state: Mutex::new(TapeState::new()) }
    }

    /// The state, also after a panic elsewhere poisoned the lock (the state stays valid:
    /// every update is a single push or insert).
    pub fn state(&self) -> MutexGuard<'_, TapeState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What records on one thread: tapes, forward accumulators, and the variable-access logs of
/// running `recompute_grad` blocks, each innermost last.
pub(crate) struct Active {
    pub tapes: Vec<Arc<TapeCore>>,
    /// Tapes paused by `stop_recording`: they record nothing, but note variable reads.
    pub paused: Vec<Arc<TapeCore>>,
    pub accs: Vec<Arc<AccCore>>,
    pub access_logs: Vec<Arc<AccessLog>>,
}

impl Active {
    fn is_empty(&self) -> bool {
        self.tapes.is_empty() && self.accs.is_empty() && self.access_logs.is_empty()
    }

    /// Whether a variable read has nobody to tell (paused tapes note reads too).
    fn is_empty_for_reads(&self) -> bool {
        self.is_empty() && self.paused.is_empty()
    }
}

thread_local! {
    /// What records on this thread.
    static ACTIVE: RefCell<Active> =
        const { RefCell::new(Active { tapes: Vec::new(), paused: Vec::new(), accs: Vec::new(), access_logs: Vec::new() }) };
}

/// Runs `f` on this thread's recording state.
pub(crate) fn with_active<R>(f: impl FnOnce(&mut Active) -> R) -> R {
    ACTIVE.with(|a| f(&mut a.borrow_mut()))
}

/// Whether `tape` is recording on this thread.
pub(crate) fn is_active(tape: &Arc<TapeCore>) -> bool {
    ACTIVE.with(|a| a.borrow().tapes.iter().any(|t| Arc::ptr_eq(t, tape)))
}

/// Starts recording `tape` on this thread (innermost).
pub(crate) fn push(tape: &Arc<TapeCore>) {
    ACTIVE.with(|a| a.borrow_mut().tapes.push(Arc::clone(tape)));
}

/// Stops recording `tape` on this thread; returns whether it was recording.
pub(crate) fn remove(tape: &Arc<TapeCore>) -> bool {
    ACTIVE.with(|a| {
        let mut active = a.borrow_mut();
        match active.tapes.iter().rposition(|t| Arc::ptr_eq(t, tape)) {
            Some(i) => {
                active.tapes.remove(i);
                true
            }
            None => false,
        }
    })
}

/// Whether nothing records on this thread (no tape, no forward accumulator, no access
/// log): the one check an op pays on unrecorded code.
pub(crate) fn nothing_records() -> bool {
    ACTIVE.with(|a| a.borrow().is_empty())
}

/// Takes every active tape (and, with `accumulators`, every forward accumulator) off this
/// thread until the guard drops: what runs meanwhile records nothing on them.
pub(crate) fn pause(accumulators: bool) -> Paused {
    ACTIVE.with(|a| {
        let mut active = a.borrow_mut();
        let tapes = std::mem::take(&mut active.tapes);
        let accs = if accumulators { std::mem::take(&mut active.accs) } else { Vec::new() };
        Paused { tapes, accs, from: 0 }
    })
}

/// Restores what [`pause`] (or [`pause_accs_from`]) took, also on unwinding.
pub(crate) struct Paused {
    tapes: Vec<Arc<TapeCore>>,
    accs: Vec<Arc<AccCore>>,
    /// Where the taken accumulators go back in the list.
    from: usize,
}

impl Drop for Paused {
    fn drop(&mut self) {
        let (tapes, accs) = (std::mem::take(&mut self.tapes), std::mem::take(&mut self.accs));
        let from = self.from;
        let _ = ACTIVE.try_with(|a| {
            let mut active = a.borrow_mut();
            // What was started meanwhile (and not stopped) was started inside: it goes after.
            let inner_tapes = std::mem::replace(&mut active.tapes, tapes);
            active.tapes.extend(inner_tapes);
            let at = from.min(active.accs.len());
            active.accs.splice(at..at, accs);
        });
    }
}

/// Takes the forward accumulators from position `k` of this thread's list (the one
/// computing a tangent and those inside it) off until the guard drops: the ops of a JVP
/// rule are seen by the accumulators outside only, which differentiate them (nesting).
fn pause_accs_from(k: usize) -> Paused {
    ACTIVE.with(|a| {
        let mut active = a.borrow_mut();
        let k = k.min(active.accs.len());
        let accs = active.accs.split_off(k);
        Paused { tapes: Vec::new(), accs, from: k }
    })
}

/// Records an op with `inputs` and `output` on every active tape that tracks one of the
/// inputs, and gives its output a tangent on every active forward accumulator that has one
/// for an input (by the rule's own JVP, [`Rule::jvp`]). `make_rule` runs at most once, only
/// if something needs the rule. Ops with an int32 output are never recorded: no gradient
/// flows through integers.
pub(crate) fn record(inputs: &[&Tensor], output: &Tensor, make_rule: impl FnOnce() -> Rule) {
    record_op(inputs, output, None::<&NoJvp>, make_rule);
}

/// The type of "no JVP closure given": the rule's own JVP applies.
type NoJvp = dyn Fn(&[Option<Tensor>]) -> Result<Tensor>;

/// [`record`] with the op's JVP given as a closure (for rules that are closures): from one
/// tangent per input (`None`: zero), the output's tangent. It runs once per accumulator
/// that needs it, with that accumulator and those inside it paused.
fn record_op<J: Fn(&[Option<Tensor>]) -> Result<Tensor> + ?Sized>(
    inputs: &[&Tensor],
    output: &Tensor,
    jvp: Option<&J>,
    make_rule: impl FnOnce() -> Rule,
) {
    if nothing_records() || !output.dtype().is_float() {
        return;
    }
    // Neither locking a tape nor building the rule touches the active list, so it stays
    // borrowed for the loop instead of being copied.
    let forward = ACTIVE.with(|active| {
        let active = active.borrow();
        if active.accs.is_empty() {
            record_on_tapes(&active.tapes, inputs, output, make_rule);
            return None;
        }
        // JVP rules run ops, which record: the lists are copied, not kept borrowed.
        Some((make_rule, active.tapes.clone(), active.accs.clone()))
    });
    if let Some((make_rule, tapes, accs)) = forward {
        record_forward(inputs, output, jvp, make_rule, &tapes, &accs);
    }
}

/// Records the op on `tapes` (the innermost recording one takes the rule, outer ones get
/// clones).
fn record_on_tapes(tapes: &[Arc<TapeCore>], inputs: &[&Tensor], output: &Tensor, make_rule: impl FnOnce() -> Rule) {
    if let [tape] = tapes {
        // The common case: one tape, which builds the rule in place if it records.
        tape.state().record(inputs.iter().map(|t| t.id()), output.id(), || Some(make_rule()));
        return;
    }
    let mut make = Some(make_rule);
    let mut made: Option<Rule> = None;
    for (k, tape) in tapes.iter().enumerate() {
        let innermost = k + 1 == tapes.len();
        tape.state().record(inputs.iter().map(|t| t.id()), output.id(), || {
            if made.is_none() {
                made = make.take().map(|make| make());
            }
            if innermost { made.take() } else { made.clone() }
        });
    }
}

/// [`record_op`] with forward accumulators active: the tapes record as usual, and each
/// accumulator holding a tangent for an input computes the output's.
fn record_forward<J: Fn(&[Option<Tensor>]) -> Result<Tensor> + ?Sized>(
    inputs: &[&Tensor],
    output: &Tensor,
    jvp: Option<&J>,
    make_rule: impl FnOnce() -> Rule,
    tapes: &[Arc<TapeCore>],
    accs: &[Arc<AccCore>],
) {
    // Each accumulator's tangents of the inputs, looked up before anything runs.
    let wanted: Vec<(usize, Vec<Option<Tangent>>)> = accs
        .iter()
        .enumerate()
        .filter_map(|(k, acc)| {
            let tangents = acc.tangents_of(inputs);
            tangents.iter().any(Option::is_some).then_some((k, tangents))
        })
        .collect();
    if wanted.is_empty() {
        // No tangent to push: only the tapes may want the op.
        record_on_tapes(tapes, inputs, output, make_rule);
        return;
    }
    let rule = make_rule();
    if !tapes.is_empty() {
        record_on_tapes(tapes, inputs, output, || rule.clone());
    }
    for (k, tangents) in wanted {
        let tangent = match tangents.iter().flatten().find_map(|t| t.as_ref().err()) {
            // An input's tangent failed: so does this one (the error names the op without
            // a rule).
            Some(failed) => Err(failed.clone()),
            None => {
                let tangents: Vec<Option<Tensor>> =
                    tangents.into_iter().map(|t| t.and_then(std::result::Result::ok)).collect();
                let _paused = pause_accs_from(k);
                let computed = match jvp {
                    Some(jvp) => jvp(&tangents),
                    None => rule.jvp(inputs, output, &tangents),
                };
                computed.and_then(|t| crate::forward::fit_tangent(t, output))
            }
        };
        accs[k].set_tangent(output.id(), tangent);
    }
}

/// [`record`] for an op whose backward rule is a closure without a batched form, and which
/// has no forward-mode rule: a tangent through it is an `Err` naming `op`. Every op of the
/// catalog has both ([`record_batchable`]); this stays for ops that do not (the jacobian's
/// fallback test and the forward-mode error test record one).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn record_custom(
    op: &'static str,
    inputs: &[&Tensor],
    output: &Tensor,
    make_rule: impl FnOnce() -> CustomRule,
) {
    let no_rule = move |_: &[Option<Tensor>]| -> Result<Tensor> {
        Err(tapeflow_dtype::Error::InvalidArgument {
            op,
            reason: "the op has no forward-mode (JVP) rule, so ForwardAccumulator cannot push a tangent through it"
                .into(),
        })
    };
    record_op(inputs, output, Some(&no_rule), || Rule::Custom(make_rule()));
}

/// [`record`] for an op whose backward rule is a closure with a batched form; `jvp` is its
/// forward-mode rule (from one tangent per input, `None` meaning zero, the output's
/// tangent), written with differentiable ops beside the backward rule.
pub(crate) fn record_batchable(
    inputs: &[&Tensor],
    output: &Tensor,
    jvp: impl Fn(&[Option<Tensor>]) -> Result<Tensor>,
    make_rule: impl FnOnce() -> BatchableRule,
) {
    record_op(inputs, output, Some(&jvp), || Rule::Batchable(make_rule()));
}

/// [`record`] for a closure rule without a batched form whose JVP is given (custom
/// gradients, recomputed blocks).
pub(crate) fn record_closure(
    inputs: &[&Tensor],
    output: &Tensor,
    jvp: impl Fn(&[Option<Tensor>]) -> Result<Tensor>,
    make_rule: impl FnOnce() -> CustomRule,
) {
    record_op(inputs, output, Some(&jvp), || Rule::Custom(make_rule()));
}

/// Records `inputs -> output` on the active tapes only (no tangent): for an op whose
/// tangents the accumulators got another way (a recomputed block's own ops).
pub(crate) fn record_on_tapes_only(inputs: &[&Tensor], output: &Tensor, make_rule: impl FnOnce() -> Rule) {
    if !output.dtype().is_float() {
        return;
    }
    ACTIVE.with(|active| record_on_tapes(&active.borrow().tapes, inputs, output, make_rule));
}

/// Called on every read of `variable` whose current value is `value`: on each active tape
/// the read is an access (a trainable variable is watched on first access when the tape
/// watches accessed variables), and tapes that watch the variable record the read as an
/// identity op from the variable's handle to a fresh tensor, which is returned. Forward
/// accumulators holding a tangent for the variable give the read that tangent, and the
/// access logs of running `recompute_grad` blocks note the variable.
pub(crate) fn read_variable(variable: &Variable, value: Tensor) -> Tensor {
    if !value.dtype().is_float() || ACTIVE.with(|a| a.borrow().is_empty_for_reads()) {
        return value;
    }
    let handle = variable.handle_id();
    let mut read: Option<Tensor> = None;
    let accs = ACTIVE.with(|active| {
        let active = active.borrow();
        for tape in &active.paused {
            let mut state = tape.state();
            if !state.read_while_paused.contains(&handle) {
                state.read_while_paused.push(handle);
            }
        }
        for log in &active.access_logs {
            log.note(variable);
        }
        for tape in &active.tapes {
            let mut state = tape.state();
            if tape.watch_accessed_variables && variable.trainable() && state.track_leaf(handle) {
                state.variables.push(variable.clone());
            }
            if state.link(handle) != Link::Untracked {
                let out = read.get_or_insert_with(|| value.with_new_id());
                state.record(std::iter::once(handle), out.id(), || Some(Rule::Identity));
            }
        }
        active.accs.clone()
    });
    for acc in &accs {
        if let Some(tangent) = acc.tangent(handle) {
            let out = read.get_or_insert_with(|| value.with_new_id());
            acc.set_tangent(out.id(), tangent);
        }
    }
    read.unwrap_or(value)
}

/// Whether any tape records on this thread.
pub(crate) fn records_on_this_thread() -> bool {
    !nothing_records()
}
