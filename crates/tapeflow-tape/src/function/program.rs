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

use tapeflow_dtype::{Error, Result};

use super::schedule;
use crate::runtime::Tensor;
use smallvec::SmallVec;

use crate::trace::{Exec, Inputs, Node, Outputs, Recorder, Src};
use crate::variable::Variable;

/// One step of the replay: a node's call and where its inputs and outputs are, as ranges
/// of the program's flat lists (the loop reads these few words per node, not the node).
struct Step {
    uses: std::ops::Range<u32>,
    outs: std::ops::Range<u32>,
}

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
    /// Independent parts that run on a thread each (`schedule::components`): each part's
    /// nodes in program order and its contiguous range of slots. Empty: one part.
    parts: Vec<(Vec<usize>, std::ops::Range<u32>)>,
    /// Every node's inputs, node after node, each with whether the replay moves it out of
    /// its slot (its last use).
    uses: Vec<(Src, bool)>,
    /// Every node's output slots, node after node (`u32::MAX`: dropped at once).
    outs: Vec<u32>,
    consts: Vec<Tensor>,
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
        let mut nodes: Vec<Node> = nodes
            .into_iter()
            .filter(|n| !(n.read.is_some() && n.outputs.iter().all(|&s| !read_somewhere[s as usize])))
            .collect();

        // Arguments are read in place (`Src::Arg`), and slots are renumbered so that each
        // independent part owns a contiguous range.
        let mut renumber: Vec<Src> = (0..n_slots as u32).map(Src::Slot).collect();
        for (i, &s) in args.iter().enumerate().rev() {
            renumber[s as usize] = Src::Arg(i as u32);
        }
        let apply = |src: &mut Src, renumber: &[Src]| {
            if let Src::Slot(s) = *src {
                *src = renumber[s as usize];
            }
        };
        for node in &mut nodes {
            node.inputs.iter_mut().for_each(|src| apply(src, &renumber));
        }
        let mut outputs = outputs;
        outputs.iter_mut().for_each(|src| apply(src, &renumber));
        let parallel_parts = schedule::components(&nodes, n_slots);
        let order: Vec<usize> = match &parallel_parts {
            Some(parts) => parts.iter().flatten().copied().collect(),
            None => (0..nodes.len()).collect(),
        };
        let mut new_slot: Vec<u32> = vec![u32::MAX; n_slots];
        let mut next = 0u32;
        let mut bounds = Vec::with_capacity(order.len());
        for &k in &order {
            for &s in &nodes[k].outputs {
                new_slot[s as usize] = next;
                next += 1;
            }
            bounds.push(next);
        }
        let n_slots = next as usize;
        let parts: Vec<(Vec<usize>, std::ops::Range<u32>)> = match parallel_parts {
            Some(list) => {
                let mut start = 0u32;
                let mut at = 0usize;
                list.into_iter()
                    .map(|part| {
                        at += part.len();
                        let end = bounds[at - 1];
                        let range = start..end;
                        start = end;
                        (part, range)
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let remap = |src: &mut Src| {
            if let Src::Slot(s) = *src {
                *src = Src::Slot(new_slot[s as usize]);
            }
        };
        for node in &mut nodes {
            node.inputs.iter_mut().for_each(remap);
            node.outputs.iter_mut().for_each(|s| *s = new_slot[*s as usize]);
        }
        outputs.iter_mut().for_each(remap);
        let mut read_somewhere = vec![false; n_slots];
        for src in nodes.iter().flat_map(|n| n.inputs.iter()).chain(&outputs) {
            if let Src::Slot(s) = src {
                read_somewhere[*s as usize] = true;
            }
        }

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
                    Src::Const(_) | Src::Arg(_) => false,
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

        let last_fallible = nodes.iter().rposition(|n| n.fallible);
        let mut guarded: Vec<Variable> = Vec::new();
        if let Some(last) = last_fallible {
            for var in nodes[..last].iter().flat_map(|n| n.writes.iter()) {
                if !guarded.iter().any(|v| v.handle_id() == var.handle_id()) {
                    guarded.push(var.clone());
                }
            }
        }
        let stages = schedule::stages(&nodes);
        let widest = stages.iter().map(|r| r.len()).max().unwrap_or(0);
        let lanes =
            if widest > 1 { (0..widest).map(|_| (Inputs::new(), Outputs::new(), None)).collect() } else { Vec::new() };
        Program {
            stages,
            lanes,
            parts,
            nodes,
            steps,
            uses,
            outs,
            consts,
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
        if self.parts.len() > 1 {
            let sizes: Vec<String> = self.parts.iter().map(|(nodes, _)| nodes.len().to_string()).collect();
            text.push_str(&format!(
                "{} independent parts, run side by side (calls: {})\n",
                self.parts.len(),
                sizes.join(", ")
            ));
        }
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
                        Src::Arg(a) => format!("arg{a}"),
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
        if result.is_err() {
            // A successful replay leaves every slot empty (last uses and results move out);
            // a failed one may not have reached them.
            self.slots.iter_mut().for_each(|s| *s = None);
            for (var, value) in self.guarded.iter().zip(self.saved.drain(..)) {
                var.restore(value);
            }
            self.out.clear();
        }
        self.saved.clear();
        result
    }

    fn replay(&mut self, args: &[&Tensor]) -> Result<()> {
        let Program { nodes, steps, stages, lanes, parts, uses, outs, consts, slots, out, .. } = self;
        let code = Code { nodes, steps, uses, outs, consts, args };
        if parts.len() > 1 && rayon::current_num_threads() > 1 {
            run_parts(&code, parts, slots)?;
        } else {
            run_stages(&code, stages, lanes, slots)?;
        }
        out.clear();
        for (k, src) in self.outputs.iter().enumerate() {
            let value = match *src {
                // The last mention of a slot among the results moves it out.
                Src::Slot(s) if !self.outputs[k + 1..].contains(src) => slots[s as usize].take(),
                Src::Slot(s) => slots[s as usize].clone(),
                Src::Const(c) => Some(consts[c as usize].clone()),
                Src::Arg(a) => args.get(a as usize).map(|t| (*t).clone()),
            };
            out.push(value.ok_or_else(|| missing("result"))?);
        }
        Ok(())
    }
}

/// What every replay reads: the nodes and where their values are.
struct Code<'a> {
    nodes: &'a [Node],
    steps: &'a [Step],
    uses: &'a [(Src, bool)],
    outs: &'a [u32],
    consts: &'a [Tensor],
    args: &'a [&'a Tensor],
}

impl Code<'_> {
    /// Node `k` on the calling thread; `slots` holds slots from `base` on. A call that
    /// reads its inputs in place gets references into the slots (nothing cloned or moved),
    /// and its inputs' last uses are freed after it, as eagerly.
    fn run_node(
        &self,
        k: usize,
        slots: &mut [Option<Tensor>],
        base: u32,
        inputs: &mut Inputs,
        produced: &mut Outputs,
    ) -> Result<()> {
        let node = &self.nodes[k];
        let step = &self.steps[k];
        let uses = &self.uses[step.uses.start as usize..step.uses.end as usize];
        produced.clear();
        match &node.exec {
            Exec::Ref(f) => {
                {
                    let mut refs: SmallVec<[&Tensor; 4]> = SmallVec::new();
                    for &(src, _) in uses {
                        let value = match src {
                            Src::Slot(s) => slots[(s - base) as usize].as_ref(),
                            Src::Const(c) => Some(&self.consts[c as usize]),
                            Src::Arg(a) => self.args.get(a as usize).copied(),
                        };
                        refs.push(value.ok_or_else(|| missing(node.name))?);
                    }
                    f(&refs, produced)?;
                }
                for &(src, take) in uses {
                    if let (Src::Slot(s), true) = (src, take) {
                        slots[(s - base) as usize] = None;
                    }
                }
            }
            Exec::Owned(f) => {
                inputs.clear();
                self.gather(k, slots, base, inputs)?;
                f(inputs, produced)?;
                inputs.clear();
            }
        }
        self.scatter(k, slots, base, produced)
    }

    /// Node `k`'s inputs, moved or cloned out of their slots.
    fn gather(&self, k: usize, slots: &mut [Option<Tensor>], base: u32, inputs: &mut Inputs) -> Result<()> {
        let step = &self.steps[k];
        for &(src, take) in &self.uses[step.uses.start as usize..step.uses.end as usize] {
            let value = match src {
                Src::Slot(s) if take => slots[(s - base) as usize].take(),
                Src::Slot(s) => slots[(s - base) as usize].clone(),
                Src::Const(c) => Some(self.consts[c as usize].clone()),
                Src::Arg(a) => self.args.get(a as usize).map(|t| (*t).clone()),
            };
            inputs.push(value.ok_or_else(|| missing(self.nodes[k].name))?);
        }
        Ok(())
    }

    /// Node `k`'s outputs into their slots (those nothing reads are dropped).
    fn scatter(&self, k: usize, slots: &mut [Option<Tensor>], base: u32, produced: &mut Outputs) -> Result<()> {
        let step = &self.steps[k];
        let targets = &self.outs[step.outs.start as usize..step.outs.end as usize];
        if produced.len() != targets.len() {
            return Err(missing(self.nodes[k].name));
        }
        // Popped from the back: each tensor moves once, straight into its slot (a draining
        // iterator's temporaries cost a stalled load per tensor in profiles).
        for &s in targets.iter().rev() {
            let value = produced.pop();
            if s != u32::MAX {
                slots[(s - base) as usize] = value;
            }
        }
        Ok(())
    }
}

