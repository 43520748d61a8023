//! Forward mode (`ForwardAccumulator`) for every op of the catalog, checked three ways:
//!
//! 1. against the op's backward rule: `⟨u, J·v⟩ = ⟨Jᵀ·u, v⟩` for random `u` and `v` (the JVP
//!    and the VJP are transposes of one Jacobian);
//! 2. against central finite differences of the op itself, `(f(x + h·v) − f(x − h·v)) / 2h`;
//! 3. forward over reverse against reverse over reverse: the Hessian-vector product of
//!    `⟨u, f(x)⟩` both ways, which runs every backward rule's ops under an accumulator (so the
//!    gradient ops' own JVP rules are checked too).
//!
//! Inputs stay away from kinks and poles (domains per case), so that `x ± h·v` never crosses
//! one. Float32 throughout; `h = 1e-3` gives rounding errors of ~1e-4·|f| and truncation
//! errors of ~1e-6·|f'''|, within the tolerance `5e-3·(1 + |want|)`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapeflow::nn::{self, Padding};
use tapeflow::prelude::*;

type Op = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

/// One op with its inputs (int32 inputs are indices: not primals).
struct Case {
    name: &'static str,
    inputs: Vec<Tensor>,
    f: Op,
    /// Whether finite differences apply (not through float16 rounding).
    finite_differences: bool,
    /// Whether the Hessian-vector products take the first input alone as the primal: where
    /// TensorFlow's gradient stops a cross term on purpose (the labels of
    /// softmax_cross_entropy), the "Hessian" of the gradient function is not symmetric, so
    /// forward over reverse (`H·v`) and reverse over reverse (`Hᵀ·v`) differ by design.
    hvp_first_only: bool,
}

struct Gen(ChaCha8Rng);

impl Gen {
    fn uniform(&mut self, shape: &[usize], lo: f32, hi: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| self.0.random_range(lo..hi)).collect();
        Tensor::from_vec(values, shape.to_vec()).unwrap()
    }
    /// Values in ±[lo, hi]: away from a kink at 0.
    fn signed(&mut self, shape: &[usize], lo: f32, hi: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let m = self.0.random_range(lo..hi);
                if self.0.random_bool(0.5) { m } else { -m }
            })
            .collect();
        Tensor::from_vec(values, shape.to_vec()).unwrap()
    }
    /// Rows of positive values that sum to 1 (labels: TensorFlow's softmax cross-entropy
    /// gradient assumes it).
    fn distribution(&mut self, shape: &[usize]) -> Tensor {
        self.uniform(shape, 0.1, 1.0).softmax(-1).unwrap()
    }
    /// Distinct values (no ties), shuffled, spaced 0.1 apart.
    fn distinct(&mut self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let mut values: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - n as f32 * 0.05).collect();
        for i in (1..n).rev() {
            let j = self.0.random_range(0..=i);
            values.swap(i, j);
        }
        Tensor::from_vec(values, shape.to_vec()).unwrap()
    }
}

fn case(name: &'static str, inputs: Vec<Tensor>, f: impl Fn(&[Tensor]) -> Result<Tensor> + 'static) -> Case {
    Case { name, inputs, f: Box::new(f), finite_differences: true, hvp_first_only: false }
}

fn unary(g: &mut Gen, name: &'static str, lo: f32, hi: f32, f: fn(&Tensor) -> Result<Tensor>) -> Case {
    case(name, vec![g.uniform(&[2, 3], lo, hi)], move |x| f(&x[0]))
}

