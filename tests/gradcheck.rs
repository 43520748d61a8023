//! Gradient checks: every differentiable op's backward rule against central finite
//! differences of a plain-Rust f64 reference of its forward function, independent of
//! TensorFlow and of tapeflow's own kernels.
//!
//! For an op `y = op(x₁, …, xₖ)` and a random upstream gradient `u` (the VJP seed), tapeflow's
//! `gradient_with(y, xᵢ, output_gradients([u]))` is the gradient of the scalar
//!
//! ```text
//! F(x₁, …, xₖ) = Σ_j u_j · op(x₁, …, xₖ)_j
//! ```
//!
//! with respect to `xᵢ`. The test evaluates the f64 reference at `x ± h·e_m` for every input
//! element `m` and takes the central difference of the whole output vector, which gives the
//! Jacobian column `∂y/∂x_m` and so `want = Σ_j u_j ∂y_j/∂x_m`.
//!
//! Step size: `h = 1e-5 · max(1, |x_m|)` (first order). The central difference has truncation
//! error `h²·|F'''|/6` and rounding error about `ε₆₄·|F|/h` (ε₆₄ ≈ 1.1e-16). Inputs stay at
//! least 1e-2 from kinks and 5e-2 from poles (domains below); at distance `d` from a pole
//! each further derivative grows by ~1/d, so truncation relative to the derivative itself is
//! ~(h/d)² ≤ (1e-5/5e-2)² ≈ 4e-8, and rounding is ≤ ~2e-8 absolute (|F| ≤ ~2e3) — both far
//! below the 1e-3 tolerance — while `h` is three orders of magnitude smaller than the distance
//! to any kink, so `x ± h` never crosses one. (The customary `h ≈ 1e-3` would give relative
//! truncation errors of ~(1e-3/5e-2)² = 4e-4 next to a pole, close to the tolerance.) The
//! step actually taken, `(x+h) − (x−h)` in f64, is the divisor.
//!
//! Second derivatives use the second central difference `(f(x+h) − 2f(x) + f(x−h)) / h²` with
//! `h = 1e-4 · max(1, |x|)`: truncation relative to f'' ~(h/d)²/12 ≤ ~4e-7, rounding
//! `4ε₆₄|f|/h²` ≤ ~3e-6 (|f| ≤ 60). Measured: the worst float32 error of any case is 0.4 % of
//! its tolerance, so the finite differences themselves are not what is being tolerated.
//!
//! Tolerances: float32 `|got − want| ≤ 1e-3·(1 + |want|)`; float16 `5e-3·(1 + |want|)`, with
//! the reference evaluated on the f16-rounded inputs and upstream, so only tapeflow's own
//! rounding (once per op, forward and backward) is measured. One exception, explained at
//! [`Scale::Terms`]: float16 `div` and `pow` gradients are measured against the sum of the
//! magnitudes of the terms that make them up, because the sum over broadcast axes of large
//! f16-rounded terms can cancel.
//!
//! Set `GRADCHECK_REPORT=1` (and pass `--nocapture`) to print each case's worst error as a
//! fraction of its tolerance.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use tapeflow::prelude::*;

type Check = std::result::Result<(), TestCaseError>;

/// Shape, slicing, indexing and einsum ops (catalog II).
#[path = "gradcheck/indexing.rs"]
mod indexing;

/// The convolutions of `tapeflow::nn`.
#[path = "gradcheck/nn_conv.rs"]
mod nn_conv;

/// `tapeflow::nn`: pooling, normalization, losses, dropout.
#[path = "gradcheck/nn_layers.rs"]
mod nn_layers;

/// 32 cases per property; `PROPTEST_CASES=n` in the environment overrides it.
fn config() -> ProptestConfig {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => ProptestConfig::default(),
        Err(_) => ProptestConfig::with_cases(32),
    }
}

// ---------------------------------------------------------------------------------------
// Precision: how inputs are rounded and how close tapeflow must come.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prec {
    F32,
    F16,
}

impl Prec {
    fn dtype(self) -> DType {
        match self {
            Prec::F32 => DType::F32,
            Prec::F16 => DType::F16,
        }
    }

    /// The nearest value of this precision (what the tensor will hold).
    fn round(self, v: f64) -> f64 {
        match self {
            Prec::F32 => f64::from(v as f32),
            Prec::F16 => f16::from_f64(v).to_f64(),
        }
    }

    /// Combined absolute + relative tolerance factor: `|got − want| ≤ tol·(1 + |want|)`.
    fn tol(self) -> f64 {
        match self {
            Prec::F32 => 1e-3,
            Prec::F16 => 5e-3,
        }
    }

    fn tensor(self, values: &[f64], dims: &[usize]) -> Tensor {
        let t = match self {
            Prec::F32 => Tensor::from_vec(values.iter().map(|&v| v as f32).collect::<Vec<_>>(), dims.to_vec()),
            Prec::F16 => Tensor::from_vec(values.iter().map(|&v| f16::from_f64(v)).collect::<Vec<_>>(), dims.to_vec()),
        };
        t.expect("values fill the shape")
    }
}

fn close(got: f64, want: f64, tol: f64) -> bool {
    if got == want {
        return true; // equal infinities (max over an empty axis is −inf)
    }
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan(); // mean over an empty axis is NaN
    }
    (got - want).abs() <= tol * (1.0 + want.abs())
}

fn tf_err(what: &str) -> impl Fn(Error) -> TestCaseError + '_ {
    move |e| TestCaseError::fail(format!("{what}: tapeflow returned Err: {e}"))
}

fn report_enabled() -> bool {
    std::env::var_os("GRADCHECK_REPORT").is_some()
}

fn show(values: &[f64]) -> String {
    const MAX: usize = 40;
    let mut s: Vec<String> = values.iter().take(MAX).map(|v| format!("{v:.6}")).collect();
    if values.len() > MAX {
        s.push(format!("… ({} more)", values.len() - MAX));
    }
    format!("[{}]", s.join(", "))
}

/// A deterministic upstream gradient in [-1, 1), rounded to the precision (splitmix64).
fn upstream(seed: u64, n: usize, prec: Prec) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let unit = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            prec.round(2.0 * unit - 1.0)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Index arithmetic for the references.
// ---------------------------------------------------------------------------------------

fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// Row-major multi-index of flat index `i`.
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        if dims[d] > 0 {
            idx[d] = i % dims[d];
            i /= dims[d];
        }
    }
    idx
}

fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// NumPy broadcast of two shapes (trailing dimensions equal or 1).
fn broadcast_dims(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
            let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
            assert!(da == db || da == 1 || db == 1, "not broadcastable: {a:?} {b:?}");
            if da == 1 { db } else { da }
        })
        .collect()
}

/// The flat index into an operand of shape `in_dims` that feeds output index `out_idx`
/// (right-aligned; size-1 dimensions are stretched).
fn broadcast_source(out_idx: &[usize], in_dims: &[usize]) -> usize {
    let offset = out_idx.len() - in_dims.len();
    let idx: Vec<usize> =
        in_dims.iter().enumerate().map(|(d, &n)| if n == 1 { 0 } else { out_idx[offset + d] }).collect();
    ravel(&idx, in_dims)
}

// ---------------------------------------------------------------------------------------
// The gradient check itself.
// ---------------------------------------------------------------------------------------

/// What the relative part of the gradient tolerance is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    /// `tol·(1 + |want|)`: the default, for every float32 check and most float16 ones.
    Want,
    /// `tol·(1 + Σ_j |u_j ∂y_j/∂x_m|)`, the sum of the magnitudes of the terms that make up
    /// the gradient element. Used only for float16 `div` and `pow` with broadcasting (see
    /// `Bin::f16_scale`): there the gradient of a broadcast operand is a sum of large
    /// per-element terms (|a/b²| up to 1.2e3, |a^b·ln a| up to 90) that are each rounded to
    /// f16 — as TensorFlow's float16 gradient rules round them — before the sum over the
    /// broadcast axes, and the sum can cancel to something small. The error is then a few
    /// f16 ulps of the *terms*, not of the result. (Checked by emulating the rule in numpy
    /// float16 for a failing case: tapeflow's value is exactly the emulated one.)
    Terms,
}

/// Checks the forward value and the VJP of `op` (tapeflow) against `reference` (f64) for
/// inputs given as (values, dims); values are first rounded to `prec`.
fn check_vjp(
    name: &str,
    prec: Prec,
    inputs: &[(Vec<f64>, Vec<usize>)],
    seed: u64,
    op: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Vec<f64>]) -> (Vec<f64>, Vec<usize>),
) -> Check {
    check_vjp_scaled(name, prec, Scale::Want, inputs, seed, op, reference)
}

