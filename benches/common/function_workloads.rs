//! The tape workloads and training steps eager and compiled (`tapeflow::function`), shared
//! by `benches/function.rs` and `examples/perf_report.rs`. The including crate also
//! includes `tape_workloads.rs` as `crate::workloads`, `train_workloads.rs` as
//! `crate::train_workloads` and `examples/common/digits.rs` as `crate::digits`.

use std::hint::black_box;

use tapeflow::function;
use tapeflow::prelude::*;

use crate::train_workloads::TrainStep;
use crate::workloads;

/// One workload both ways: `eager` runs it as written, `compiled` replays it through a
/// function traced on the first call. Each owns its state.
pub struct Pair {
    pub name: &'static str,
    pub eager: Box<dyn FnMut()>,
    pub compiled: Box<dyn FnMut()>,
}

fn pair(
    name: &'static str,
    mut eager: impl FnMut() -> Tensor + 'static,
    mut compiled: impl FnMut() -> Tensor + 'static,
) -> Pair {
    let mut f = function(move |()| Ok(compiled()));
    Pair {
        name,
        eager: Box::new(move || drop(black_box(eager()))),
        compiled: Box::new(move || drop(black_box(f.call(()).expect("the traced signature")))),
    }
}

/// A training step both ways, each on a model of its own.
fn train(name: &'static str, make: impl Fn() -> TrainStep) -> Pair {
    let (mut eager, mut compiled) = (make(), make());
    pair(name, move || eager.loss_step().expect("shapes agree"), move || compiled.loss_step().expect("shapes agree"))
}

/// The workloads of the compiled-function benchmark group and perf-report rows.
pub fn pairs() -> Vec<Pair> {
    let x = Variable::new(20.0);
    let x2 = x.clone();
    let chain_x = Variable::new(0.5);
    let chain_x2 = chain_x.clone();
    let w = workloads::matrix(256, 256, 1, 0.05);
    let jx = Variable::new(workloads::matrix(256, 1, 2, 1.0));
    let (w2, jx2) = (w.clone(), jx.clone());
    let xb = Variable::new(workloads::matrix(64, 64, 3, 1.0));
    let wb = workloads::matrix(64, 64, 4, 0.1);
    let (xb2, wb2) = (xb.clone(), wb.clone());
    let mlp = std::rc::Rc::new(workloads::Mlp::new());
    let mlp_hvp = (mlp.clone(), mlp.clone());
    let mlp_jvp = (mlp.clone(), mlp.clone());
    let mlp_fwd_rev = (mlp.clone(), mlp);
    let scalar = Variable::new(0.5);
    let (s1, s2, s3) = (scalar.clone(), scalar.clone(), scalar);
    let chains = std::rc::Rc::new(workloads::Chains::new());
    let chains2 = chains.clone();
    vec![
        pair("seed snippet", move || workloads::seed_snippet(&x), move || workloads::seed_snippet(&x2)),
        pair(
            "scalar chain of 100",
            move || workloads::scalar_chain(&chain_x),
            move || workloads::scalar_chain(&chain_x2),
        ),
        pair(
            "jacobian tanh(Wx), n = 256",
            move || workloads::jacobian_tanh(&w, &jx),
            move || workloads::jacobian_tanh(&w2, &jx2),
        ),
        pair(
            "batch_jacobian tanh(xW), 64 x 64",
            move || workloads::batch_jacobian_tanh(&xb, &wb),
            move || workloads::batch_jacobian_tanh(&xb2, &wb2),
        ),
        pair(
            "64-64-1 MLP HVP (nested tapes)",
            move || mlp_hvp.0.hessian_vector_product(),
            move || mlp_hvp.1.hessian_vector_product(),
        ),
        pair("64-64-1 MLP jvp (forward mode)", move || mlp_jvp.0.jvp(), move || mlp_jvp.1.jvp()),
        pair(
            "64-64-1 MLP HVP (forward over reverse)",
            move || mlp_fwd_rev.0.hvp_forward_over_reverse(),
            move || mlp_fwd_rev.1.hvp_forward_over_reverse(),
        ),
        pair(
            "exp + gradient, custom_gradient",
            move || workloads::custom_exp(&s1, true),
            move || workloads::custom_exp(&s2, true),
        ),
        pair("exp + gradient, recompute_grad", move || workloads::recomputed_exp(&s3, true), {
            let s = Variable::new(0.5);
            move || workloads::recomputed_exp(&s, true)
        }),
        pair(
            "16 chains x 10 x (matmul 64 + tanh), whole step",
            move || chains.step(false).into_iter().flatten().next().expect("connected"),
            move || chains2.step(false).into_iter().flatten().next().expect("connected"),
        ),
        train("train step: digits 64-128-10, full batch 1437 (SGD)", || {
            TrainStep::digits().expect("data/digits is part of the repository")
        }),
        train("train step: MLP 784-512-512-10, batch 256 (SGD)", || {
            TrainStep::synthetic(&[784, 512, 512, 10], 256).expect("shapes agree")
        }),
    ]
}