fn catalog() -> Vec<Case> {
    let g = &mut Gen(ChaCha8Rng::seed_from_u64(7));
    let mut cases = vec![
        unary(g, "neg", -1.0, 1.0, |x| x.neg()),
        case("abs", vec![g.signed(&[2, 3], 0.2, 1.0)], |x| x[0].abs()),
        unary(g, "exp", -1.0, 1.0, |x| x.exp()),
        unary(g, "log", 0.5, 2.0, |x| x.log()),
        unary(g, "sqrt", 0.5, 2.0, |x| x.sqrt()),
        unary(g, "rsqrt", 0.5, 2.0, |x| x.rsqrt()),
        unary(g, "square", -1.0, 1.0, |x| x.square()),
        unary(g, "tanh", -1.0, 1.0, |x| x.tanh()),
        unary(g, "sigmoid", -2.0, 2.0, |x| x.sigmoid()),
        case("relu", vec![g.signed(&[2, 3], 0.2, 1.0)], |x| x[0].relu()),
        unary(g, "sin", -2.0, 2.0, |x| x.sin()),
        unary(g, "cos", -2.0, 2.0, |x| x.cos()),
        unary(g, "softplus", -2.0, 2.0, |x| x.softplus()),
        unary(g, "log1p", 0.0, 1.0, |x| x.log1p()),
        unary(g, "expm1", -1.0, 1.0, |x| x.expm1()),
        unary(g, "reciprocal", 0.5, 2.0, |x| x.reciprocal()),
        unary(g, "tan", -1.0, 1.0, |x| x.tan()),
        unary(g, "asin", -0.8, 0.8, |x| x.asin()),
        unary(g, "acos", -0.8, 0.8, |x| x.acos()),
        unary(g, "atan", -2.0, 2.0, |x| x.atan()),
        unary(g, "sinh", -1.0, 1.0, |x| x.sinh()),
        unary(g, "cosh", -1.0, 1.0, |x| x.cosh()),
        unary(g, "asinh", -2.0, 2.0, |x| x.asinh()),
        unary(g, "acosh", 1.5, 3.0, |x| x.acosh()),
        unary(g, "atanh", -0.8, 0.8, |x| x.atanh()),
        unary(g, "erf", -1.5, 1.5, |x| x.erf()),
        unary(g, "erfc", -1.5, 1.5, |x| x.erfc()),
        unary(g, "log_sigmoid", -2.0, 2.0, |x| x.log_sigmoid()),
        case("softsign", vec![g.signed(&[2, 3], 0.2, 2.0)], |x| x[0].softsign()),
        case("elu", vec![g.signed(&[2, 3], 0.2, 2.0)], |x| x[0].elu()),
        case("selu", vec![g.signed(&[2, 3], 0.2, 2.0)], |x| x[0].selu()),
        case("relu6", vec![g.uniform(&[2, 3], 0.2, 5.5)], |x| x[0].relu6()),
        unary(g, "silu", -2.0, 2.0, |x| x.silu()),
        unary(g, "gelu", -2.0, 2.0, |x| x.gelu(false)),
        unary(g, "gelu_tanh", -2.0, 2.0, |x| x.gelu(true)),
        case("leaky_relu", vec![g.signed(&[2, 3], 0.2, 2.0)], |x| x[0].leaky_relu(0.2)),
        case("clip_by_value", vec![g.uniform(&[2, 3], -0.4, 0.4)], |x| x[0].clip_by_value(-0.5, 0.5)),
        // Binary ops, with and without broadcasting.
        case("add", vec![g.uniform(&[3, 1], -1.0, 1.0), g.uniform(&[1, 4], -1.0, 1.0)], |x| x[0].add(&x[1])),
        case("sub", vec![g.uniform(&[3, 4], -1.0, 1.0), g.uniform(&[4], -1.0, 1.0)], |x| x[0].sub(&x[1])),
        case("mul", vec![g.uniform(&[2, 3], -1.0, 1.0), g.uniform(&[3], -1.0, 1.0)], |x| x[0].mul(&x[1])),
        case("div", vec![g.uniform(&[2, 3], -1.0, 1.0), g.uniform(&[2, 3], 0.5, 2.0)], |x| x[0].div(&x[1])),
        case("pow", vec![g.uniform(&[2, 3], 0.5, 2.0), g.uniform(&[2, 3], -1.0, 2.0)], |x| x[0].pow(&x[1])),
        case("maximum", vec![g.distinct(&[2, 3]), g.distinct(&[2, 3])], |x| x[0].maximum((&x[1] + 0.05)?)),
        case("minimum", vec![g.distinct(&[2, 3]), g.distinct(&[2, 3])], |x| x[0].minimum((&x[1] + 0.05)?)),
        case("squared_difference", vec![g.uniform(&[2, 3], -1.0, 1.0), g.uniform(&[3], -1.0, 1.0)], |x| {
            x[0].squared_difference(&x[1])
        }),
        case("floormod", vec![g.uniform(&[2, 3], 0.1, 0.9), g.uniform(&[2, 3], 1.0, 2.0)], |x| x[0].floormod(&x[1])),
        case("atan2", vec![g.uniform(&[2, 3], -1.0, 1.0), g.uniform(&[2, 3], 0.5, 2.0)], |x| x[0].atan2(&x[1])),
        // Reductions and scans.
        case("sum", vec![g.uniform(&[2, 3, 4], -1.0, 1.0)], |x| x[0].sum(&[0, 2], false)),
        case("mean", vec![g.uniform(&[2, 3, 4], -1.0, 1.0)], |x| x[0].mean(&[1], true)),
        case("max", vec![g.distinct(&[3, 4])], |x| x[0].max(&[1], false)),
        case("min", vec![g.distinct(&[3, 4])], |x| x[0].min(&[0], true)),
        case("prod", vec![g.uniform(&[3, 4], 0.5, 1.5)], |x| x[0].prod(&[1], false)),
        case("sum_all", vec![g.uniform(&[2, 3], -1.0, 1.0)], |x| x[0].sum_all()),
        case("logsumexp", vec![g.uniform(&[3, 4], -2.0, 2.0)], |x| x[0].logsumexp(&[1], false)),
        case("variance", vec![g.uniform(&[3, 4], -2.0, 2.0)], |x| x[0].variance(&[1], false)),
        case("std", vec![g.uniform(&[3, 4], -2.0, 2.0)], |x| x[0].std(&[0], true)),
        case("cumsum", vec![g.uniform(&[3, 4], -1.0, 1.0)], |x| x[0].cumsum(1, false, false)),
        case("cumsum_exclusive_reverse", vec![g.uniform(&[3, 4], -1.0, 1.0)], |x| x[0].cumsum(0, true, true)),
        case("cumprod", vec![g.uniform(&[3, 4], 0.5, 1.5)], |x| x[0].cumprod(1, false, false)),
        case("cumprod_exclusive_reverse", vec![g.uniform(&[3, 4], 0.5, 1.5)], |x| x[0].cumprod(1, true, true)),
        // Products.
        case("matmul", vec![g.uniform(&[3, 4], -1.0, 1.0), g.uniform(&[4, 2], -1.0, 1.0)], |x| x[0].matmul(&x[1])),
        case("matmul_transposed", vec![g.uniform(&[4, 3], -1.0, 1.0), g.uniform(&[2, 4], -1.0, 1.0)], |x| {
            x[0].matmul_transposed(&x[1], true, true)
        }),
        case("matmul_batched", vec![g.uniform(&[2, 3, 4], -1.0, 1.0), g.uniform(&[4, 5], -1.0, 1.0)], |x| {
            x[0].matmul(&x[1])
        }),
        case("einsum_contract", vec![g.uniform(&[2, 3], -1.0, 1.0), g.uniform(&[3, 4], -1.0, 1.0)], |x| {
            einsum("ij,jk->ki", &[&x[0], &x[1]])
        }),
        case("einsum_diagonal", vec![g.uniform(&[3, 3], -1.0, 1.0)], |x| einsum("ii->i", &[&x[0]])),
        // Shapes, slicing and indexing.
        case("reshape", vec![g.uniform(&[2, 3], -1.0, 1.0)], |x| x[0].reshape([3, -1])),
        case("transpose", vec![g.uniform(&[2, 3, 4], -1.0, 1.0)], |x| x[0].transpose(&[2, 0, 1])),
        case("broadcast_to", vec![g.uniform(&[3, 1], -1.0, 1.0)], |x| x[0].broadcast_to([2, 3, 4])),
        Case {
            finite_differences: false,
            ..case("cast", vec![g.uniform(&[2, 3], -1.0, 1.0)], |x| x[0].cast(DType::F16)?.cast(DType::F32))
        },
        case("squeeze", vec![g.uniform(&[2, 1, 3], -1.0, 1.0)], |x| x[0].squeeze(&[1])),
        case("expand_dims", vec![g.uniform(&[2, 3], -1.0, 1.0)], |x| x[0].expand_dims(1)),
        case("unstack", vec![g.uniform(&[3, 2], -1.0, 1.0)], |x| Ok(x[0].unstack(0)?.swap_remove(1))),
        case("split", vec![g.uniform(&[2, 5], -1.0, 1.0)], |x| Ok(x[0].split(&[2, 3], 1)?.swap_remove(1))),
        case("tile", vec![g.uniform(&[2, 3], -1.0, 1.0)], |x| x[0].tile(&[2, 1])),
        case("pad_constant", vec![g.uniform(&[2, 3], -1.0, 1.0)], |x| {
            x[0].pad(&[[1, 0], [0, 2]], PadMode::Constant(0.5))
        }),
        case("pad_reflect", vec![g.uniform(&[3, 4], -1.0, 1.0)], |x| x[0].pad(&[[1, 1], [2, 1]], PadMode::Reflect)),
        case("pad_symmetric", vec![g.uniform(&[3, 4], -1.0, 1.0)], |x| x[0].pad(&[[1, 2], [0, 1]], PadMode::Symmetric)),
        case("reverse", vec![g.uniform(&[2, 3], -1.0, 1.0)], |x| x[0].reverse(&[1])),
        case("slice", vec![g.uniform(&[3, 4], -1.0, 1.0)], |x| x[0].slice(&[1, 1], &[2, -1])),
        case("strided_slice", vec![g.uniform(&[4, 5], -1.0, 1.0)], |x| x[0].strided_slice(&[3, 0], &[0, 5], &[-1, 2])),
        case("gather", vec![g.uniform(&[4, 3], -1.0, 1.0), constant([2, 0, 2])], |x| x[0].gather(&x[1], 0)),
        case("gather_nd", vec![g.uniform(&[3, 4], -1.0, 1.0), constant([[1, 2], [0, 0], [1, 2]])], |x| {
            x[0].gather_nd(&x[1])
        }),
        case("scatter_nd", vec![constant([[1], [3], [1]]), g.uniform(&[3, 2], -1.0, 1.0)], |x| {
            scatter_nd(&x[0], &x[1], [5, 2])
        }),
        case("unsorted_segment_sum", vec![g.uniform(&[4, 2], -1.0, 1.0), constant([1, -1, 0, 1])], |x| {
            unsorted_segment_sum(&x[0], &x[1], 3)
        }),
        case("concat", vec![g.uniform(&[2, 3], -1.0, 1.0), g.uniform(&[2, 1], -1.0, 1.0)], |x| {
            concat(&[&x[0], &x[1]], 1)
        }),
        case("stack", vec![g.uniform(&[2, 3], -1.0, 1.0), g.uniform(&[2, 3], -1.0, 1.0)], |x| {
            stack(&[&x[0], &x[1]], 1)
        }),
        case("select", vec![g.uniform(&[2, 3], -1.0, 1.0), g.uniform(&[3], -1.0, 1.0)], |x| {
            select(constant([[true, false, true], [false, false, true]]), &x[0], &x[1])
        }),
        // Softmax family and losses.
        case("softmax", vec![g.uniform(&[3, 4], -2.0, 2.0)], |x| x[0].softmax(-1)),
        case("log_softmax", vec![g.uniform(&[3, 4], -2.0, 2.0)], |x| x[0].log_softmax(0)),
        case("sparse_softmax_cross_entropy", vec![g.uniform(&[3, 4], -2.0, 2.0), constant([3, 0, 1])], |x| {
            x[0].sparse_softmax_cross_entropy(&x[1])
        }),
        Case {
            hvp_first_only: true,
            ..case("softmax_cross_entropy", vec![g.uniform(&[3, 4], -2.0, 2.0), g.distribution(&[3, 4])], |x| {
                nn::softmax_cross_entropy(&x[0], &x[1])
            })
        },
        case("sigmoid_cross_entropy", vec![g.signed(&[3, 4], 0.2, 2.0), g.uniform(&[3, 4], 0.0, 1.0)], |x| {
            nn::sigmoid_cross_entropy(&x[0], &x[1])
        }),
        // tapeflow::nn.
        case("conv2d", vec![g.uniform(&[2, 5, 5, 2], -1.0, 1.0), g.uniform(&[3, 3, 2, 3], -1.0, 1.0)], |x| {
            nn::conv2d(&x[0], &x[1], [2, 1], Padding::Same, [1, 1])
        }),
        case("conv2d_dilated", vec![g.uniform(&[1, 6, 6, 1], -1.0, 1.0), g.uniform(&[2, 2, 1, 2], -1.0, 1.0)], |x| {
            nn::conv2d(&x[0], &x[1], [1, 1], Padding::Valid, [2, 2])
        }),
        case("conv2d_transpose", vec![g.uniform(&[1, 3, 3, 2], -1.0, 1.0), g.uniform(&[3, 3, 1, 2], -1.0, 1.0)], |x| {
            nn::conv2d_transpose(&x[0], &x[1], [1, 5, 5, 1], [2, 2], Padding::Same)
        }),
        case("depthwise_conv2d", vec![g.uniform(&[1, 4, 4, 2], -1.0, 1.0), g.uniform(&[3, 3, 2, 2], -1.0, 1.0)], |x| {
            nn::depthwise_conv2d(&x[0], &x[1], [1, 1], Padding::Same)
        }),
        case("max_pool2d", vec![g.distinct(&[1, 4, 4, 2])], |x| nn::max_pool2d(&x[0], [2, 2], [2, 2], Padding::Valid)),
        case("avg_pool2d", vec![g.uniform(&[1, 5, 5, 2], -1.0, 1.0)], |x| {
            nn::avg_pool2d(&x[0], [3, 3], [2, 2], Padding::Same)
        }),
        case("bias_add", vec![g.uniform(&[2, 3], -1.0, 1.0), g.uniform(&[3], -1.0, 1.0)], |x| {
            nn::bias_add(&x[0], &x[1])
        }),
        case("moments_mean", vec![g.uniform(&[4, 3], -1.0, 1.0)], |x| Ok(nn::moments(&x[0], &[0], false)?.0)),
        case("moments_variance", vec![g.uniform(&[4, 3], -1.0, 1.0)], |x| Ok(nn::moments(&x[0], &[0], false)?.1)),
        case(
            "batch_normalization",
            vec![
                g.uniform(&[4, 3], -1.0, 1.0),
                g.uniform(&[3], -0.5, 0.5),
                g.uniform(&[3], 0.5, 1.5),
                g.uniform(&[3], -1.0, 1.0),
                g.uniform(&[3], 0.5, 1.5),
            ],
            |x| nn::batch_normalization(&x[0], &x[1], &x[2], Some(&x[3]), Some(&x[4]), 1e-3),
        ),
        case("l2_loss", vec![g.uniform(&[2, 3], -1.0, 1.0)], |x| nn::l2_loss(&x[0])),
        case("l2_normalize", vec![g.uniform(&[2, 3], 0.2, 1.0)], |x| nn::l2_normalize(&x[0], -1)),
        case("dropout", vec![g.uniform(&[4, 4], -1.0, 1.0)], |x| nn::dropout(&x[0], 0.5, 3)),
        // A generator made per evaluation: the same mask every time, so the differences hold.
        case("dropout_with", vec![g.uniform(&[4, 4], -1.0, 1.0)], |x| {
            nn::dropout_with(&x[0], 0.5, &tapeflow::random::Generator::from_seed(3))
        }),
    ];
    // Piecewise constant: a zero tangent (and zero finite differences away from 0).
    cases.push(case("sign", vec![g.signed(&[2, 3], 0.2, 1.0)], |x| x[0].sign()));
    cases
}

