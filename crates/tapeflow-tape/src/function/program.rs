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

use rayon::prelude::*;
use tapeflow_dtype::{Error, Result};

use crate::runtime::Tensor;
use crate::trace::{Inputs, Node, Outputs, Recorder, Src};
use crate::variable::Variable;

/// One step of the replay: a node's call and where its inputs and outputs are, as ranges
/// of the program's flat lists (the loop reads these few words per node, not the node).
struct Step {
    uses: std::ops::Range<u32>,
    outs: std::ops::Range<u32>,
}

/// A traced call must have taken this long for the replay to give it a thread of its own
/// beside its neighbours (below, handing it to rayon costs more than it saves).
const PARALLEL_MIN_NANOS: u64 = 20_000;

/// One node's buffers when a stage runs its nodes side by side.
type Lane = (Inputs, Outputs, Option<Error>);

pub(crate) struct Program {
    nodes: Vec<Node>,
    steps: Vec<Step>,
    /// Runs of consecutive nodes, as ranges of `steps`: one node, or several expensive
    /// nodes none of which reads another's output nor writes a variable, which the replay
    /// runs side by side (the gradient of a matmul's two operands, the same op of
    /// independent chains in one wave of the backward pass). Independent calls give the
    /// same bits in any order, so the schedule changes no result.
    stages: Vec<std::ops::Range<u32>>,
    /// The buffers of the widest stage's nodes, reused call to call.
    lanes: Vec<Lane>,
    /// Every node's inputs, node after node, each with whether the replay moves it out of
    /// its slot (its last use).
    uses: Vec<(Src, bool)>,
    /// Every node's output slots, node after node (`u32::MAX`: dropped at once).
    outs: Vec<u32>,
    consts: Vec<Tensor>,
    /// The slot of each argument, `None` where nothing reads it.
    args: Vec<Option<u32>>,
    outputs: Vec<Src>,
    /// Variables written before the last node that can fail on data: saved at the start of
    /// a replay, put back if it fails.
    guarded: Vec<Variable>,
    /// Every variable the program reads or writes (`Function::verify` compares them).
    pub touched: Vec<Variable>,
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
        let (mut steps, mut uses, mut outs) = (Vec::new(), Vec::new(), Vec::new());
        for (k, node) in nodes.iter().enumerate() {
            let first_use = uses.len() as u32;
            for (p, &src) in node.inputs.iter().enumerate() {
                let take = match src {
                    Src::Slot(s) => !kept[s as usize] && last_use[s as usize] == Some((k, p)),
                    Src::Const(_) => false,
                };
                uses.push((src, take));
            }
            let first_out = outs.len() as u32;
            outs.extend(
                node.outputs
                    .iter()
                    .map(|&s| if !read_somewhere[s as usize] && !kept[s as usize] { u32::MAX } else { s }),
            );
            steps.push(Step { uses: first_use..uses.len() as u32, outs: first_out..outs.len() as u32 });
        }
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
        let stages = stages_of(&nodes);
        let widest = stages.iter().map(|r| r.len()).max().unwrap_or(0);
        let lanes =
            if widest > 1 { (0..widest).map(|_| (Inputs::new(), Outputs::new(), None)).collect() } else { Vec::new() };
        Program {
            stages,
            lanes,
            nodes,
            steps,
            uses,
            outs,
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

    /// The program as text: one line per captured call (its op, where its inputs come
    /// from, the slots it fills, how long it took when traced), stages run side by side
    /// marked with `‖`.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for stage in &self.stages {
            let side_by_side = stage.len() > 1;
            for k in stage.clone() {
                let node = &self.nodes[k as usize];
                let inputs: Vec<String> = node
                    .inputs
                    .iter()
                    .map(|src| match src {
                        Src::Slot(s) => format!("%{s}"),
                        Src::Const(c) => format!("const{c}"),
                    })
                    .collect();
                let outputs: Vec<String> = node.outputs.iter().map(|s| format!("%{s}")).collect();
                text.push_str(&format!(
                    "{}{} = {}({}){}  [{:.1} µs]\n",
                    if side_by_side { "‖ " } else { "  " },
                    outputs.join(", "),
                    node.name,
                    inputs.join(", "),
                    if node.writes.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " writes {}",
                            node.writes.iter().map(|v| v.name().to_string()).collect::<Vec<_>>().join(", ")
                        )
                    },
                    node.nanos as f64 / 1e3
                ));
            }
        }
        text
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
        let Program { nodes, steps, stages, lanes, uses, outs, consts, slots, out, .. } = self;
        for (slot, arg) in self.args.iter().zip(args) {
            if let Some(s) = slot {
                slots[*s as usize] = Some((*arg).clone());
            }
        }
        let (mut inputs, mut produced) = (Inputs::new(), Outputs::new());
        let parallel = rayon::current_num_threads() > 1;
        for stage in stages.iter() {
            let (first, len) = (stage.start as usize, stage.len());
            if len > 1 && parallel {
                let group = &nodes[first..first + len];
                for (k, (node, lane)) in group.iter().zip(lanes.iter_mut()).enumerate() {
                    lane.0.clear();
                    gather(&steps[first + k], node, uses, slots, consts, &mut lane.0)?;
                }
                let level = tapeflow_kernels::isa::current();
                lanes[..len].par_iter_mut().zip(group).for_each(|((ins, outs, err), node)| {
                    outs.clear();
                    *err = level.enter(|| (node.exec)(ins, outs)).err();
                });
                for (k, (node, lane)) in group.iter().zip(lanes.iter_mut()).enumerate() {
                    if let Some(e) = lane.2.take() {
                        return Err(e);
                    }
                    scatter(&steps[first + k], node, outs, slots, &mut lane.1)?;
                }
                continue;
            }
            for (k, node) in nodes[first..first + len].iter().enumerate() {
                inputs.clear();
                gather(&steps[first + k], node, uses, slots, consts, &mut inputs)?;
                produced.clear();
                (node.exec)(&mut inputs, &mut produced)?;
                scatter(&steps[first + k], node, outs, slots, &mut produced)?;
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

/// A node's inputs, moved or cloned out of their slots.
fn gather(
    step: &Step,
    node: &Node,
    uses: &[(Src, bool)],
    slots: &mut [Option<Tensor>],
    consts: &[Tensor],
    inputs: &mut Inputs,
) -> Result<()> {
    for &(src, take) in &uses[step.uses.start as usize..step.uses.end as usize] {
        let value = match src {
            Src::Slot(s) if take => slots[s as usize].take(),
            Src::Slot(s) => slots[s as usize].clone(),
            Src::Const(c) => Some(consts[c as usize].clone()),
        };
        inputs.push(value.ok_or_else(|| missing(node.name))?);
    }
    Ok(())
}

/// A node's outputs into their slots (those nothing reads are dropped).
fn scatter(step: &Step, node: &Node, outs: &[u32], slots: &mut [Option<Tensor>], produced: &mut Outputs) -> Result<()> {
    let targets = &outs[step.outs.start as usize..step.outs.end as usize];
    if produced.len() != targets.len() {
        return Err(missing(node.name));
    }
    for (value, &s) in produced.drain(..).zip(targets) {
        if s != u32::MAX {
            slots[s as usize] = Some(value);
        }
    }
    Ok(())
}

/// The program's stages: consecutive nodes grouped when each took at least
/// [`PARALLEL_MIN_NANOS`] when traced, writes no variable and reads no output of the group.
fn stages_of(nodes: &[Node]) -> Vec<std::ops::Range<u32>> {
    let worth = |n: &Node| n.nanos >= PARALLEL_MIN_NANOS && n.writes.is_empty() && !n.read;
    let mut stages = Vec::new();
    let mut k = 0;
    while k < nodes.len() {
        let mut end = k + 1;
        if worth(&nodes[k]) {
            let mut made: Vec<u32> = nodes[k].outputs.to_vec();
            while end < nodes.len()
                && worth(&nodes[end])
                && !nodes[end].inputs.iter().any(|src| matches!(src, Src::Slot(s) if made.contains(s)))
            {
                made.extend(nodes[end].outputs.iter().copied());
                end += 1;
            }
        }
        stages.push(k as u32..end as u32);
        k = end;
    }
    stages
}

/// A value the program should hold and does not: a defect of the capture, reported
/// instead of a panic.
fn missing(name: &'static str) -> Error {
    Error::InvalidArgument { op: "function", reason: format!("the replayed program lost a value of `{name}`") }
}
