//! The tape workloads of the benchmarks, shared by `benches/tape.rs` and
//! `examples/perf_report.rs` (included with `#[path]`).

use tapeflow::prelude::*;

/// Deterministic values in [-scale, scale].
pub fn values(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((((i + 7919 * seed) * 2654435761) % 2001) as f32 / 1000.0 - 1.0) * scale).collect()
}

pub fn matrix(rows: usize, cols: usize, seed: usize, scale: f32) -> Tensor {
    Tensor::from_vec(values(rows * cols, seed, scale), [rows, cols]).expect("sized")
}

/// The seed snippet: y = x², dy/dx.
pub fn seed_snippet(x: &Variable) -> Tensor {
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2.0)).expect("float");
    tape.gradient(&y, x).expect("one gradient").expect("connected")
}

/// 100 × (y = y·1.0001 + 0.5), then dy/dx.
pub fn scalar_chain(x: &Variable) -> Tensor {
    let tape = GradientTape::new();
    let y = tape
        .record(|| {
            let mut y = x.read();
            for _ in 0..100 {
                y = ((&y * 1.0001)? + 0.5)?;
            }
            Ok::<_, Error>(y)
        })
        .expect("float");
    tape.gradient(&y, x).expect("one gradient").expect("connected")
}

/// 16 independent chains of 10 × (matmul 64×64, tanh); the gradients of all 16 weights.
pub struct Chains {
    pub x: Tensor,
    pub weights: Vec<Variable>,
}

impl Chains {
    pub fn new() -> Self {
        Chains {
            x: matrix(64, 64, 0, 0.5),
            weights: (1..=16).map(|s| Variable::new(matrix(64, 64, s, 0.05))).collect(),
        }
    }