/// The float inputs (the primals) of a case, by position.
fn primal_positions(case: &Case) -> Vec<usize> {
    (0..case.inputs.len()).filter(|&i| case.inputs[i].dtype().is_float()).collect()
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.to_f64_vec().iter().zip(b.to_f64_vec()).map(|(x, y)| x * y).sum()
}

/// Random tangents for the primals.
fn tangents(case: &Case, g: &mut Gen) -> Vec<Tensor> {
    primal_positions(case).iter().map(|&i| g.uniform(case.inputs[i].dims(), -1.0, 1.0)).collect()
}

/// `f(inputs)` and its tangent along `vs` (one per primal).
fn forward(case: &Case, inputs: &[Tensor], vs: &[Tensor]) -> Result<(Tensor, Tensor)> {
    let mut acc = ForwardAccumulator::new();
    for (&i, v) in primal_positions(case).iter().zip(vs) {
        acc = acc.primal(&inputs[i], v)?;
    }
    let y = acc.record(|| (case.f)(inputs))?;
    let jv = acc.jvp_with(&y, UnconnectedGradients::Zero)?.expect("zeros when unconnected");
    assert_eq!(jv.shape(), y.shape(), "{}: the tangent has the output's shape", case.name);
    assert_eq!(jv.dtype(), y.dtype(), "{}: the tangent has the output's dtype", case.name);
    Ok((y, jv))
}