#[allow(clippy::too_many_arguments)]
fn check_vjp_scaled(
    name: &str,
    prec: Prec,
    scale: Scale,
    inputs: &[(Vec<f64>, Vec<usize>)],
    seed: u64,
    op: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Vec<f64>]) -> (Vec<f64>, Vec<usize>),
) -> Check {
    let scale_of = |want: f64, terms: f64| match scale {
        Scale::Want => want.abs(),
        Scale::Terms => terms,
    };
    let what = format!("{name} {prec:?} inputs {:?}", inputs.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>());
    let xs: Vec<Vec<f64>> = inputs.iter().map(|(v, _)| v.iter().map(|&x| prec.round(x)).collect()).collect();
    let (want_y, out_dims) = reference(&xs);
    assert_eq!(want_y.len(), numel(&out_dims), "reference output size");
    let up = upstream(seed, want_y.len(), prec);
    let tensors: Vec<Tensor> = inputs.iter().zip(&xs).map(|((_, d), x)| prec.tensor(x, d)).collect();

    let tape = GradientTape::new();
    let y = tape
        .record(|| {
            tape.watch(&tensors[..]);
            op(&tensors)
        })
        .map_err(tf_err(&what))?;
    prop_assert_eq!(y.dims(), &out_dims[..], "{}: output shape", what);
    prop_assert_eq!(y.dtype(), prec.dtype(), "{}: output dtype", what);
    let got_y = y.to_f64_vec();
    let tol = prec.tol();
    for (j, (&g, &w)) in got_y.iter().zip(&want_y).enumerate() {
        prop_assert!(
            close(g, w, tol),
            "{}: forward element {} is {} but the f64 reference gives {}\n  inputs: {}",
            what,
            j,
            g,
            w,
            xs.iter().map(|x| show(x)).collect::<Vec<_>>().join(" ; ")
        );
    }

    let seed_tensor = prec.tensor(&up, &out_dims);
    let grads = tape
        .gradients_with(&[&y], &tensors[..], GradientOptions::default().output_gradients(vec![seed_tensor]))
        .map_err(tf_err(&what))?;
    prop_assert_eq!(grads.len(), inputs.len());

    let mut worst = 0.0f64;
    let mut worst_mag = 0.0f64;
    for (i, grad) in grads.iter().enumerate() {
        let Some(grad) = grad else {
            return Err(TestCaseError::fail(format!("{what}: no gradient for input {i}")));
        };
        prop_assert_eq!(grad.dims(), &inputs[i].1[..], "{}: gradient {} shape", what, i);
        prop_assert_eq!(grad.dtype(), prec.dtype(), "{}: gradient {} dtype", what, i);
        let got = grad.to_f64_vec();
        for m in 0..xs[i].len() {
            let x = xs[i][m];
            let h = 1e-5 * x.abs().max(1.0);
            let mut plus = xs.clone();
            plus[i][m] = x + h;
            let mut minus = xs.clone();
            minus[i][m] = x - h;
            let denom = plus[i][m] - minus[i][m]; // the step actually taken, exactly
            let (yp, _) = reference(&plus);
            let (ym, _) = reference(&minus);
            let want: f64 = yp.iter().zip(&ym).zip(&up).map(|((p, q), u)| u * (p - q) / denom).sum();
            let mag: f64 = yp.iter().zip(&ym).zip(&up).map(|((p, q), u)| (u * (p - q) / denom).abs()).sum();
            let allowed = tol * (1.0 + scale_of(want, mag));
            worst = worst.max((got[m] - want).abs() / (tol * (1.0 + want.abs())));
            worst_mag = worst_mag.max((got[m] - want).abs() / (tol * (1.0 + mag)));
            prop_assert!(
                close(got[m], want, tol * (1.0 + scale_of(want, mag)) / (1.0 + want.abs())),
                "{}: d/d input{}[{}] (x = {}) got {} want {} (|err| = {:.3e}, allowed {:.3e})\n  inputs: {}\n  upstream: {}",
                what,
                i,
                m,
                x,
                got[m],
                want,
                (got[m] - want).abs(),
                allowed,
                xs.iter().map(|x| show(x)).collect::<Vec<_>>().join(" ; "),
                show(&up)
            );
        }
    }
    if report_enabled() {
        // err / (tol·(1 + |want|)) and err / (tol·(1 + Σ|terms|)), whichever is enforced.
        eprintln!("{what}: worst err/tol = {worst:.3}; against the summed terms {worst_mag:.3}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Input domains: away from kinks and poles so finite differences are meaningful.
// ---------------------------------------------------------------------------------------

/// Distance kept from kinks (relu/abs at 0, maximum/minimum ties, reduce-max ties).
const KINK_MARGIN: f64 = 1e-2;
/// Distance kept from poles and domain edges (log, sqrt, rsqrt, reciprocal at 0, log1p at
/// −1, division by 0, pow base 0). 5e-2 rather than 1e-2 keeps every first and second
/// derivative inside float16's range: rsqrt''(0.01) = 0.75·0.01^-2.5 = 7.5e4 > 65504,
/// while rsqrt''(0.05) ≈ 1.3e3 and (1/x)''(0.05) = 1.6e4.
const POLE_MARGIN: f64 = 5e-2;

#[derive(Clone, Copy, Debug)]
struct Domain {
    lo: f64,
    hi: f64,
    /// A point to stay `margin` away from: values closer are pushed out to the margin.
    avoid: Option<(f64, f64)>,
    /// A second such point (relu6 and clip have two kinks).
    avoid_too: Option<(f64, f64)>,
}

impl Domain {
    const fn range(lo: f64, hi: f64) -> Self {
        Domain { lo, hi, avoid: None, avoid_too: None }
    }
    const fn avoiding(lo: f64, hi: f64, point: f64, margin: f64) -> Self {
        Domain { lo, hi, avoid: Some((point, margin)), avoid_too: None }
    }
    const fn avoiding_two(lo: f64, hi: f64, first: f64, second: f64, margin: f64) -> Self {
        Domain { lo, hi, avoid: Some((first, margin)), avoid_too: Some((second, margin)) }
    }
    fn shift(self, x: f64) -> f64 {
        let push = |x: f64, avoid: Option<(f64, f64)>| match avoid {
            Some((p, m)) if (x - p).abs() < m => {
                if x >= p {
                    p + m
                } else {
                    p - m
                }
            }
            _ => x,
        };
        push(push(x, self.avoid), self.avoid_too)
    }
    fn values(self, n: usize) -> impl Strategy<Value = Vec<f64>> {
        vec(self.lo..self.hi, n).prop_map(move |v| v.into_iter().map(|x| self.shift(x)).collect())
    }
}

/// Values `0.1·k + offset + jitter` with |jitter| < 0.015: two such vectors with offsets 0
/// and 0.05 never come closer than 0.02 (no maximum/minimum ties).
fn grid_values(n: usize, offset: f64) -> impl Strategy<Value = Vec<f64>> {
    vec((-25i32..=25, -0.015f64..0.015), n)
        .prop_map(move |v| v.into_iter().map(|(k, j)| 0.1 * f64::from(k) + offset + j).collect())
}

/// `n` values, all at least 0.03 apart (a shuffled grid of step 0.05 plus jitter < 0.01):
/// no reduce-max ties, even after rounding to float16.
fn distinct_values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    (Just((0..n).collect::<Vec<usize>>()).prop_shuffle(), vec(-0.01f64..0.01, n)).prop_map(move |(perm, jit)| {
        perm.into_iter().zip(jit).map(|(p, j)| 0.05 * (p as f64 - n as f64 / 2.0) + j).collect()
    })
}

// ---------------------------------------------------------------------------------------
// Unary ops.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Un {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Square,
    Tanh,
    Sigmoid,
    Relu,
    Sin,
    Cos,
    Softplus,
    Log1p,
    Expm1,
    Reciprocal,
}

impl Un {
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Un::Neg => x.neg(),
            Un::Abs => x.abs(),
            Un::Exp => x.exp(),
            Un::Log => x.log(),
            Un::Sqrt => x.sqrt(),
            Un::Rsqrt => x.rsqrt(),
            Un::Square => x.square(),
            Un::Tanh => x.tanh(),
            Un::Sigmoid => x.sigmoid(),
            Un::Relu => x.relu(),
            Un::Sin => x.sin(),
            Un::Cos => x.cos(),
            Un::Softplus => x.softplus(),
            Un::Log1p => x.log1p(),
            Un::Expm1 => x.expm1(),
            Un::Reciprocal => x.reciprocal(),
        }
    }

    /// The f64 reference of the forward function.
    fn f(self, x: f64) -> f64 {
        match self {
            Un::Neg => -x,                                         // f' = −1, f'' = 0
            Un::Abs => x.abs(),                                    // f' = sign x, f'' = 0 (x ≠ 0)
            Un::Exp => x.exp(),                                    // f' = f'' = eˣ
            Un::Log => x.ln(),                                     // f' = 1/x, f'' = −1/x²
            Un::Sqrt => x.sqrt(),                                  // f' = 1/(2√x), f'' = −x^(−3/2)/4
            Un::Rsqrt => 1.0 / x.sqrt(),                           // f' = −x^(−3/2)/2, f'' = 3x^(−5/2)/4
            Un::Square => x * x,                                   // f' = 2x, f'' = 2
            Un::Tanh => x.tanh(),                                  // f' = 1 − t², f'' = −2t(1 − t²)
            Un::Sigmoid => 1.0 / (1.0 + (-x).exp()),               // f' = s(1 − s), f'' = s(1 − s)(1 − 2s)
            Un::Relu => x.max(0.0),                                // f' = [x > 0], f'' = 0 (x ≠ 0)
            Un::Sin => x.sin(),                                    // f' = cos x, f'' = −sin x
            Un::Cos => x.cos(),                                    // f' = −sin x, f'' = −cos x
            Un::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(), // f' = sigmoid x, f'' = s(1 − s)
            Un::Log1p => x.ln_1p(),                                // f' = 1/(1+x), f'' = −1/(1+x)²
            Un::Expm1 => x.exp_m1(),                               // f' = f'' = eˣ
            Un::Reciprocal => 1.0 / x,                             // f' = −1/x², f'' = 2/x³
        }
    }

    fn domain(self) -> Domain {
        match self {
            Un::Abs | Un::Relu => Domain::avoiding(-5.0, 5.0, 0.0, KINK_MARGIN),
            Un::Exp | Un::Expm1 => Domain::range(-4.0, 4.0),
            Un::Log | Un::Sqrt | Un::Rsqrt => Domain::range(POLE_MARGIN, 10.0),
            Un::Reciprocal => Domain::avoiding(-8.0, 8.0, 0.0, POLE_MARGIN),
            Un::Log1p => Domain::range(-1.0 + POLE_MARGIN, 8.0),
            Un::Sin | Un::Cos => Domain::range(-7.0, 7.0),
            Un::Neg | Un::Square | Un::Tanh | Un::Sigmoid | Un::Softplus => Domain::range(-5.0, 5.0),
        }
    }
}

/// A unary op under test: tapeflow's op, its f64 reference and its input domain.
trait UnaryUnderTest: Copy + std::fmt::Debug + 'static {
    fn apply(self, x: &Tensor) -> Result<Tensor>;
    fn f(self, x: f64) -> f64;
    fn domain(self) -> Domain;
}

impl UnaryUnderTest for Un {
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        Un::apply(self, x)
    }
    fn f(self, x: f64) -> f64 {
        Un::f(self, x)
    }
    fn domain(self) -> Domain {
        Un::domain(self)
    }
}

/// Scalar, empty, SIMD-remainder lengths (15, 16, 17, 31, 33) and a matrix.
fn unary_shape() -> impl Strategy<Value = Vec<usize>> {
    select(vec![vec![], vec![0], vec![2, 0], vec![15], vec![16], vec![17], vec![31], vec![33], vec![3, 5]])
}

fn unary_case<U: UnaryUnderTest>(op: U) -> impl Strategy<Value = (Vec<f64>, Vec<usize>, u64)> {
    unary_shape().prop_flat_map(move |dims| (op.domain().values(numel(&dims)), Just(dims), any::<u64>()))
}

fn check_unary_gradient<U: UnaryUnderTest>(op: U, prec: Prec, x: &[f64], dims: &[usize], seed: u64) -> Check {
    check_vjp(
        &format!("{op:?}"),
        prec,
        &[(x.to_vec(), dims.to_vec())],
        seed,
        |t| op.apply(&t[0]),
        |xs| (xs[0].iter().map(|&v| op.f(v)).collect(), dims.to_vec()),
    )
}

/// Second derivative through nested tapes: the inner tape gives `g₁ = u·f'(x)`, the outer
/// tape differentiates that with upstream `v`: `v·u·f''(x)`, elementwise. Compared with the
/// second central difference of the f64 reference `f`.
fn check_unary_second_derivative<U: UnaryUnderTest>(op: U, prec: Prec, x: &[f64], dims: &[usize], seed: u64) -> Check {
    let what = format!("{op:?} second derivative {prec:?} shape {dims:?}");
    let xs: Vec<f64> = x.iter().map(|&v| prec.round(v)).collect();
    let u = upstream(seed, xs.len(), prec);
    let v = upstream(seed ^ 0x5555_5555_5555_5555, xs.len(), prec);
    let xt = prec.tensor(&xs, dims);
    let (ut, vt) = (prec.tensor(&u, dims), prec.tensor(&v, dims));

    let outer = GradientTape::new();
    let g1 = outer
        .record(|| -> Result<Option<Tensor>> {
            outer.watch(&xt);
            let inner = GradientTape::new();
            let y = inner.record(|| {
                inner.watch(&xt);
                op.apply(&xt)
            })?;
            inner.gradient_with(&y, &xt, GradientOptions::default().output_gradients(vec![ut.clone()]))
        })
        .map_err(tf_err(&what))?;
    let Some(g1) = g1 else {
        return Err(TestCaseError::fail(format!("{what}: the inner tape gave no gradient")));
    };
    prop_assert_eq!(g1.dims(), dims, "{}: inner gradient shape", what);
    // Unconnected as zeros: where f'' ≡ 0 (neg) the inner gradient does not depend on x.
    let opts = GradientOptions::default().output_gradients(vec![vt]).unconnected(UnconnectedGradients::Zero);
    let g2 = outer.gradient_with(&g1, &xt, opts).map_err(tf_err(&what))?;
    let Some(g2) = g2 else {
        return Err(TestCaseError::fail(format!("{what}: the outer tape gave no gradient")));
    };
    prop_assert_eq!(g2.dims(), dims, "{}: second derivative shape", what);
    prop_assert_eq!(g2.dtype(), prec.dtype(), "{}: second derivative dtype", what);
    let got = g2.to_f64_vec();
    let tol = prec.tol();
    let mut worst = 0.0f64;
    for m in 0..xs.len() {
        let x = xs[m];
        let h = 1e-4 * x.abs().max(1.0);
        let h = (x + h) - x; // a step representable around x
        let f2 = (op.f(x + h) - 2.0 * op.f(x) + op.f(x - h)) / (h * h);
        let want = u[m] * v[m] * f2;
        worst = worst.max((got[m] - want).abs() / (tol * (1.0 + want.abs())));
        prop_assert!(
            close(got[m], want, tol),
            "{}: element {} at x = {} (u = {}, v = {}): got {} want {} (f'' ≈ {})",
            what,
            m,
            x,
            u[m],
            v[m],
            got[m],
            want,
            f2
        );
    }
    if report_enabled() {
        eprintln!("{what}: worst err/tol = {worst:.3}");
    }
    Ok(())
}

