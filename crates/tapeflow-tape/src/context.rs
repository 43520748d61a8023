//! The thread's active tapes and the one function every op calls to record itself.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use smallvec::SmallVec;
use tapeflow_dtype::{Result, TensorId};

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

/// A set of tensor ids.
pub(crate) type IdSet = HashSet<TensorId, BuildHasherDefault<IdHasher>>;
/// A map keyed by tensor id.
pub(crate) type IdMap<V> = HashMap<TensorId, V, BuildHasherDefault<IdHasher>>;

/// An op's backward rule: given the gradient of its output and which inputs need a
/// gradient, the gradients of its inputs (`None` where not needed or not defined).
/// Written with differentiable ops, so it records on whatever tapes are active.
pub(crate) type BackwardFn = Arc<dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// One recorded op: which tensors went in, which came out, how to go back.
#[derive(Clone)]
pub(crate) struct Entry {
    pub inputs: SmallVec<[TensorId; 2]>,
    pub output: TensorId,
    pub backward: BackwardFn,
}

/// What a tape has recorded and watches.
#[derive(Default)]
pub(crate) struct TapeState {
    /// Recorded ops in recording order (a topological order).
    pub entries: Vec<Entry>,
    /// Ids the tape tracks: watched tensors, watched variables' handles, recorded outputs.
    pub tracked: IdSet,
    /// Watched variables, in the order they were first watched.
    pub variables: Vec<Variable>,
    /// A non-persistent tape that has computed its one set of gradients.
    pub used: bool,
    /// Nesting depth of `record` scopes currently running this tape.
    pub scope_depth: usize,
}

/// A tape's shared core: configuration and state.
pub(crate) struct TapeCore {
    pub persistent: bool,
    pub watch_accessed_variables: bool,
    state: Mutex<TapeState>,
}

impl TapeCore {
    pub fn new(persistent: bool, watch_accessed_variables: bool) -> Self {
        TapeCore { persistent, watch_accessed_variables, state: Mutex::new(TapeState::default()) }
    }

    /// The state, also after a panic elsewhere poisoned the lock (the state stays valid:
    /// every update is a single push or insert).
    pub fn state(&self) -> MutexGuard<'_, TapeState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

thread_local! {
    /// Tapes recording on this thread, innermost last.
    static ACTIVE: RefCell<Vec<Arc<TapeCore>>> = const { RefCell::new(Vec::new()) };
}

/// Whether `tape` is recording on this thread.
pub(crate) fn is_active(tape: &Arc<TapeCore>) -> bool {
    ACTIVE.with(|a| a.borrow().iter().any(|t| Arc::ptr_eq(t, tape)))
}

/// Starts recording `tape` on this thread (innermost).
pub(crate) fn push(tape: &Arc<TapeCore>) {
    ACTIVE.with(|a| a.borrow_mut().push(Arc::clone(tape)));
}

/// Stops recording `tape` on this thread; returns whether it was recording.
pub(crate) fn remove(tape: &Arc<TapeCore>) -> bool {
    ACTIVE.with(|a| {
        let mut active = a.borrow_mut();
        match active.iter().rposition(|t| Arc::ptr_eq(t, tape)) {
            Some(i) => {
                active.remove(i);
                true
            }
            None => false,
        }
    })
}

/// Whether no tape records on this thread: the one check an op pays on unrecorded code.
fn nothing_records() -> bool {
    ACTIVE.with(|a| a.borrow().is_empty())
}

/// Records an op with `inputs` and `output` on every active tape that tracks one of the
/// inputs. `make_backward` runs at most once, only if some tape records the op. Ops with
/// an int32 output are never recorded: no gradient flows through integers.
pub(crate) fn record(inputs: &[&Tensor], output: &Tensor, make_backward: impl FnOnce() -> BackwardFn) {
    if nothing_records() || !output.dtype().is_float() {
        return;
    }
    let ids: SmallVec<[TensorId; 2]> = inputs.iter().map(|t| t.id()).collect();
    let mut backward: Option<BackwardFn> = None;
    let mut make = Some(make_backward);
    // Neither locking a tape nor building the rule touches the active list, so it stays
    // borrowed for the loop instead of being copied.
    ACTIVE.with(|active| {
        for tape in active.borrow().iter() {
            let mut state = tape.state();
            if ids.iter().any(|id| state.tracked.contains(id)) {
                let rule = match &backward {
                    Some(b) => Arc::clone(b),
                    None => {
                        let Some(make) = make.take() else { continue };
                        Arc::clone(backward.insert(make()))
                    }
                };
                state.tracked.insert(output.id());
                state.entries.push(Entry { inputs: ids.clone(), output: output.id(), backward: rule });
            }
        }
    });
}

/// Called on every read of `variable` whose current value is `value`: on each active tape
/// the read is an access (a trainable variable is watched on first access when the tape
/// watches accessed variables), and tapes that watch the variable record the read as an
/// identity op from the variable's handle to a fresh tensor, which is returned.
pub(crate) fn read_variable(variable: &Variable, value: Tensor) -> Tensor {
    if nothing_records() || !value.dtype().is_float() {
        return value;
    }
    let handle = variable.handle_id();
    let mut read: Option<Tensor> = None;
    ACTIVE.with(|active| {
        for tape in active.borrow().iter() {
            let mut state = tape.state();
            if tape.watch_accessed_variables && variable.trainable() && !state.tracked.contains(&handle) {
                state.tracked.insert(handle);
                state.variables.push(variable.clone());
            }
            if state.tracked.contains(&handle) {
                let out = read.get_or_insert_with(|| value.with_new_id());
                state.tracked.insert(out.id());
                state.entries.push(Entry {
                    inputs: SmallVec::from_slice(&[handle]),
                    output: out.id(),
                    backward: identity(),
                });
            }
        }
    });
    read.unwrap_or(value)
}

/// The backward rule of a read: the gradient passes through unchanged.
fn identity() -> BackwardFn {
    static IDENTITY: std::sync::OnceLock<BackwardFn> = std::sync::OnceLock::new();
    Arc::clone(IDENTITY.get_or_init(|| Arc::new(|g: &Tensor, _: &[bool]| Ok(vec![Some(g.clone())]))))
}

/// Whether any tape records on this thread.
pub(crate) fn records_on_this_thread() -> bool {
    !nothing_records()
}