#[test]
fn jvp_is_the_transpose_of_the_vjp_for_every_op() -> Result<()> {
    let g = &mut Gen(ChaCha8Rng::seed_from_u64(11));
    for case in catalog() {
        let vs = tangents(&case, g);
        let (y, jv) = forward(&case, &case.inputs, &vs)?;
        let u = g.uniform(y.dims(), -1.0, 1.0);
        let tape = GradientTape::new();
        let primals: Vec<&Tensor> = primal_positions(&case).iter().map(|&i| &case.inputs[i]).collect();
        tape.watch(&primals[..]);
        let y2 = tape.record(|| (case.f)(&case.inputs))?;
        let options =
            GradientOptions::default().output_gradients(vec![u.clone()]).unconnected(UnconnectedGradients::Zero);
        let grads = tape.gradients_with(&[&y2], &primals, options)?;
        let lhs = dot(&u, &jv);
        let terms: Vec<f64> = grads.iter().zip(&vs).map(|(gr, v)| dot(gr.as_ref().unwrap(), v)).collect();
        let rhs: f64 = terms.iter().sum();
        let scale = 1.0 + terms.iter().map(|t| t.abs()).sum::<f64>() + lhs.abs();
        // A float16 value on the way rounds the tangent and the gradient differently.
        let tol = if case.finite_differences { 1e-5 } else { 2e-3 };
        assert!((lhs - rhs).abs() <= tol * scale, "{}: <u, Jv> = {lhs} but <J^T u, v> = {rhs}", case.name);
    }
    Ok(())
}