macro_rules! unary_properties {
    ($Enum:ident: $($op:ident => $f32_grad:ident, $f16_grad:ident, $f32_second:ident, $f16_second:ident;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $f32_grad((x, dims, seed) in unary_case($Enum::$op)) {
                    check_unary_gradient($Enum::$op, Prec::F32, &x, &dims, seed)?;
                }

                #[test]
                fn $f16_grad((x, dims, seed) in unary_case($Enum::$op)) {
                    check_unary_gradient($Enum::$op, Prec::F16, &x, &dims, seed)?;
                }

                #[test]
                fn $f32_second((x, dims, seed) in unary_case($Enum::$op)) {
                    check_unary_second_derivative($Enum::$op, Prec::F32, &x, &dims, seed)?;
                }

                #[test]
                fn $f16_second((x, dims, seed) in unary_case($Enum::$op)) {
                    check_unary_second_derivative($Enum::$op, Prec::F16, &x, &dims, seed)?;
                }
            )*
        }
    };
}

unary_properties! {
    Un:
    Neg => neg_gradient_matches_central_differences, neg_f16_gradient_matches_central_differences,
        neg_second_derivative_matches_second_differences, neg_f16_second_derivative_matches_second_differences;
    Abs => abs_gradient_matches_central_differences, abs_f16_gradient_matches_central_differences,
        abs_second_derivative_matches_second_differences, abs_f16_second_derivative_matches_second_differences;
    Exp => exp_gradient_matches_central_differences, exp_f16_gradient_matches_central_differences,
        exp_second_derivative_matches_second_differences, exp_f16_second_derivative_matches_second_differences;
    Log => log_gradient_matches_central_differences, log_f16_gradient_matches_central_differences,
        log_second_derivative_matches_second_differences, log_f16_second_derivative_matches_second_differences;
    Sqrt => sqrt_gradient_matches_central_differences, sqrt_f16_gradient_matches_central_differences,
        sqrt_second_derivative_matches_second_differences, sqrt_f16_second_derivative_matches_second_differences;
    Rsqrt => rsqrt_gradient_matches_central_differences, rsqrt_f16_gradient_matches_central_differences,
        rsqrt_second_derivative_matches_second_differences, rsqrt_f16_second_derivative_matches_second_differences;
    Square => square_gradient_matches_central_differences, square_f16_gradient_matches_central_differences,
        square_second_derivative_matches_second_differences, square_f16_second_derivative_matches_second_differences;
    Tanh => tanh_gradient_matches_central_differences, tanh_f16_gradient_matches_central_differences,
        tanh_second_derivative_matches_second_differences, tanh_f16_second_derivative_matches_second_differences;
    Sigmoid => sigmoid_gradient_matches_central_differences, sigmoid_f16_gradient_matches_central_differences,
        sigmoid_second_derivative_matches_second_differences, sigmoid_f16_second_derivative_matches_second_differences;
    Relu => relu_gradient_matches_central_differences, relu_f16_gradient_matches_central_differences,
        relu_second_derivative_matches_second_differences, relu_f16_second_derivative_matches_second_differences;
    Sin => sin_gradient_matches_central_differences, sin_f16_gradient_matches_central_differences,
        sin_second_derivative_matches_second_differences, sin_f16_second_derivative_matches_second_differences;
    Cos => cos_gradient_matches_central_differences, cos_f16_gradient_matches_central_differences,
        cos_second_derivative_matches_second_differences, cos_f16_second_derivative_matches_second_differences;
    Softplus => softplus_gradient_matches_central_differences, softplus_f16_gradient_matches_central_differences,
        softplus_second_derivative_matches_second_differences, softplus_f16_second_derivative_matches_second_differences;
    Log1p => log1p_gradient_matches_central_differences, log1p_f16_gradient_matches_central_differences,
        log1p_second_derivative_matches_second_differences, log1p_f16_second_derivative_matches_second_differences;
    Expm1 => expm1_gradient_matches_central_differences, expm1_f16_gradient_matches_central_differences,
        expm1_second_derivative_matches_second_differences, expm1_f16_second_derivative_matches_second_differences;
    Reciprocal => reciprocal_gradient_matches_central_differences, reciprocal_f16_gradient_matches_central_differences,
        reciprocal_second_derivative_matches_second_differences, reciprocal_f16_second_derivative_matches_second_differences;
}

// ---------------------------------------------------------------------------------------
// Binary ops with broadcasting.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
}

impl Bin {
    fn apply(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            Bin::Add => a.add(b),
            Bin::Sub => a.sub(b),
            Bin::Mul => a.mul(b),
            Bin::Div => a.div(b),
            Bin::Pow => a.pow(b),
            Bin::Maximum => a.maximum(b),
            Bin::Minimum => a.minimum(b),
        }
    }

    /// The f64 reference; partial derivatives (∂/∂a, ∂/∂b) in the comments.
    fn f(self, a: f64, b: f64) -> f64 {
        match self {
            Bin::Add => a + b,        // (1, 1)
            Bin::Sub => a - b,        // (1, −1)
            Bin::Mul => a * b,        // (b, a)
            Bin::Div => a / b,        // (1/b, −a/b²)
            Bin::Pow => a.powf(b),    // (b·a^(b−1), a^b·ln a), a > 0
            Bin::Maximum => a.max(b), // ([a > b], [b > a]), no ties
            Bin::Minimum => a.min(b), // ([a < b], [b < a]), no ties
        }
    }

    /// Float16 tolerance scale: see [`Scale::Terms`]. With float16 inputs, 1000 cases per
    /// op showed err/(tol·(1+|want|)) up to ~5 for div and ~3 for pow with broadcast
    /// operands (≤ 0.3 against the summed terms), and ≤ 0.6 for every other op.
    fn f16_scale(self) -> Scale {
        match self {
            Bin::Div | Bin::Pow => Scale::Terms,
            _ => Scale::Want,
        }
    }

    fn operands(self, na: usize, nb: usize) -> BoxedStrategy<(Vec<f64>, Vec<f64>)> {
        let any = Domain::range(-3.0, 3.0);
        match self {
            Bin::Add | Bin::Sub | Bin::Mul => (any.values(na), any.values(nb)).boxed(),
            // Divisor kept POLE_MARGIN away from 0.
            Bin::Div => (any.values(na), Domain::avoiding(-3.0, 3.0, 0.0, POLE_MARGIN).values(nb)).boxed(),
            // Positive base away from 0; exponents of both signs.
            Bin::Pow => (Domain::range(POLE_MARGIN, 4.0).values(na), Domain::range(-2.0, 3.0).values(nb)).boxed(),
            // Interleaved grids: |a − b| ≥ 0.02 for every broadcast pair.
            Bin::Maximum | Bin::Minimum => (grid_values(na, 0.05), grid_values(nb, 0.0)).boxed(),
        }
    }
}

fn binary_ref(op: Bin, a: &[f64], ad: &[usize], b: &[f64], bd: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let out_dims = broadcast_dims(ad, bd);
    let out = (0..numel(&out_dims))
        .map(|o| {
            let idx = unravel(o, &out_dims);
            op.f(a[broadcast_source(&idx, ad)], b[broadcast_source(&idx, bd)])
        })
        .collect();
    (out, out_dims)
}

/// Same shapes, the broadcast pairs of the brief in both orders, and empty operands.
fn binary_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    select(vec![
        (vec![], vec![]),
        (vec![17], vec![17]),
        (vec![33], vec![33]),
        (vec![3, 1], vec![4]),
        (vec![4], vec![3, 1]),
        (vec![], vec![5]),
        (vec![5], vec![]),
        (vec![2, 1, 3], vec![4, 1]),
        (vec![4, 1], vec![2, 1, 3]),
        (vec![16], vec![3, 1]),
        (vec![0], vec![]),
        (vec![2, 0], vec![1]),
        (vec![2, 0], vec![0]),
    ])
}

type BinaryCase = ((Vec<usize>, Vec<usize>), (Vec<f64>, Vec<f64>), u64);

fn binary_case(op: Bin) -> impl Strategy<Value = BinaryCase> {
    binary_shapes().prop_flat_map(move |(ad, bd)| {
        let ops = op.operands(numel(&ad), numel(&bd));
        (Just((ad, bd)), ops, any::<u64>())
    })
}

fn check_binary(op: Bin, prec: Prec, dims: &(Vec<usize>, Vec<usize>), vals: &(Vec<f64>, Vec<f64>), seed: u64) -> Check {
    let (ad, bd) = dims.clone();
    let scale = if prec == Prec::F16 { op.f16_scale() } else { Scale::Want };
    check_vjp_scaled(
        &format!("{op:?}"),
        prec,
        scale,
        &[(vals.0.clone(), ad.clone()), (vals.1.clone(), bd.clone())],
        seed,
        |t| op.apply(&t[0], &t[1]),
        |xs| binary_ref(op, &xs[0], &ad, &xs[1], &bd),
    )
}

macro_rules! binary_properties {
    ($($op:ident => $f32_grad:ident, $f16_grad:ident;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $f32_grad((dims, vals, seed) in binary_case(Bin::$op)) {
                    check_binary(Bin::$op, Prec::F32, &dims, &vals, seed)?;
                }

                #[test]
                fn $f16_grad((dims, vals, seed) in binary_case(Bin::$op)) {
                    check_binary(Bin::$op, Prec::F16, &dims, &vals, seed)?;
                }
            )*
        }
    };
}

binary_properties! {
    Add => add_gradient_matches_central_differences, add_f16_gradient_matches_central_differences;
    Sub => sub_gradient_matches_central_differences, sub_f16_gradient_matches_central_differences;
    Mul => mul_gradient_matches_central_differences, mul_f16_gradient_matches_central_differences;
    Div => div_gradient_matches_central_differences, div_f16_gradient_matches_central_differences;
    Pow => pow_gradient_matches_central_differences, pow_f16_gradient_matches_central_differences;
    Maximum => maximum_gradient_matches_central_differences, maximum_f16_gradient_matches_central_differences;
    Minimum => minimum_gradient_matches_central_differences, minimum_f16_gradient_matches_central_differences;
}

