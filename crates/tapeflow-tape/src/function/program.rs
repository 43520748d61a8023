//! A captured program and its replay.
//!
//! The program is the trace's nodes in recording order (a topological order) over numbered
//! value slots. Everything a replay needs is settled when the program is built: which
//! input of which node is a slot's last use (moved out then, so a kernel may reuse the
//! buffer, and freed as early as eager code frees it), which outputs nothing reads (dropped
//! at once), which variable writes precede a kernel that can fail on data (their old
//! values are kept until the call succeeds). A replay is then a loop over the nodes that
//! moves tensors between slots: no tape, no hashing, no shape checks beyond the kernels'
//! own, and no allocation of its own after the first call.

use smallvec::SmallVec;
use tapeflow_dtype::{Error, Result};

use crate::runtime::Tensor;
use crate::trace::{Inputs, Node, Recorder, Src};
use crate::variable::Variable;

/// A node's inputs, each with whether the replay moves it out of its slot.
type Uses = SmallVec<[(Src, bool); 4]>;

pub(crate) struct Program {
    nodes: Vec<Node>,
    /// Per node: its inputs and whether each is the slot's last use.
    uses: Vec<Uses>,
    consts: Vec<Tensor>,
    /// The slot of each argument, `None` where nothing reads it.
    args: Vec<Option<u32>>,
    outputs: Vec<Src>,
    /// Variables written before the last node that can fail on data: saved at the start of
    /// a replay, put back if it fails.
    guarded: Vec<Variable>,
    /// Every variable the program reads or writes (`Function::verify` compares them).
    pub touched: Vec<Variable>,
    /// Slots nothing reads: their values are dropped as soon as they are made.
    dead: Vec<bool>,
    /// The value slots, empty between calls (kept for their capacity).
    slots: Vec<Option<Tensor>>,
    /// The results of the last call, drained by the caller (kept for their capacity).
    pub out: Vec<Tensor>,
    /// Values saved for `guarded` during a call.
    saved: Vec<Tensor>,
}

impl Program {
    /// The program of a finished trace whose results were `outputs`.
    pub fn new(mut recorder: Recorder, outputs: &[Tensor]) -> Self {
        let outputs: Vec<Src> = outputs.iter().map(|t| recorder.source(t)).collect();
        let Recorder { nodes, slot_names, consts, args, touched, .. } = recorder;
        let n_slots = slot_names.len();

        // Reads of a variable whose value nothing uses are dropped (validation reads the
        // library makes, a value the closure looked at only for its shape).
        let mut read_somewhere = vec![false; n_slots];
        for src in nodes.iter().flat_map(|n| n.inputs.iter()).chain(&outputs) {
            if let Src::Slot(s) = src {
                read_somewhere[*s as usize] = true;
            }
        }
        let nodes: Vec<Node> =
            nodes.into_iter().filter(|n| !(n.read && n.outputs.iter().all(|&s| !read_somewhere[s as usize]))).collect();

        // Each slot's last reader; results are kept to the end.
        let mut kept = vec![false; n_slots];
        for src in &outputs {
            if let Src::Slot(s) = src {
                kept[*s as usize] = true;
            }
        }
        let mut last_use: Vec<Option<(usize, usize)>> = vec![None; n_slots];
        for (k, node) in nodes.iter().enumerate() {
            for (p, src) in node.inputs.iter().enumerate() {
                if let Src::Slot(s) = src {
                    last_use[*s as usize] = Some((k, p));
                }
            }
        }
        let uses = nodes
            .iter()
            .enumerate()
            .map(|(k, node)| {
                node.inputs
                    .iter()
                    .enumerate()
                    .map(|(p, &src)| {
                        let take = match src {
                            Src::Slot(s) => !kept[s as usize] && last_use[s as usize] == Some((k, p)),
                            Src::Const(_) => false,
                        };
                        (src, take)
                    })
                    .collect()
            })
            .collect();
        let args = args.iter().map(|&s| (read_somewhere[s as usize]).then_some(s)).collect();

        let last_fallible = nodes.iter().rposition(|n| n.fallible);
        let mut guarded: Vec<Variable> = Vec::new();
        if let Some(last) = last_fallible {
            for var in nodes[..last].iter().flat_map(|n| n.writes.iter()) {
                if !guarded.iter().any(|v| v.handle_id() == var.handle_id()) {
                    guarded.push(var.clone());
                }
            }
        }
        let dead = (0..n_slots).map(|s| !read_somewhere[s] && !kept[s]).collect();
        Program {
            dead,
            nodes,
            uses,
            consts,
            args,
            outputs,
            guarded,
            touched,
            slots: vec![None; n_slots],
            out: Vec::new(),
            saved: Vec::new(),
        }
    }

    /// The number of captured calls.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Runs the program on `args` (tensors of the traced signature); the results are left in
    /// [`out`](Self::out). On `Err` every variable is as it was before the call.
    pub fn run(&mut self, args: &[&Tensor]) -> Result<()> {
        self.saved.clear();
        self.saved.extend(self.guarded.iter().map(Variable::current));
        let result = self.replay(args);
        self.slots.iter_mut().for_each(|s| *s = None);
        if result.is_err() {
            for (var, value) in self.guarded.iter().zip(self.saved.drain(..)) {
                var.restore(value);
            }
            self.out.clear();
        }
        self.saved.clear();
        result
    }

    fn replay(&mut self, args: &[&Tensor]) -> Result<()> {
        let Program { nodes, uses, consts, slots, out, dead, .. } = self;
        for (slot, arg) in self.args.iter().zip(args) {
            if let Some(s) = slot {
                slots[*s as usize] = Some((*arg).clone());
            }
        }
        for (node, uses) in nodes.iter().zip(uses.iter()) {
            let mut inputs = Inputs::new();
            for &(src, take) in uses {
                let value = match src {
                    Src::Slot(s) if take => slots[s as usize].take(),
                    Src::Slot(s) => slots[s as usize].clone(),
                    Src::Const(c) => Some(consts[c as usize].clone()),
                };
                inputs.push(value.ok_or_else(|| missing(node.name))?);
            }
            let produced = (node.exec)(inputs)?;
            if produced.len() != node.outputs.len() {
                return Err(missing(node.name));
            }
            for (value, &s) in produced.into_iter().zip(&node.outputs) {
                if !dead[s as usize] {
                    slots[s as usize] = Some(value);
                }
            }
        }
        out.clear();
        for src in &self.outputs {
            let value = match *src {
                Src::Slot(s) => slots[s as usize].clone(),
                Src::Const(c) => Some(consts[c as usize].clone()),
            };
            out.push(value.ok_or_else(|| missing("result"))?);
        }
        Ok(())
    }
}

/// A value the program should hold and does not: a defect of the capture, reported
/// instead of a panic.
fn missing(name: &'static str) -> Error {
    Error::InvalidArgument { op: "function", reason: format!("the replayed program lost a value of `{name}`") }
}