#[test]
fn jvp_matches_finite_differences_for_every_op() -> Result<()> {
    let g = &mut Gen(ChaCha8Rng::seed_from_u64(12));
    let h = 1e-3f64;
    for case in catalog().into_iter().filter(|c| c.finite_differences) {
        let vs = tangents(&case, g);
        let (_, jv) = forward(&case, &case.inputs, &vs)?;
        let shifted = |sign: f64| -> Result<Vec<f64>> {
            let mut inputs = case.inputs.clone();
            for (&i, v) in primal_positions(&case).iter().zip(&vs) {
                let x: Vec<f32> =
                    inputs[i].to_f64_vec().iter().zip(v.to_f64_vec()).map(|(x, v)| (x + sign * h * v) as f32).collect();
                inputs[i] = Tensor::from_vec(x, inputs[i].dims().to_vec())?;
            }
            Ok((case.f)(&inputs)?.to_f64_vec())
        };
        let (plus, minus) = (shifted(1.0)?, shifted(-1.0)?);
        for (k, (got, (p, m))) in jv.to_f64_vec().iter().zip(plus.iter().zip(&minus)).enumerate() {
            let want = (p - m) / (2.0 * h);
            assert!(
                (got - want).abs() <= 5e-3 * (1.0 + want.abs()),
                "{}[{k}]: jvp {got}, finite difference {want}",
                case.name
            );
        }
    }
    Ok(())
}