// ---------------------------------------------------------------------------------------
// The elementwise math of the second catalog: unary ops (leaky_relu and clip_by_value with
// fixed attributes), squared_difference, atan2 and floormod.
// ---------------------------------------------------------------------------------------

/// TensorFlow's selu constants.
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;

#[derive(Clone, Copy, Debug)]
enum Math {
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Erf,
    Erfc,
    LogSigmoid,
    Softsign,
    Elu,
    Selu,
    Relu6,
    Silu,
    Gelu,
    GeluTanh,
    LeakyRelu,
    Clip,
}

impl UnaryUnderTest for Math {
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Math::Tan => x.tan(),
            Math::Asin => x.asin(),
            Math::Acos => x.acos(),
            Math::Atan => x.atan(),
            Math::Sinh => x.sinh(),
            Math::Cosh => x.cosh(),
            Math::Asinh => x.asinh(),
            Math::Acosh => x.acosh(),
            Math::Atanh => x.atanh(),
            Math::Erf => x.erf(),
            Math::Erfc => x.erfc(),
            Math::LogSigmoid => x.log_sigmoid(),
            Math::Softsign => x.softsign(),
            Math::Elu => x.elu(),
            Math::Selu => x.selu(),
            Math::Relu6 => x.relu6(),
            Math::Silu => x.silu(),
            Math::Gelu => x.gelu(false),
            Math::GeluTanh => x.gelu(true),
            Math::LeakyRelu => x.leaky_relu(0.2),
            Math::Clip => x.clip_by_value(-1.0, 1.5),
        }
    }

    /// The f64 reference; derivatives in the comments.
    fn f(self, x: f64) -> f64 {
        match self {
            Math::Tan => x.tan(),        // f' = sec² x, f'' = 2 sec² x tan x
            Math::Asin => x.asin(),      // f' = 1/√(1 − x²), f'' = x/(1 − x²)^(3/2)
            Math::Acos => x.acos(),      // f' = −1/√(1 − x²)
            Math::Atan => x.atan(),      // f' = 1/(1 + x²), f'' = −2x/(1 + x²)²
            Math::Sinh => x.sinh(),      // f' = cosh x, f'' = sinh x
            Math::Cosh => x.cosh(),      // f' = sinh x, f'' = cosh x
            Math::Asinh => x.asinh(),    // f' = 1/√(x² + 1)
            Math::Acosh => x.acosh(),    // f' = 1/√(x² − 1), a pole at 1
            Math::Atanh => x.atanh(),    // f' = 1/(1 − x²), f'' = 2x/(1 − x²)²
            Math::Erf => libm::erf(x),   // f' = 2/√π·e^(−x²), f'' = −2x·f'
            Math::Erfc => libm::erfc(x), // f' = −2/√π·e^(−x²)
            Math::LogSigmoid => -((-x).max(0.0) + (-x.abs()).exp().ln_1p()), // f' = sigmoid(−x), f'' = −s(1 − s)
            Math::Softsign => x / (1.0 + x.abs()), // f' = 1/(1 + |x|)², f'' jumps at 0
            Math::Elu => {
                if x < 0.0 {
                    x.exp_m1()
                } else {
                    x
                }
            } // f' = eˣ below 0, 1 above; f'' jumps at 0
            Math::Selu => SELU_SCALE * if x < 0.0 { SELU_ALPHA * x.exp_m1() } else { x }, // f' jumps at 0 (scale·alpha vs scale)
            Math::Relu6 => x.clamp(0.0, 6.0),     // f' = [0 < x < 6], kinks at 0 and 6
            Math::Silu => x / (1.0 + (-x).exp()), // f' = s(1 + x(1 − s))
            Math::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)), // f' = Φ(x) + x·φ(x)
            Math::GeluTanh => 0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x)).tanh()), // the tanh approximation
            Math::LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    0.2 * x
                }
            } // f' = 1 above 0, 0.2 below
            Math::Clip => x.clamp(-1.0, 1.5), // f' = [−1 < x < 1.5]
        }
    }

    fn domain(self) -> Domain {
        match self {
            Math::Tan => Domain::range(-1.4, 1.4),
            Math::Asin => Domain::range(-0.9, 0.9),
            Math::Acos => Domain::range(-0.9, 0.9),
            Math::Atan => Domain::range(-5.0, 5.0),
            Math::Sinh => Domain::range(-4.0, 4.0),
            Math::Cosh => Domain::range(-4.0, 4.0),
            Math::Asinh => Domain::range(-5.0, 5.0),
            Math::Acosh => Domain::range(1.0 + 2.0 * POLE_MARGIN, 6.0),
            Math::Atanh => Domain::range(-0.9, 0.9),
            Math::Erf => Domain::range(-3.0, 3.0),
            Math::Erfc => Domain::range(-3.0, 3.0),
            Math::LogSigmoid => Domain::range(-5.0, 5.0),
            Math::Softsign => Domain::avoiding(-5.0, 5.0, 0.0, KINK_MARGIN),
            Math::Elu => Domain::avoiding(-5.0, 5.0, 0.0, KINK_MARGIN),
            Math::Selu => Domain::avoiding(-5.0, 5.0, 0.0, KINK_MARGIN),
            Math::Relu6 => Domain::avoiding_two(-3.0, 9.0, 0.0, 6.0, KINK_MARGIN),
            Math::Silu => Domain::range(-5.0, 5.0),
            // Beyond ±2.5 the float16 rules (every intermediate rounded to float16, as in
            // TensorFlow) lose the small second derivative to 1 − tanh² and 1 + erf
            // cancelling: an absolute error of 5e-3 at x = 3.6.
            Math::Gelu => Domain::range(-2.5, 2.5),
            Math::GeluTanh => Domain::range(-2.5, 2.5),
            Math::LeakyRelu => Domain::avoiding(-5.0, 5.0, 0.0, KINK_MARGIN),
            Math::Clip => Domain::avoiding_two(-3.0, 3.0, -1.0, 1.5, KINK_MARGIN),
        }
    }
}

unary_properties! {
    Math:
    Tan => tan_gradient_matches_central_differences, tan_f16_gradient_matches_central_differences,
        tan_second_derivative_matches_second_differences, tan_f16_second_derivative_matches_second_differences;
    Asin => asin_gradient_matches_central_differences, asin_f16_gradient_matches_central_differences,
        asin_second_derivative_matches_second_differences, asin_f16_second_derivative_matches_second_differences;
    Acos => acos_gradient_matches_central_differences, acos_f16_gradient_matches_central_differences,
        acos_second_derivative_matches_second_differences, acos_f16_second_derivative_matches_second_differences;
    Atan => atan_gradient_matches_central_differences, atan_f16_gradient_matches_central_differences,
        atan_second_derivative_matches_second_differences, atan_f16_second_derivative_matches_second_differences;
    Sinh => sinh_gradient_matches_central_differences, sinh_f16_gradient_matches_central_differences,
        sinh_second_derivative_matches_second_differences, sinh_f16_second_derivative_matches_second_differences;
    Cosh => cosh_gradient_matches_central_differences, cosh_f16_gradient_matches_central_differences,
        cosh_second_derivative_matches_second_differences, cosh_f16_second_derivative_matches_second_differences;
    Asinh => asinh_gradient_matches_central_differences, asinh_f16_gradient_matches_central_differences,
        asinh_second_derivative_matches_second_differences, asinh_f16_second_derivative_matches_second_differences;
    Acosh => acosh_gradient_matches_central_differences, acosh_f16_gradient_matches_central_differences,
        acosh_second_derivative_matches_second_differences, acosh_f16_second_derivative_matches_second_differences;
    Atanh => atanh_gradient_matches_central_differences, atanh_f16_gradient_matches_central_differences,
        atanh_second_derivative_matches_second_differences, atanh_f16_second_derivative_matches_second_differences;
    Erf => erf_gradient_matches_central_differences, erf_f16_gradient_matches_central_differences,
        erf_second_derivative_matches_second_differences, erf_f16_second_derivative_matches_second_differences;
    Erfc => erfc_gradient_matches_central_differences, erfc_f16_gradient_matches_central_differences,
        erfc_second_derivative_matches_second_differences, erfc_f16_second_derivative_matches_second_differences;
    LogSigmoid => log_sigmoid_gradient_matches_central_differences, log_sigmoid_f16_gradient_matches_central_differences,
        log_sigmoid_second_derivative_matches_second_differences, log_sigmoid_f16_second_derivative_matches_second_differences;
    Softsign => softsign_gradient_matches_central_differences, softsign_f16_gradient_matches_central_differences,
        softsign_second_derivative_matches_second_differences, softsign_f16_second_derivative_matches_second_differences;
    Elu => elu_gradient_matches_central_differences, elu_f16_gradient_matches_central_differences,
        elu_second_derivative_matches_second_differences, elu_f16_second_derivative_matches_second_differences;
    Selu => selu_gradient_matches_central_differences, selu_f16_gradient_matches_central_differences,
        selu_second_derivative_matches_second_differences, selu_f16_second_derivative_matches_second_differences;
    Relu6 => relu6_gradient_matches_central_differences, relu6_f16_gradient_matches_central_differences,
        relu6_second_derivative_matches_second_differences, relu6_f16_second_derivative_matches_second_differences;
    Silu => silu_gradient_matches_central_differences, silu_f16_gradient_matches_central_differences,
        silu_second_derivative_matches_second_differences, silu_f16_second_derivative_matches_second_differences;
    Gelu => gelu_gradient_matches_central_differences, gelu_f16_gradient_matches_central_differences,
        gelu_second_derivative_matches_second_differences, gelu_f16_second_derivative_matches_second_differences;
    GeluTanh => gelu_tanh_gradient_matches_central_differences, gelu_tanh_f16_gradient_matches_central_differences,
        gelu_tanh_second_derivative_matches_second_differences, gelu_tanh_f16_second_derivative_matches_second_differences;
    LeakyRelu => leaky_relu_gradient_matches_central_differences, leaky_relu_f16_gradient_matches_central_differences,
        leaky_relu_second_derivative_matches_second_differences, leaky_relu_f16_second_derivative_matches_second_differences;
    Clip => clip_gradient_matches_central_differences, clip_f16_gradient_matches_central_differences,
        clip_second_derivative_matches_second_differences, clip_f16_second_derivative_matches_second_differences;
}

/// `f` of two broadcast operands, as [`binary_ref`] for the ops of this section.
fn broadcast_ref(f: fn(f64, f64) -> f64, a: &[f64], ad: &[usize], b: &[f64], bd: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let out_dims = broadcast_dims(ad, bd);
    let out = (0..numel(&out_dims))
        .map(|o| {
            let idx = unravel(o, &out_dims);
            f(a[broadcast_source(&idx, ad)], b[broadcast_source(&idx, bd)])
        })
        .collect();
    (out, out_dims)
}

/// (a − b)²: d/da = 2(a − b), d/db = −2(a − b).
fn squared_difference_f(a: f64, b: f64) -> f64 {
    (a - b) * (a - b)
}

/// atan2(a, b): d/da = b/(a² + b²), d/db = −a/(a² + b²); a kept away from 0 (the branch
/// cut for b < 0) and b from 0.
fn atan2_f(a: f64, b: f64) -> f64 {
    a.atan2(b)
}