    /// The forward pass, recorded on a fresh tape.
    pub fn forward(&self) -> (GradientTape, Vec<Tensor>) {
        let tape = GradientTape::new();
        let outputs = tape
            .record(|| {
                self.weights
                    .iter()
                    .map(|w| {
                        let mut h = self.x.clone();
                        for _ in 0..10 {
                            h = w.matmul(&h)?.tanh()?;
                        }
                        Ok(h)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .expect("shapes agree");
        (tape, outputs)
    }

    /// The backward pass: gradients of all 16 weights; `sequential` forces the
    /// one-op-at-a-time schedule.
    pub fn backward(&self, tape: &GradientTape, outputs: &[Tensor], sequential: bool) -> Vec<Option<Tensor>> {
        tape.gradients_with(outputs, &self.weights, GradientOptions::default().sequential(sequential))
            .expect("one gradient")
    }

    /// Forward and backward.
    pub fn step(&self, sequential: bool) -> Vec<Option<Tensor>> {
        let (tape, outputs) = self.forward();
        self.backward(&tape, &outputs, sequential)
    }
}

impl Default for Chains {
    fn default() -> Self {
        Self::new()
    }
}

/// jacobian of tanh(W x) with respect to x, n = 256 (vectorized: one pass over stacked seeds).
pub fn jacobian_tanh(w: &Tensor, x: &Variable) -> Tensor {
    jacobian_tanh_with(w, x, JacobianOptions::default())
}

/// [`jacobian_tanh`] as one backward pass per output element (the row loop).
pub fn jacobian_tanh_rows(w: &Tensor, x: &Variable) -> Tensor {
    jacobian_tanh_with(w, x, JacobianOptions::default().vectorized(false))
}

fn jacobian_tanh_with(w: &Tensor, x: &Variable, options: JacobianOptions) -> Tensor {
    let tape = GradientTape::new();
    let y = tape.record(|| w.matmul(x)?.tanh()).expect("shapes agree");
    tape.jacobian_with(&y, x, options).expect("one jacobian").expect("connected")
}

/// batch_jacobian of tanh(x W) with respect to x, 64 × 64.
pub fn batch_jacobian_tanh(x: &Variable, w: &Tensor) -> Tensor {
    let tape = GradientTape::new();
    let y = tape.record(|| x.matmul(w)?.tanh()).expect("shapes agree");
    tape.batch_jacobian(&y, x).expect("one jacobian").expect("connected")
}

/// A 64-64-1 tanh MLP on a batch of 64: the Hessian of the mean output with respect to
/// the first layer's weights, times `v` (nested tapes).
pub struct Mlp {
    pub x: Tensor,
    pub w1: Variable,
    pub w2: Variable,
    pub v: Tensor,
}

impl Mlp {
    pub fn new() -> Self {
        Mlp {
            x: matrix(64, 64, 3, 1.0),
            w1: Variable::new(matrix(64, 64, 4, 0.1)),
            w2: Variable::new(matrix(64, 1, 5, 0.1)),
            v: matrix(64, 64, 6, 1.0),
        }
    }

    pub fn hessian_vector_product(&self) -> Tensor {
        let outer = GradientTape::new();
        let g = outer
            .record(|| {
                let inner = GradientTape::new();
                let loss = inner.record(|| self.x.matmul(&self.w1)?.tanh()?.matmul(&self.w2)?.mean_all())?;
                let g = inner.gradient(&loss, &self.w1)?.expect("connected");
                (g * &self.v)?.sum_all()
            })
            .expect("shapes agree");
        outer.gradient(&g, &self.w1).expect("one gradient").expect("connected")
    }
}

/// The forward-mode and user-defined-gradient workloads on the same MLP (issue 17).
impl Mlp {
    /// The loss alone, nothing recording.
    pub fn forward(&self) -> Tensor {
        self.x.matmul(&self.w1).and_then(|h| h.tanh()?.matmul(&self.w2)?.mean_all()).expect("shapes agree")
    }

    /// The JVP of the loss along `v` in `w1`'s direction: one forward pass with tangents.
    pub fn jvp(&self) -> Tensor {
        let acc = ForwardAccumulator::new().primal(&self.w1, &self.v).expect("the tangent fits");
        let loss = acc.record(|| self.forward());
        acc.jvp(&loss).expect("every op has a rule").expect("connected")
    }

    /// The Hessian-vector product forward over reverse: the tangent of the gradient.
    pub fn hvp_forward_over_reverse(&self) -> Tensor {
        let acc = ForwardAccumulator::new().primal(&self.w1, &self.v).expect("the tangent fits");
        let g = acc.record(|| {
            let tape = GradientTape::new();
            let loss = tape.record(|| self.forward());
            tape.gradient(&loss, &self.w1).expect("one gradient").expect("connected")
        });
        acc.jvp(&g).expect("every op has a rule").expect("connected")
    }
}

/// One call of `custom_gradient` (`exp` with its gradient `g·eˣ`) and its gradient, or
/// (`custom = false`) the plain recorded `exp`: the same ops either way.
pub fn custom_exp(x: &Variable, custom: bool) -> Tensor {
    let tape = GradientTape::new();
    let y = tape
        .record(|| {
            if !custom {
                return x.exp();
            }
            custom_gradient(&[x], |xs| {
                let e = xs[0].exp()?;
                let saved = e.clone();
                Ok((e, move |g: &Tensor| -> Result<Vec<Option<Tensor>>> { Ok(vec![Some((g * &saved)?)]) }))
            })
        })
        .expect("a scalar");
    tape.gradient(&y, x).expect("one gradient").expect("connected")
}

/// One call of `recompute_grad` around `exp` and its gradient, or (`recompute = false`)
/// the plain recorded `exp`.
pub fn recomputed_exp(x: &Variable, recompute: bool) -> Tensor {
    let tape = GradientTape::new();
    let y = tape
        .record(|| if recompute { recompute_grad(&[x], |xs: &[Tensor]| xs[0].exp()) } else { x.exp() })
        .expect("a scalar");
    tape.gradient(&y, x).expect("one gradient").expect("connected")
}

impl Default for Mlp {
    fn default() -> Self {
        Self::new()
    }
}