#[test]
fn forward_over_reverse_hvp_equals_reverse_over_reverse_for_every_op() -> Result<()> {
    let g = &mut Gen(ChaCha8Rng::seed_from_u64(13));
    for case in catalog() {
        let mut vs = tangents(&case, g);
        let mut positions = primal_positions(&case);
        if case.hvp_first_only {
            positions.truncate(1);
            vs.truncate(1);
        }
        let primals: Vec<&Tensor> = positions.iter().map(|&i| &case.inputs[i]).collect();
        let y = (case.f)(&case.inputs)?;
        let u = g.uniform(y.dims(), -1.0, 1.0);
        let gradient_of = |tape: &GradientTape| -> Result<Vec<Tensor>> {
            tape.watch(&primals[..]);
            let y = tape.record(|| (case.f)(&case.inputs))?;
            let options =
                GradientOptions::default().output_gradients(vec![u.clone()]).unconnected(UnconnectedGradients::Zero);
            Ok(tape.gradients_with(&[&y], &primals, options)?.into_iter().map(Option::unwrap).collect())
        };
        // Forward over reverse.
        let mut acc = ForwardAccumulator::new();
        for (p, v) in primals.iter().zip(&vs) {
            acc = acc.primal(*p, v)?;
        }
        let grads = acc.record(|| gradient_of(&GradientTape::new()))?;
        let fwd: Vec<Tensor> = grads
            .iter()
            .map(|gr| acc.jvp_with(gr, UnconnectedGradients::Zero).map(Option::unwrap))
            .collect::<Result<_>>()?;
        // Reverse over reverse.
        let outer = GradientTape::new();
        outer.watch(&primals[..]);
        let paired = outer.record(|| -> Result<Tensor> {
            let grads = gradient_of(&GradientTape::new())?;
            let mut total = constant(0.0);
            for (gr, v) in grads.iter().zip(&vs) {
                total = (&total + (gr * v)?.sum_all()?)?;
            }
            Ok(total)
        })?;
        let rev = outer.gradients_with(
            &[&paired],
            &primals,
            GradientOptions::default().unconnected(UnconnectedGradients::Zero),
        )?;
        for (i, (f, r)) in fwd.iter().zip(&rev).enumerate() {
            let (f, r) = (f.to_f64_vec(), r.as_ref().unwrap().to_f64_vec());
            for (k, (a, b)) in f.iter().zip(&r).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{}: input {i}[{k}]: H·v {a} forward over reverse, {b} reverse over reverse",
                    case.name
                );
            }
        }
    }
    Ok(())
}