fn check_math_binary(
    name: &str,
    f: fn(f64, f64) -> f64,
    prec: Prec,
    dims: &(Vec<usize>, Vec<usize>),
    vals: &(Vec<f64>, Vec<f64>),
    seed: u64,
    op: fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Check {
    let (ad, bd) = dims.clone();
    // float16 gradients of broadcast operands sum f16-rounded terms (up to |2u(a − b)| = 12
    // for squared_difference) that can cancel: measured against the terms, as div and pow.
    let scale = if prec == Prec::F16 { Scale::Terms } else { Scale::Want };
    check_vjp_scaled(
        name,
        prec,
        scale,
        &[(vals.0.clone(), ad.clone()), (vals.1.clone(), bd.clone())],
        seed,
        |t| op(&t[0], &t[1]),
        |xs| broadcast_ref(f, &xs[0], &ad, &xs[1], &bd),
    )
}

fn math_binary_case(a: Domain, b: Domain) -> impl Strategy<Value = BinaryCase> {
    binary_shapes().prop_flat_map(move |(ad, bd)| {
        let vals = (a.values(numel(&ad)), b.values(numel(&bd)));
        (Just((ad, bd)), vals, any::<u64>())
    })
}

/// floormod(a, b) = a − floor(a/b)·b: d/da = 1, d/db = −floor(a/b), away from the jumps
/// where a/b is an integer. The operands have one shape (a = b·(k + f) with the fraction f
/// in [0.1, 0.9], so a ± h never crosses a jump); broadcasting is the shared reduction of
/// every binary op, tested above.
fn floormod_case() -> impl Strategy<Value = (Vec<usize>, Vec<f64>, Vec<f64>, u64)> {
    unary_shape().prop_flat_map(|dims| {
        let n = numel(&dims);
        let b = vec(prop_oneof![-2.0f64..-0.5, 0.5f64..2.0], n);
        let kf = vec((-3i32..3, 0.1f64..0.9), n);
        (Just(dims), b, kf, any::<u64>()).prop_map(|(dims, b, kf, seed)| {
            let a = b.iter().zip(&kf).map(|(&b, &(k, f))| b * (f64::from(k) + f)).collect();
            (dims, a, b, seed)
        })
    })
}

fn check_floormod(prec: Prec, dims: &[usize], a: &[f64], b: &[f64], seed: u64) -> Check {
    // Rounded to the precision first, the quotients' fractions stay well inside (0, 1).
    check_vjp(
        "floormod",
        prec,
        &[(a.to_vec(), dims.to_vec()), (b.to_vec(), dims.to_vec())],
        seed,
        |t| t[0].floormod(&t[1]),
        |xs| (xs[0].iter().zip(&xs[1]).map(|(&a, &b)| a - (a / b).floor() * b).collect(), dims.to_vec()),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn squared_difference_gradient_matches_central_differences((dims, vals, seed) in math_binary_case(Domain::range(-3.0, 3.0), Domain::range(-3.0, 3.0))) {
        check_math_binary("squared_difference", squared_difference_f, Prec::F32, &dims, &vals, seed, |a, b| a.squared_difference(b))?;
    }

    #[test]
    fn squared_difference_f16_gradient_matches_central_differences((dims, vals, seed) in math_binary_case(Domain::range(-3.0, 3.0), Domain::range(-3.0, 3.0))) {
        check_math_binary("squared_difference", squared_difference_f, Prec::F16, &dims, &vals, seed, |a, b| a.squared_difference(b))?;
    }

    #[test]
    fn atan2_gradient_matches_central_differences((dims, vals, seed) in math_binary_case(Domain::avoiding(-3.0, 3.0, 0.0, 0.2), Domain::avoiding(-3.0, 3.0, 0.0, 0.2))) {
        check_math_binary("atan2", atan2_f, Prec::F32, &dims, &vals, seed, |a, b| a.atan2(b))?;
    }

    #[test]
    fn atan2_f16_gradient_matches_central_differences((dims, vals, seed) in math_binary_case(Domain::avoiding(-3.0, 3.0, 0.0, 0.2), Domain::avoiding(-3.0, 3.0, 0.0, 0.2))) {
        check_math_binary("atan2", atan2_f, Prec::F16, &dims, &vals, seed, |a, b| a.atan2(b))?;
    }

    #[test]
    fn floormod_gradient_matches_central_differences((dims, a, b, seed) in floormod_case()) {
        check_floormod(Prec::F32, &dims, &a, &b, seed)?;
    }

    #[test]
    fn floormod_f16_gradient_matches_central_differences((dims, a, b, seed) in floormod_case()) {
        check_floormod(Prec::F16, &dims, &a, &b, seed)?;
    }
}

// ---------------------------------------------------------------------------------------
// select (tf.where): the condition is a bool constant; x and y are differentiated.
// ---------------------------------------------------------------------------------------

/// (cond, x, y) shapes: equal, each one broadcast, all three broadcast, empty.
fn select_shapes() -> impl Strategy<Value = [Vec<usize>; 3]> {
    select(vec![
        [vec![17], vec![17], vec![17]],
        [vec![3, 4], vec![3, 4], vec![]],
        [vec![4], vec![3, 4], vec![3, 1]],
        [vec![3, 1], vec![4], vec![3, 4]],
        [vec![], vec![2, 3], vec![3]],
        [vec![2, 1, 3], vec![4, 1], vec![3]],
        [vec![0, 3], vec![3], vec![1]],
    ])
}

type SelectCase = ([Vec<usize>; 3], Vec<bool>, (Vec<f64>, Vec<f64>), u64);

fn select_case() -> impl Strategy<Value = SelectCase> {
    select_shapes().prop_flat_map(|dims| {
        let domain = Domain::range(-3.0, 3.0);
        let cond = proptest::collection::vec(any::<bool>(), numel(&dims[0]));
        let values = (domain.values(numel(&dims[1])), domain.values(numel(&dims[2])));
        (Just(dims), cond, values, any::<u64>())
    })
}

fn check_select(prec: Prec, case: &SelectCase) -> Check {
    let (dims, cond, (x, y), seed) = case;
    let mask = Tensor::from_vec(cond.clone(), dims[0].clone()).expect("cond fills its shape");
    check_vjp(
        "select",
        prec,
        &[(x.clone(), dims[1].clone()), (y.clone(), dims[2].clone())],
        *seed,
        |t| tapeflow::select(&mask, &t[0], &t[1]),
        |xs| {
            // d/dx = [cond], d/dy = [!cond], each summed over its broadcast axes.
            let out = broadcast_dims(&broadcast_dims(&dims[0], &dims[1]), &dims[2]);
            let values = (0..numel(&out))
                .map(|o| {
                    let idx = unravel(o, &out);
                    let c = cond[broadcast_source(&idx, &dims[0])];
                    if c { xs[0][broadcast_source(&idx, &dims[1])] } else { xs[1][broadcast_source(&idx, &dims[2])] }
                })
                .collect();
            (values, out)
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn select_gradient_matches_central_differences(case in select_case()) {
        check_select(Prec::F32, &case)?;
    }

    #[test]
    fn select_f16_gradient_matches_central_differences(case in select_case()) {
        check_select(Prec::F16, &case)?;
    }
}

// ---------------------------------------------------------------------------------------
// Reductions.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Red {
    Sum,
    Mean,
    Max,
}

/// `axes = None` reduces everything (`sum_all` …); `Some(&[])` reduces nothing.
fn reduce_ref(op: Red, x: &[f64], dims: &[usize], axes: Option<&[isize]>, keepdims: bool) -> (Vec<f64>, Vec<usize>) {
    let rank = dims.len();
    let mut reduced = vec![axes.is_none(); rank];
    for &ax in axes.unwrap_or(&[]) {
        reduced[if ax < 0 { (ax + rank as isize) as usize } else { ax as usize }] = true;
    }
    let kept: Vec<usize> = dims.iter().zip(&reduced).map(|(&d, &r)| if r { 1 } else { d }).collect();
    let count: usize = dims.iter().zip(&reduced).filter(|(_, r)| **r).map(|(d, _)| *d).product();
    let init = match op {
        Red::Max => f64::NEG_INFINITY,
        _ => 0.0,
    };
    let mut acc = vec![init; numel(&kept)];
    for (flat, &v) in x.iter().enumerate() {
        let mut idx = unravel(flat, dims);
        for (d, &r) in reduced.iter().enumerate() {
            if r {
                idx[d] = 0;
            }
        }
        let o = ravel(&idx, &kept);
        acc[o] = match op {
            Red::Max => acc[o].max(v),
            _ => acc[o] + v,
        };
    }
    if let Red::Mean = op {
        for a in &mut acc {
            *a /= count as f64; // 0/0 = NaN for an empty reduction, as TF
        }
    }
    let out_dims =
        if keepdims { kept } else { dims.iter().zip(&reduced).filter(|(_, r)| !**r).map(|(&d, _)| d).collect() };
    (acc, out_dims)
}

type ReduceCase = (Vec<usize>, Option<Vec<isize>>, bool, Vec<f64>, u64);

/// A shape, a set of axes (each chosen axis written as a positive or negative index; or
/// `None` for the `*_all` form), keepdims, and distinct values (no max ties).
fn reduce_case() -> impl Strategy<Value = ReduceCase> {
    select(vec![vec![], vec![17], vec![33], vec![3, 5], vec![2, 3, 4], vec![4, 1, 16], vec![0], vec![2, 0], vec![0, 3]])
        .prop_flat_map(|dims| {
            let rank = dims.len();
            let n = numel(&dims);
            let axes = prop_oneof![
                1 => Just(None),
                4 => (vec(any::<bool>(), rank), vec(any::<bool>(), rank)).prop_map(move |(pick, negative)| {
                    Some(
                        (0..rank)
                            .filter(|&d| pick[d])
                            .map(|d| if negative[d] { d as isize - rank as isize } else { d as isize })
                            .collect::<Vec<_>>(),
                    )
                }),
            ];
            (Just(dims), axes, any::<bool>(), distinct_values(n), any::<u64>())
        })
}

fn check_reduce(op: Red, prec: Prec, case: &ReduceCase) -> Check {
    let (dims, axes, keepdims, x, seed) = case.clone();
    let keepdims = keepdims && axes.is_some(); // the *_all forms have no keepdims
    check_vjp(
        &format!("{op:?} axes {axes:?} keepdims {keepdims}"),
        prec,
        &[(x, dims.clone())],
        seed,
        |t| match (&axes, op) {
            (None, Red::Sum) => t[0].sum_all(),
            (None, Red::Mean) => t[0].mean_all(),
            (None, Red::Max) => t[0].max_all(),
            (Some(a), Red::Sum) => t[0].sum(a, keepdims),
            (Some(a), Red::Mean) => t[0].mean(a, keepdims),
            (Some(a), Red::Max) => t[0].max(a, keepdims),
        },
        |xs| reduce_ref(op, &xs[0], &dims, axes.as_deref(), keepdims),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sum_gradient_matches_central_differences(case in reduce_case()) {
        check_reduce(Red::Sum, Prec::F32, &case)?;
    }

    #[test]
    fn sum_f16_gradient_matches_central_differences(case in reduce_case()) {
        check_reduce(Red::Sum, Prec::F16, &case)?;
    }

    #[test]
    fn mean_gradient_matches_central_differences(case in reduce_case()) {
        check_reduce(Red::Mean, Prec::F32, &case)?;
    }

    #[test]
    fn mean_f16_gradient_matches_central_differences(case in reduce_case()) {
        check_reduce(Red::Mean, Prec::F16, &case)?;
    }

    #[test]
    fn max_gradient_matches_central_differences(case in reduce_case()) {
        check_reduce(Red::Max, Prec::F32, &case)?;
    }

    #[test]
    fn max_f16_gradient_matches_central_differences(case in reduce_case()) {
        check_reduce(Red::Max, Prec::F16, &case)?;
    }
}

// ---------------------------------------------------------------------------------------
// Catalog II reductions and scans: min, prod, logsumexp, variance, std; cumsum, cumprod.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Red2 {
    Min,
    Prod,
    LogSumExp,
    Variance,
    Std,
}

impl Red2 {
    /// The f64 reference of one reduction slice.
    fn slice(self, v: &[f64]) -> f64 {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        match self {
            Red2::Min => v.iter().cloned().fold(f64::INFINITY, f64::min), // d = [x = min]
            Red2::Prod => v.iter().product(),                             // d = Π_{j≠i} x_j
            Red2::LogSumExp if v.is_empty() => f64::NEG_INFINITY,
            Red2::LogSumExp => log_sum_exp(v), // d = softmax(v)
            Red2::Variance => var,             // d = 2 (x − mean) / n
            Red2::Std => var.sqrt(),           // d = (x − mean) / (n · std)
        }
    }

    /// tapeflow's op; `axes = None` is the `*_all` form (every axis for the ops without one).
    fn apply(self, x: &Tensor, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
        let all: Vec<isize> = (0..x.rank() as isize).collect();
        match (self, axes) {
            (Red2::Min, None) => x.min_all(),
            (Red2::Prod, None) => x.prod_all(),
            (Red2::Min, Some(a)) => x.min(a, keepdims),
            (Red2::Prod, Some(a)) => x.prod(a, keepdims),
            (Red2::LogSumExp, a) => x.logsumexp(a.unwrap_or(&all), keepdims),
            (Red2::Variance, a) => x.variance(a.unwrap_or(&all), keepdims),
            (Red2::Std, a) => x.std(a.unwrap_or(&all), keepdims),
        }
    }
}

/// Each output of a reduction over `axes` (`None`: all) as `f` of its slice of `x`.
fn slices_ref(
    x: &[f64],
    dims: &[usize],
    axes: Option<&[isize]>,
    keepdims: bool,
    f: impl Fn(&[f64]) -> f64,
) -> (Vec<f64>, Vec<usize>) {
    let rank = dims.len();
    let mut reduced = vec![axes.is_none(); rank];
    for &ax in axes.unwrap_or(&[]) {
        reduced[if ax < 0 { (ax + rank as isize) as usize } else { ax as usize }] = true;
    }
    let kept: Vec<usize> = dims.iter().zip(&reduced).map(|(&d, &r)| if r { 1 } else { d }).collect();
    let mut slices = vec![Vec::new(); numel(&kept)];
    for (flat, &v) in x.iter().enumerate() {
        let mut idx = unravel(flat, dims);
        for (d, &r) in reduced.iter().enumerate() {
            if r {
                idx[d] = 0;
            }
        }
        slices[ravel(&idx, &kept)].push(v);
    }
    let out_dims =
        if keepdims { kept } else { dims.iter().zip(&reduced).filter(|(_, r)| !**r).map(|(&d, _)| d).collect() };
    (slices.iter().map(|s| f(s)).collect(), out_dims)
}

/// The number of elements each output of a reduction over `axes` reduces.
fn slice_len(dims: &[usize], axes: Option<&[isize]>) -> usize {
    match axes {
        None => numel(dims),
        Some(a) => {
            a.iter().map(|&ax| dims[if ax < 0 { (ax + dims.len() as isize) as usize } else { ax as usize }]).product()
        }
    }
}

/// Values at least 0.3 from 0 and at most 1.2 in magnitude: products of 33 stay within
/// float16's range, and the second derivative of cumprod (which divides by x) is exact.
fn product_values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    Domain::avoiding(-1.2, 1.2, 0.0, 0.3).values(n)
}

fn red2_case(op: Red2) -> impl Strategy<Value = ReduceCase> {
    reduce_case().prop_flat_map(move |(dims, axes, keepdims, x, seed)| {
        let n = x.len();
        let values = if op == Red2::Prod { product_values(n).boxed() } else { Just(x).boxed() };
        (Just(dims), Just(axes), Just(keepdims), values, Just(seed))
    })
}

fn check_red2(op: Red2, prec: Prec, case: &ReduceCase) -> Check {
    let (dims, axes, keepdims, x, seed) = case.clone();
    // std has a kink where a slice's variance is 0: a slice of one element (TF's gradient
    // there is NaN, the finite difference 0).
    if op == Red2::Std && slice_len(&dims, axes.as_deref()) == 1 && numel(&dims) > 0 {
        return Ok(());
    }
    let keepdims = keepdims && (axes.is_some() || !matches!(op, Red2::Min | Red2::Prod));
    check_vjp(
        &format!("{op:?} axes {axes:?} keepdims {keepdims}"),
        prec,
        &[(x, dims.clone())],
        seed,
        |t| op.apply(&t[0], axes.as_deref(), keepdims),
        |xs| slices_ref(&xs[0], &dims, axes.as_deref(), keepdims, |s| op.slice(s)),
    )
}

/// The cumulative sum or product of one lane, as `tf.math.cumsum(exclusive, reverse)`.
fn scan_lane(prod: bool, exclusive: bool, reverse: bool, v: &[f64]) -> Vec<f64> {
    let n = v.len();
    let mut out = vec![0.0; n];
    let mut acc = if prod { 1.0 } else { 0.0 };
    for i in 0..n {
        let k = if reverse { n - 1 - i } else { i };
        let before = acc;
        acc = if prod { acc * v[k] } else { acc + v[k] };
        out[k] = if exclusive { before } else { acc };
    }
    out
}

type ScanCase = (Vec<usize>, isize, bool, bool, Vec<f64>, u64);

fn scan_case(prod: bool) -> impl Strategy<Value = ScanCase> {
    select(vec![
        vec![1],
        vec![5],
        vec![17],
        vec![33],
        vec![3, 4],
        vec![2, 3, 4],
        vec![4, 1, 16],
        vec![0, 3],
        vec![2, 0],
    ])
    .prop_flat_map(move |dims| {
        let rank = dims.len() as isize;
        let n = numel(&dims);
        let values = if prod { product_values(n).boxed() } else { Domain::range(-5.0, 5.0).values(n).boxed() };
        (Just(dims), -rank..rank, any::<bool>(), any::<bool>(), values, any::<u64>())
    })
}

fn check_scan(prod: bool, prec: Prec, case: &ScanCase) -> Check {
    let (dims, axis, exclusive, reverse, x, seed) = case.clone();
    check_vjp(
        &format!("{} axis {axis} exclusive {exclusive} reverse {reverse}", if prod { "cumprod" } else { "cumsum" }),
        prec,
        &[(x, dims.clone())],
        seed,
        |t| if prod { t[0].cumprod(axis, exclusive, reverse) } else { t[0].cumsum(axis, exclusive, reverse) },
        |xs| (along_axis(&xs[0], &dims, axis, |v| scan_lane(prod, exclusive, reverse, v)), dims.clone()),
    )
}

/// Second order through nested tapes for any op: the inner tape gives `g₁ = ∂F/∂x` with
/// `F = Σ u·op(x)`, the outer one `∂(Σ v·g₁)/∂x`. The reference differentiates twice by
/// central differences: `D(x) = Σ v·∂F/∂x ≈ (F(x + h v) − F(x − h v)) / 2h` (a directional
/// derivative), then `∂D/∂x_k` by a central difference in `x_k`, both steps
/// `h = 1e-4 · max(1, |x|)` (truncation ~h², rounding ~ε·|F|/h² ≈ 1e-8). float32 only.
fn check_second_order(
    name: &str,
    x: &[f64],
    dims: &[usize],
    seed: u64,
    op: impl Fn(&Tensor) -> Result<Tensor>,
    reference: impl Fn(&[f64]) -> Vec<f64>,
) -> Check {
    let prec = Prec::F32;
    let what = format!("{name} second order shape {dims:?}");
    let xs: Vec<f64> = x.iter().map(|&v| prec.round(v)).collect();
    let xt = prec.tensor(&xs, dims);
    let out_len = reference(&xs).len();
    let u = upstream(seed, out_len, prec);
    let v = upstream(seed ^ 0x5555_5555_5555_5555, xs.len(), prec);
    let outer = GradientTape::new();
    let g1 = outer
        .record(|| -> Result<Option<Tensor>> {
            outer.watch(&xt);
            let inner = GradientTape::new();
            let y = inner.record(|| {
                inner.watch(&xt);
                op(&xt)
            })?;
            let seed = prec.tensor(&u, y.dims());
            inner.gradient_with(&y, &xt, GradientOptions::default().output_gradients(vec![seed]))
        })
        .map_err(tf_err(&what))?;
    let Some(g1) = g1 else {
        return Err(TestCaseError::fail(format!("{what}: the inner tape gave no gradient")));
    };
    let opts = GradientOptions::default()
        .output_gradients(vec![prec.tensor(&v, dims)])
        .unconnected(UnconnectedGradients::Zero);
    let Some(g2) = outer.gradient_with(&g1, &xt, opts).map_err(tf_err(&what))? else {
        return Err(TestCaseError::fail(format!("{what}: the outer tape gave no gradient")));
    };
    prop_assert_eq!(g2.dims(), dims, "{}: second derivative shape", what);
    let got = g2.to_f64_vec();
    let f = |x: &[f64]| reference(x).iter().zip(&u).map(|(y, u)| y * u).sum::<f64>();
    let scale = xs.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let h = 1e-4 * scale;
    let directional = |x: &[f64]| {
        let plus: Vec<f64> = x.iter().zip(&v).map(|(x, v)| x + h * v).collect();
        let minus: Vec<f64> = x.iter().zip(&v).map(|(x, v)| x - h * v).collect();
        (f(&plus) - f(&minus)) / (2.0 * h)
    };
    for k in 0..xs.len() {
        let hk = 1e-4 * xs[k].abs().max(1.0);
        let (mut plus, mut minus) = (xs.clone(), xs.clone());
        plus[k] += hk;
        minus[k] -= hk;
        let want = (directional(&plus) - directional(&minus)) / (plus[k] - minus[k]);
        prop_assert!(
            close(got[k], want, prec.tol()),
            "{}: element {} (x = {}): got {} want {}\n  inputs: {}",
            what,
            k,
            xs[k],
            got[k],
            want,
            show(&xs)
        );
    }
    Ok(())
}

/// Small shapes for the second-order checks (4·n² reference evaluations each).
fn second_order_case(op: Red2) -> impl Strategy<Value = ReduceCase> {
    red2_case(op).prop_filter("small", |(dims, ..)| numel(dims) <= 24)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn min_gradient_matches_central_differences(case in red2_case(Red2::Min)) {
        check_red2(Red2::Min, Prec::F32, &case)?;
    }

    #[test]
    fn min_f16_gradient_matches_central_differences(case in red2_case(Red2::Min)) {
        check_red2(Red2::Min, Prec::F16, &case)?;
    }

    #[test]
    fn prod_gradient_matches_central_differences(case in red2_case(Red2::Prod)) {
        check_red2(Red2::Prod, Prec::F32, &case)?;
    }

    #[test]
    fn prod_f16_gradient_matches_central_differences(case in red2_case(Red2::Prod)) {
        check_red2(Red2::Prod, Prec::F16, &case)?;
    }

    #[test]
    fn logsumexp_gradient_matches_central_differences(case in red2_case(Red2::LogSumExp)) {
        check_red2(Red2::LogSumExp, Prec::F32, &case)?;
    }

    #[test]
    fn logsumexp_f16_gradient_matches_central_differences(case in red2_case(Red2::LogSumExp)) {
        check_red2(Red2::LogSumExp, Prec::F16, &case)?;
    }

    #[test]
    fn variance_gradient_matches_central_differences(case in red2_case(Red2::Variance)) {
        check_red2(Red2::Variance, Prec::F32, &case)?;
    }

    #[test]
    fn variance_f16_gradient_matches_central_differences(case in red2_case(Red2::Variance)) {
        check_red2(Red2::Variance, Prec::F16, &case)?;
    }

    #[test]
    fn std_gradient_matches_central_differences(case in red2_case(Red2::Std)) {
        check_red2(Red2::Std, Prec::F32, &case)?;
    }

    #[test]
    fn std_f16_gradient_matches_central_differences(case in red2_case(Red2::Std)) {
        check_red2(Red2::Std, Prec::F16, &case)?;
    }

    #[test]
    fn cumsum_gradient_matches_central_differences(case in scan_case(false)) {
        check_scan(false, Prec::F32, &case)?;
    }

    #[test]
    fn cumsum_f16_gradient_matches_central_differences(case in scan_case(false)) {
        check_scan(false, Prec::F16, &case)?;
    }

    #[test]
    fn cumprod_gradient_matches_central_differences(case in scan_case(true)) {
        check_scan(true, Prec::F32, &case)?;
    }

    #[test]
    fn cumprod_f16_gradient_matches_central_differences(case in scan_case(true)) {
        check_scan(true, Prec::F16, &case)?;
    }

    #[test]
    fn catalog2_reduction_second_derivatives_match_central_differences(
        (op, case) in select(vec![Red2::Min, Red2::Prod, Red2::LogSumExp, Red2::Variance, Red2::Std])
            .prop_flat_map(|op| (Just(op), second_order_case(op)))
    ) {
        let (dims, axes, keepdims, x, seed) = case;
        if op == Red2::Std && slice_len(&dims, axes.as_deref()) == 1 {
            return Ok(());
        }
        let keepdims = keepdims && (axes.is_some() || !matches!(op, Red2::Min | Red2::Prod));
        check_second_order(
            &format!("{op:?} axes {axes:?} keepdims {keepdims}"),
            &x,
            &dims,
            seed,
            |t| op.apply(t, axes.as_deref(), keepdims),
            |xs| slices_ref(xs, &dims, axes.as_deref(), keepdims, |s| op.slice(s)).0,
        )?;
    }

    #[test]
    fn scan_second_derivatives_match_central_differences(
        (prod, (dims, axis, exclusive, reverse, x, seed)) in any::<bool>().prop_flat_map(|p| (Just(p), scan_case(p)))
    ) {
        check_second_order(
            &format!("{} axis {axis} exclusive {exclusive} reverse {reverse}", if prod { "cumprod" } else { "cumsum" }),
            &x,
            &dims,
            seed,
            |t| if prod { t.cumprod(axis, exclusive, reverse) } else { t.cumsum(axis, exclusive, reverse) },
            |xs| along_axis(xs, &dims, axis, |v| scan_lane(prod, exclusive, reverse, v)),
        )?;
    }
}

// ---------------------------------------------------------------------------------------
// Matrix product.
// ---------------------------------------------------------------------------------------

/// C[..., i, j] = Σ_p A[..., i, p]·B[..., p, j] with A = aᵀ if `ta` (last two axes), B = bᵀ
/// if `tb`, batch dimensions broadcast. ∂F/∂A = U·Bᵀ, ∂F/∂B = Aᵀ·U.
fn matmul_ref(a: &[f64], ad: &[usize], b: &[f64], bd: &[usize], ta: bool, tb: bool) -> (Vec<f64>, Vec<usize>) {
    let (a_batch, a_mat) = ad.split_at(ad.len() - 2);
    let (b_batch, b_mat) = bd.split_at(bd.len() - 2);
    let (m, k) = if ta { (a_mat[1], a_mat[0]) } else { (a_mat[0], a_mat[1]) };
    let (k2, n) = if tb { (b_mat[1], b_mat[0]) } else { (b_mat[0], b_mat[1]) };
    assert_eq!(k, k2, "inner dimensions");
    let batch = broadcast_dims(a_batch, b_batch);
    let mut out = Vec::with_capacity(numel(&batch) * m * n);
    for bi in 0..numel(&batch) {
        let idx = unravel(bi, &batch);
        let a0 = broadcast_source(&idx, a_batch) * m * k;
        let b0 = broadcast_source(&idx, b_batch) * k * n;
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let av = a[a0 + if ta { p * m + i } else { i * k + p }];
                    let bv = b[b0 + if tb { j * k + p } else { p * n + j }];
                    s += av * bv;
                }
                out.push(s);
            }
        }
    }
    let mut dims = batch;
    dims.extend([m, n]);
    (out, dims)
}