/// The program in order, stage by stage: a stage of several nodes runs them side by side.
fn run_stages(
    code: &Code<'_>,
    stages: &[std::ops::Range<u32>],
    lanes: &mut [Lane],
    slots: &mut [Option<Tensor>],
) -> Result<()> {
    let parallel = rayon::current_num_threads() > 1;
    let (mut inputs, mut produced) = (Inputs::new(), Outputs::new());
    for stage in stages {
        let (first, len) = (stage.start as usize, stage.len());
        if len > 1 && parallel {
            let group = &code.nodes[first..first + len];
            for (k, lane) in (first..first + len).zip(lanes.iter_mut()) {
                lane.0.clear();
                code.gather(k, slots, 0, &mut lane.0)?;
            }
            let level = tapeflow_kernels::isa::current();
            // The calling thread runs calls too, beside the pool's (no sleep and wake-up).
            let items: Vec<(&mut Lane, &Node)> = lanes[..len].iter_mut().zip(group).collect();
            tapeflow_kernels::parallel::for_each_item(items, |_, ((ins, outs, err), node)| {
                outs.clear();
                *err = level.enter(|| node.exec.run_owned(ins, outs)).err();
                // Inputs go now, not at the lane's next use: a variable's value held here
                // would keep an optimizer from updating it in place.
                ins.clear();
            });
            for (k, lane) in (first..first + len).zip(lanes.iter_mut()) {
                if let Some(e) = lane.2.take() {
                    return Err(e);
                }
                code.scatter(k, slots, 0, &mut lane.1)?;
            }
            continue;
        }
        for k in first..first + len {
            code.run_node(k, slots, 0, &mut inputs, &mut produced)?;
        }
    }
    Ok(())
}