#[test]
fn accumulators_nest_for_higher_order_derivatives() -> Result<()> {
    // d²/dx² sin x = −sin x, as the tangent of a tangent.
    let x = constant([0.3, 1.2]);
    let outer = ForwardAccumulator::new().primal(&x, &constant([1.0, 1.0]))?;
    let inner = ForwardAccumulator::new().primal(&x, &constant([1.0, 1.0]))?;
    let first = outer.record(|| -> Result<Tensor> {
        let y = inner.record(|| x.sin())?;
        Ok(inner.jvp(&y)?.unwrap())
    })?;
    let second = outer.jvp(&first)?.unwrap().to_vec::<f32>()?;
    assert_eq!(first.to_vec::<f32>()?, x.cos()?.to_vec::<f32>()?);
    for (s, want) in second.iter().zip([-(0.3f32.sin()), -(1.2f32.sin())]) {
        assert!((s - want).abs() < 1e-6, "{s} vs {want}");
    }
    // The inner accumulator does not see its own tangent computations.
    assert!(inner.jvp(&first)?.is_none());
    Ok(())
}

#[test]
fn reverse_over_forward_differentiates_a_jvp() -> Result<()> {
    // jvp of x³ along v is 3x²·v; its gradient with respect to x is 6x·v.
    let x = Variable::new([1.0, 2.0]);
    let v = constant([1.0, -1.0]);
    let tape = GradientTape::new();
    let jv = tape.record(|| -> Result<Tensor> {
        let acc = ForwardAccumulator::new().primal(&x, &v)?;
        let y = acc.record(|| x.pow(3.0))?;
        acc.jvp(&y)?.unwrap().sum_all()
    })?;
    assert_eq!(jv.to_scalar::<f32>()?, 3.0 - 12.0);
    assert_eq!(tape.gradient(&jv, &x)?.unwrap().to_vec::<f32>()?, vec![6.0, -12.0]);
    Ok(())
}