type MatmulCase = (Vec<usize>, Vec<usize>, bool, bool, Vec<f64>, Vec<f64>, u64);

/// Batch pairs (none, equal, one side only, broadcast [2,1] with [3]), M, K, N including 0,
/// 1 and SIMD-remainder lengths, and each transpose flag.
fn matmul_case() -> impl Strategy<Value = MatmulCase> {
    let batches = select(vec![
        (vec![], vec![]),
        (vec![2], vec![2]),
        (vec![3], vec![]),
        (vec![], vec![2]),
        (vec![2, 1], vec![3]),
        (vec![1], vec![2]),
    ]);
    (
        batches,
        select(vec![0usize, 1, 2, 3, 5]),
        select(vec![0usize, 1, 2, 3, 15, 16, 17, 33]),
        select(vec![1usize, 2, 3, 5, 16]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|((ab, bb), m, k, n, ta, tb)| {
            let mut ad = ab.clone();
            ad.extend(if ta { [k, m] } else { [m, k] });
            let mut bd = bb.clone();
            bd.extend(if tb { [n, k] } else { [k, n] });
            let (na, nb) = (numel(&ad), numel(&bd));
            (
                Just(ad),
                Just(bd),
                Just(ta),
                Just(tb),
                Domain::range(-1.0, 1.0).values(na),
                Domain::range(-1.0, 1.0).values(nb),
                any::<u64>(),
            )
        })
}

fn check_matmul(prec: Prec, case: &MatmulCase) -> Check {
    let (ad, bd, ta, tb, a, b, seed) = case.clone();
    check_vjp(
        &format!("matmul transpose_a {ta} transpose_b {tb}"),
        prec,
        &[(a, ad.clone()), (b, bd.clone())],
        seed,
        |t| if !ta && !tb { t[0].matmul(&t[1]) } else { t[0].matmul_transposed(&t[1], ta, tb) },
        |xs| matmul_ref(&xs[0], &ad, &xs[1], &bd, ta, tb),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matmul_gradient_matches_central_differences(case in matmul_case()) {
        check_matmul(Prec::F32, &case)?;
    }

    #[test]
    fn matmul_f16_gradient_matches_central_differences(case in matmul_case()) {
        check_matmul(Prec::F16, &case)?;
    }
}

// ---------------------------------------------------------------------------------------
// Shape ops: reshape, transpose, broadcast_to, concat.
// ---------------------------------------------------------------------------------------

fn reshape_dims(n: usize, target: &[isize]) -> Vec<usize> {
    let known: usize = target.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
    target.iter().map(|&d| if d < 0 { n / known } else { d as usize }).collect()
}

fn reshape_case() -> impl Strategy<Value = (Vec<usize>, Vec<isize>, Vec<f64>, u64)> {
    select(vec![
        (vec![2, 3, 4], vec![6, -1]),
        (vec![2, 3, 4], vec![4, 6]),
        (vec![2, 3, 4], vec![-1]),
        (vec![24], vec![2, 3, 4]),
        (vec![], vec![1, 1]),
        (vec![1], vec![]),
        (vec![17], vec![17, 1]),
        (vec![33], vec![3, -1]),
        (vec![0, 3], vec![3, 0]),
        (vec![2, 0], vec![0]),
    ])
    .prop_flat_map(|(dims, target)| {
        let n = numel(&dims);
        (Just(dims), Just(target), Domain::range(-3.0, 3.0).values(n), any::<u64>())
    })
}

fn transpose_ref(x: &[f64], dims: &[usize], perm: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let out = (0..x.len())
        .map(|o| {
            let oi = unravel(o, &out_dims);
            let mut ii = vec![0; dims.len()];
            for (d, &p) in perm.iter().enumerate() {
                ii[p] = oi[d]; // output axis d is input axis perm[d]
            }
            x[ravel(&ii, dims)]
        })
        .collect();
    (out, out_dims)
}

fn transpose_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<f64>, u64)> {
    select(vec![vec![3, 5], vec![17, 2], vec![2, 3, 4], vec![2, 1, 3, 4], vec![0, 3], vec![2, 0, 3], vec![16, 1, 3]])
        .prop_flat_map(|dims| {
            let n = numel(&dims);
            let perm = Just((0..dims.len()).collect::<Vec<_>>()).prop_shuffle();
            (Just(dims), perm, Domain::range(-3.0, 3.0).values(n), any::<u64>())
        })
}

fn broadcast_to_ref(x: &[f64], dims: &[usize], target: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let out = (0..numel(target)).map(|o| x[broadcast_source(&unravel(o, target), dims)]).collect();
    (out, target.to_vec())
}

fn broadcast_to_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<f64>, u64)> {
    select(vec![
        (vec![3, 1], vec![2, 3, 4]),
        (vec![], vec![5]),
        (vec![4], vec![3, 4]),
        (vec![2, 1, 3], vec![2, 4, 3]),
        (vec![1], vec![17]),
        (vec![4, 1], vec![2, 4, 33]),
        (vec![5], vec![5]),
        (vec![1, 3], vec![0, 3]), // every element stretched over nothing: gradient 0
        (vec![0], vec![2, 0]),
    ])
    .prop_flat_map(|(dims, target)| {
        let n = numel(&dims);
        (Just(dims), Just(target), Domain::range(-3.0, 3.0).values(n), any::<u64>())
    })
}