/// Independent parts on a thread each, over disjoint ranges of the slots. A failure is
/// the one eager would have met first: the failing node earliest in program order (the
/// parts that run on past it write nothing: every write is in one part, in order).
fn run_parts(
    code: &Code<'_>,
    parts: &[(Vec<usize>, std::ops::Range<u32>)],
    slots: &mut [Option<Tensor>],
) -> Result<()> {
    let mut work = Vec::with_capacity(parts.len());
    let mut rest = slots;
    for (nodes, range) in parts {
        let (mine, tail) = rest.split_at_mut(range.len());
        rest = tail;
        work.push((nodes.as_slice(), range.start, mine));
    }
    let failures: std::sync::Mutex<Vec<(usize, Error)>> = std::sync::Mutex::new(Vec::new());
    let level = tapeflow_kernels::isa::current();
    // The calling thread takes parts too; work nested in a part stays on its thread.
    tapeflow_kernels::parallel::for_each_item(work, |_, (nodes, base, slots)| {
        level.enter(|| {
            let (mut inputs, mut produced) = (Inputs::new(), Outputs::new());
            for &k in nodes {
                if let Err(e) = code.run_node(k, slots, base, &mut inputs, &mut produced) {
                    failures.lock().unwrap_or_else(|p| p.into_inner()).push((k, e));
                    return;
                }
            }
        })
    });
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    match failures.into_iter().min_by_key(|(k, _)| *k) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// A value the program should hold and does not: a defect of the capture, reported
/// instead of a panic.
fn missing(name: &'static str) -> Error {
    Error::InvalidArgument { op: "function", reason: format!("the replayed program lost a value of `{name}`") }
}