#[test]
fn jvp_of_unconnected_results_and_bad_primals() -> Result<()> {
    let x = constant([1.0, 2.0]);
    let acc = ForwardAccumulator::new().primal(&x, &constant([1.0, 1.0]))?;
    let (y, z) = acc.record(|| -> Result<(Tensor, Tensor)> { Ok((stop_gradient(&x).exp()?, x.argmax(0)?)) })?;
    assert!(acc.jvp(&y)?.is_none(), "stop_gradient blocks the tangent");
    assert!(acc.jvp(&z)?.is_none(), "int32 results have no tangent");
    assert_eq!(acc.jvp_with(&y, UnconnectedGradients::Zero)?.unwrap().to_vec::<f32>()?, vec![0.0, 0.0]);
    assert_eq!(acc.jvp(&x)?.unwrap().to_vec::<f32>()?, vec![1.0, 1.0], "a primal's jvp is its tangent");
    // Outside `record`, nothing is pushed forward.
    let outside = x.exp()?;
    assert!(acc.jvp(&outside)?.is_none());

    let bad_dtype = ForwardAccumulator::new().primal(&x, &constant([1.0, 1.0]).cast(DType::F16)?);
    assert!(matches!(bad_dtype, Err(Error::ShapeMismatch { op: "ForwardAccumulator.primal", .. })));
    let int_primal = ForwardAccumulator::new().primal(constant([1, 2]), &constant([1, 2]));
    assert!(matches!(int_primal, Err(Error::UnsupportedDType { op: "ForwardAccumulator.primal", .. })));
    Ok(())
}

#[test]
fn variables_as_primals_and_float16() -> Result<()> {
    let w = Variable::new(constant([0.5, -1.0]).cast(DType::F16)?);
    let acc = ForwardAccumulator::new().primal(&w, &constant([1.0, 2.0]).cast(DType::F16)?)?;
    let y = acc.record(|| w.square()?.sum_all())?;
    let jv = acc.jvp(&y)?.unwrap();
    assert_eq!(jv.dtype(), DType::F16);
    assert_eq!(jv.to_f64_vec(), vec![2.0 * 0.5 * 1.0 - 2.0 * 2.0]);
    Ok(())
}