fn concat_ref(xs: &[Vec<f64>], dims: &[Vec<usize>], axis: isize) -> (Vec<f64>, Vec<usize>) {
    let rank = dims[0].len();
    let ax = if axis < 0 { (axis + rank as isize) as usize } else { axis as usize };
    let outer: usize = dims[0][..ax].iter().product();
    let mut out_dims = dims[0].clone();
    out_dims[ax] = dims.iter().map(|d| d[ax]).sum();
    let mut out = Vec::with_capacity(numel(&out_dims));
    for o in 0..outer {
        for (x, d) in xs.iter().zip(dims) {
            let chunk: usize = d[ax..].iter().product();
            out.extend_from_slice(&x[o * chunk..(o + 1) * chunk]);
        }
    }
    (out, out_dims)
}

fn concat_case() -> impl Strategy<Value = (Vec<Vec<usize>>, isize, Vec<Vec<f64>>, u64)> {
    select(vec![
        (vec![vec![2, 3], vec![2, 5]], 1),
        (vec![vec![2, 3], vec![2, 5]], -1),
        (vec![vec![2, 3], vec![4, 3], vec![1, 3]], 0),
        (vec![vec![17], vec![16]], 0),
        (vec![vec![33], vec![15], vec![31]], -1),
        (vec![vec![2, 0, 3], vec![2, 2, 3]], 1),
        (vec![vec![0, 3], vec![2, 3]], 0),
        (vec![vec![2, 3, 4], vec![2, 1, 4]], -2),
        (vec![vec![5]], 0),
    ])
    .prop_flat_map(|(dims, axis)| {
        let values: Vec<_> = dims.iter().map(|d| Domain::range(-3.0, 3.0).values(numel(d))).collect();
        (Just(dims), Just(axis), values, any::<u64>())
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reshape_gradient_matches_central_differences((dims, target, x, seed) in reshape_case()) {
        for prec in [Prec::F32, Prec::F16] {
            check_vjp(
                &format!("reshape to {target:?}"),
                prec,
                &[(x.clone(), dims.clone())],
                seed,
                |t| t[0].reshape(&target),
                |xs| (xs[0].clone(), reshape_dims(xs[0].len(), &target)),
            )?;
        }
    }

    #[test]
    fn transpose_gradient_matches_central_differences((dims, perm, x, seed) in transpose_case()) {
        for prec in [Prec::F32, Prec::F16] {
            check_vjp(
                &format!("transpose {perm:?}"),
                prec,
                &[(x.clone(), dims.clone())],
                seed,
                |t| t[0].transpose(&perm),
                |xs| transpose_ref(&xs[0], &dims, &perm),
            )?;
        }
    }

    #[test]
    fn broadcast_to_gradient_matches_central_differences((dims, target, x, seed) in broadcast_to_case()) {
        for prec in [Prec::F32, Prec::F16] {
            check_vjp(
                &format!("broadcast_to {target:?}"),
                prec,
                &[(x.clone(), dims.clone())],
                seed,
                |t| t[0].broadcast_to(target.clone()),
                |xs| broadcast_to_ref(&xs[0], &dims, &target),
            )?;
        }
    }

    #[test]
    fn concat_gradient_matches_central_differences((dims, axis, xs, seed) in concat_case()) {
        let inputs: Vec<(Vec<f64>, Vec<usize>)> = xs.into_iter().zip(dims.iter().cloned()).collect();
        for prec in [Prec::F32, Prec::F16] {
            check_vjp(
                &format!("concat axis {axis}"),
                prec,
                &inputs,
                seed,
                |t| concat(t, axis),
                |xs| concat_ref(xs, &dims, axis),
            )?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Neural-network ops: softmax, log_softmax, sparse softmax cross-entropy.
// ---------------------------------------------------------------------------------------

/// Applies `lane` to every 1-D lane of `x` along `axis` (lanes of `dims[axis]` elements with
/// stride `inner`) and returns the results in `x`'s layout.
fn along_axis(x: &[f64], dims: &[usize], axis: isize, lane: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let ax = if axis < 0 { (axis + dims.len() as isize) as usize } else { axis as usize };
    let (outer, len, inner) =
        (dims[..ax].iter().product::<usize>(), dims[ax], dims[ax + 1..].iter().product::<usize>());
    let mut out = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |c: usize| o * len * inner + c * inner + i;
            let values: Vec<f64> = (0..len).map(|c| x[at(c)]).collect();
            for (c, v) in lane(&values).into_iter().enumerate() {
                out[at(c)] = v;
            }
        }
    }
    out
}

/// log Σ eˣ with the maximum subtracted first.
fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// softmax(v)_c = e^(v_c − max) / Σ e^(v − max); ∂F/∂v = y·(u − Σ u·y).
fn softmax_lane(v: &[f64]) -> Vec<f64> {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// log_softmax(v)_c = v_c − logsumexp(v); ∂F/∂v = u − softmax(v)·Σu.
fn log_softmax_lane(v: &[f64]) -> Vec<f64> {
    let l = log_sum_exp(v);
    v.iter().map(|x| x - l).collect()
}

fn softmax_case() -> impl Strategy<Value = (Vec<usize>, isize, Vec<f64>, u64)> {
    select(vec![
        (vec![5], 0),
        (vec![17], -1),
        (vec![33], 0),
        (vec![3, 4], 0),
        (vec![3, 4], 1),
        (vec![3, 16], -1),
        (vec![2, 3, 4], 1),
        (vec![2, 31, 3], -2),
        (vec![0, 4], -1),
        (vec![2, 0], -1),
    ])
    .prop_flat_map(|(dims, axis)| {
        let n = numel(&dims);
        (Just(dims), Just(axis), Domain::range(-5.0, 5.0).values(n), any::<u64>())
    })
}

type SsceCase = (usize, usize, Vec<f64>, Vec<i32>, u64);

/// Logits [N, C] and labels in [0, C).
fn ssce_case() -> impl Strategy<Value = SsceCase> {
    (select(vec![0usize, 1, 2, 5, 17]), select(vec![1usize, 2, 3, 10, 16, 33])).prop_flat_map(|(n, c)| {
        (Just(n), Just(c), Domain::range(-5.0, 5.0).values(n * c), vec(0..c as i32, n), any::<u64>())
    })
}

/// loss_n = logsumexp(logits_n) − logits_n[label_n]; ∂F/∂logits_n = u_n·(softmax_n − onehot).
fn ssce_ref(logits: &[f64], n: usize, c: usize, labels: &[i32]) -> (Vec<f64>, Vec<usize>) {
    let loss = (0..n)
        .map(|r| {
            let row = &logits[r * c..(r + 1) * c];
            log_sum_exp(row) - row[labels[r] as usize]
        })
        .collect();
    (loss, vec![n])
}

fn check_softmax(prec: Prec, log: bool, dims: &[usize], axis: isize, x: &[f64], seed: u64) -> Check {
    let lane = if log { log_softmax_lane } else { softmax_lane };
    check_vjp(
        &format!("{} axis {axis}", if log { "log_softmax" } else { "softmax" }),
        prec,
        &[(x.to_vec(), dims.to_vec())],
        seed,
        |t| if log { t[0].log_softmax(axis) } else { t[0].softmax(axis) },
        |xs| (along_axis(&xs[0], dims, axis, lane), dims.to_vec()),
    )
}

fn check_ssce(prec: Prec, case: &SsceCase) -> Check {
    let (n, c, logits, labels, seed) = case.clone();
    let labels_t = Tensor::from_vec(labels.clone(), [n]).expect("labels");
    check_vjp(
        &format!("sparse_softmax_cross_entropy labels {labels:?}"),
        prec,
        &[(logits, vec![n, c])],
        seed,
        |t| t[0].sparse_softmax_cross_entropy(&labels_t),
        |xs| ssce_ref(&xs[0], n, c, &labels),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn softmax_gradient_matches_central_differences((dims, axis, x, seed) in softmax_case()) {
        check_softmax(Prec::F32, false, &dims, axis, &x, seed)?;
    }

    #[test]
    fn softmax_f16_gradient_matches_central_differences((dims, axis, x, seed) in softmax_case()) {
        check_softmax(Prec::F16, false, &dims, axis, &x, seed)?;
    }

    #[test]
    fn log_softmax_gradient_matches_central_differences((dims, axis, x, seed) in softmax_case()) {
        check_softmax(Prec::F32, true, &dims, axis, &x, seed)?;
    }

    #[test]
    fn log_softmax_f16_gradient_matches_central_differences((dims, axis, x, seed) in softmax_case()) {
        check_softmax(Prec::F16, true, &dims, axis, &x, seed)?;
    }

    #[test]
    fn sparse_softmax_cross_entropy_gradient_matches_central_differences(case in ssce_case()) {
        check_ssce(Prec::F32, &case)?;
    }

    #[test]
    fn sparse_softmax_cross_entropy_f16_gradient_matches_central_differences(case in ssce_case()) {
        check_ssce(Prec::F16, &case)?;
    }
}

// ---------------------------------------------------------------------------------------
// The harness itself.
// ---------------------------------------------------------------------------------------

#[test]
fn the_reference_machinery_agrees_with_closed_forms() {
    // broadcast [2,1,3] with [4,1] → [2,4,3]; output (1,2,0) reads a[1,0,0] and b[2,0]
    assert_eq!(broadcast_dims(&[2, 1, 3], &[4, 1]), vec![2, 4, 3]);
    assert_eq!(broadcast_source(&[1, 2, 0], &[2, 1, 3]), 3);
    assert_eq!(broadcast_source(&[1, 2, 0], &[4, 1]), 2);
    // [[1,2],[3,4]]·[[5,6],[7,8]] = [[19,22],[43,50]]; with transpose_a: [[26,30],[38,44]]
    let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
    assert_eq!(matmul_ref(&a, &[2, 2], &b, &[2, 2], false, false).0, vec![19.0, 22.0, 43.0, 50.0]);
    assert_eq!(matmul_ref(&a, &[2, 2], &b, &[2, 2], true, false).0, vec![26.0, 30.0, 38.0, 44.0]);
    assert_eq!(matmul_ref(&a, &[2, 2], &b, &[2, 2], false, true).0, vec![17.0, 23.0, 39.0, 53.0]);
    // sum over axis 1 of [[1,2],[3,4]] = [3,7]; max over axis 0 keepdims = [[3,4]]
    assert_eq!(reduce_ref(Red::Sum, &a, &[2, 2], Some(&[1]), false), (vec![3.0, 7.0], vec![2]));
    assert_eq!(reduce_ref(Red::Max, &a, &[2, 2], Some(&[-2]), true), (vec![3.0, 4.0], vec![1, 2]));
    assert_eq!(transpose_ref(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], &[2, 3], &[1, 0]).0, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    // concat [[1,2],[3,4]] and [[5],[6]] along axis 1: [[1,2,5],[3,4,6]]
    let (c, d) = concat_ref(&[a.to_vec(), vec![5.0, 6.0]], &[vec![2, 2], vec![2, 1]], 1);
    assert_eq!((c, d), (vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0], vec![2, 3]));
    // softmax of [0, ln 3] = [1/4, 3/4]
    let s = softmax_lane(&[0.0, 3f64.ln()]);
    assert!((s[0] - 0.25).abs() < 1e-15 && (s[1] - 0.75).abs() < 1e-15);
    // the second central difference of x³ at 2 is 12
    let (x, h) = (2.0f64, 1e-4);
    let f2 = ((x + h).powi(3) - 2.0 * x.powi(3) + (x - h).powi(3)) / (h * h);
    assert!((f2 - 12.0).abs() < 1e-5, "{f2}");
}

#[test]
fn a_deliberately_wrong_gradient_is_caught() {
    // The check must fail for an op whose gradient is not its function's: x·stop_gradient(x)
    // has the value x² but the gradient x, not 2x; at x = 2 they differ by 2·|u|.
    let r = check_vjp(
        "x·stop_gradient(x) vs x²",
        Prec::F32,
        &[(vec![2.0], vec![1])],
        7,
        |t| &t[0] * stop_gradient(&t[0]),
        |xs| (xs[0].iter().map(|v| v * v).collect(), vec![1]),
    );
    assert!(r.is_err(), "the harness accepted a wrong gradient");
}
