//! The vectorized jacobian (one backward pass carrying every seed on a leading axis) against
//! the row loop (one pass per seed, `JacobianOptions::vectorized(false)`), op family by op
//! family, for `jacobian` and `batch_jacobian`.
//!
//! Where the batched rule is the same expression as the per-row rule (elementwise ops,
//! reductions, shape ops, softmax, cross-entropy), each element is computed by the same ops
//! in the same order, so the results are compared bit for bit. Matrix products fold the
//! seed axis into the rows of a differently shaped GEMM (and a matrix–vector product in the
//! row loop becomes a GEMM), which sums in other blocks: those agree within 1e-6 (float32)
//! or one float16 rounding step.

use tapeflow::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Agree {
    /// The same bits (NaN matching NaN).
    Exact,
    /// `|a - b| <= tol · (1 + max(|a|, |b|))`.
    Close(f32),
}
use Agree::{Close, Exact};

/// Matrix products: a GEMM of another shape sums in other blocks.
const GEMM: Agree = Close(1e-6);
/// The same in float16: a last-bit difference in f32 can move the one rounding to f16.
const GEMM_F16: Agree = Close(2e-3);

type Op = fn(&Variable) -> Result<Tensor>;

/// Deterministic, distinct values in (-0.9, 0.9) (no ties for `max`), or in (0.2, 1.1)
/// where the op needs positive inputs.
fn input(dims: &[usize], positive: bool, dtype: DType) -> Tensor {
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| {
            let v = (0.7 * i as f32 + 0.3).sin() * 0.9;
            if positive { 0.2 + (v + 0.9) / 2.0 } else { v }
        })
        .collect();
    Tensor::from_vec(values, dims.to_vec()).unwrap().to_dtype(dtype)
}

fn f32_values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).to_vec::<f32>().unwrap()
}

fn assert_agree(label: &str, fast: Option<Tensor>, rows: Option<Tensor>, agree: Agree) {
    let (fast, rows) = match (fast, rows) {
        (None, None) => return,
        (Some(f), Some(r)) => (f, r),
        (f, r) => panic!("{label}: vectorized {:?}, rows {:?}", f.is_some(), r.is_some()),
    };
    assert_eq!(fast.dims(), rows.dims(), "{label}: shapes");
    assert_eq!(fast.dtype(), rows.dtype(), "{label}: dtypes");
    for (i, (a, b)) in f32_values(&fast).into_iter().zip(f32_values(&rows)).enumerate() {
        let ok = match agree {
            Exact => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            Close(tol) => (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs())) || (a.is_nan() && b.is_nan()),
        };
        assert!(ok, "{label}: element {i}: vectorized {a:e}, rows {b:e} ({agree:?})");
    }
}

fn vectorized() -> JacobianOptions {
    JacobianOptions::default().vectorized(true)
}

fn rows() -> JacobianOptions {
    JacobianOptions::default().vectorized(false)
}

/// `jacobian` both ways, and `batch_jacobian` both ways where target and source share a
/// leading dimension.
fn check(label: &str, x: &Tensor, f: Op, agree: Agree) {
    let x = Variable::new(x.clone());
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| f(&x)).unwrap_or_else(|e| panic!("{label}: forward: {e}"));
    let fast = tape.jacobian_with(&y, &x, vectorized()).unwrap_or_else(|e| panic!("{label}: vectorized: {e}"));
    let slow = tape.jacobian_with(&y, &x, rows()).unwrap_or_else(|e| panic!("{label}: rows: {e}"));
    assert!(fast.is_some(), "{label}: connected");
    assert_agree(&format!("{label} (jacobian)"), fast, slow, agree);
    if y.rank() > 0 && x.read().rank() > 0 && y.dims()[0] == x.read().dims()[0] {
        let fast = tape.batch_jacobian_with(&y, &x, vectorized()).unwrap();
        let slow = tape.batch_jacobian_with(&y, &x, rows()).unwrap();
        assert_agree(&format!("{label} (batch_jacobian)"), fast, slow, agree);
    }
}

fn check_all(cases: &[(&str, &[usize], bool, Op, Agree)], dtype: DType) {
    for &(label, dims, positive, f, agree) in cases {
        check(&format!("{label} {dtype:?} {dims:?}"), &input(dims, positive, dtype), f, agree);
    }
}

#[test]
fn unary_ops_agree_bit_for_bit() {
    let cases: &[(&str, &[usize], bool, Op, Agree)] = &[
        ("neg", &[3, 4], false, |x| x.neg(), Exact),
        ("abs", &[3, 4], false, |x| x.abs(), Exact),
        ("exp", &[3, 4], false, |x| x.exp(), Exact),
        ("log", &[3, 4], true, |x| x.log(), Exact),
        ("sqrt", &[3, 4], true, |x| x.sqrt(), Exact),
        ("rsqrt", &[3, 4], true, |x| x.rsqrt(), Exact),
        ("square", &[3, 4], false, |x| x.square(), Exact),
        ("tanh", &[3, 4], false, |x| x.tanh(), Exact),
        ("sigmoid", &[3, 4], false, |x| x.sigmoid(), Exact),
        ("relu", &[3, 4], false, |x| x.relu(), Exact),
        ("sin", &[3, 4], false, |x| x.sin(), Exact),
        ("cos", &[3, 4], false, |x| x.cos(), Exact),
        ("softplus", &[3, 4], false, |x| x.softplus(), Exact),
        ("log1p", &[3, 4], true, |x| x.log1p(), Exact),
        ("expm1", &[3, 4], false, |x| x.expm1(), Exact),
        ("reciprocal", &[3, 4], true, |x| x.reciprocal(), Exact),
        ("chain", &[5], false, |x| x.tanh()?.exp()?.sin(), Exact),
        ("scalar source", &[], false, |x| x.exp()?.square(), Exact),
    ];
    check_all(cases, DType::F32);
    check_all(cases, DType::F16);
}

#[test]
fn binary_ops_broadcasting_both_ways_agree_bit_for_bit() {
    let cases: &[(&str, &[usize], bool, Op, Agree)] = &[
        // x [3, 4] against a scalar, a row [4] and a column [3, 1].
        ("add scalar", &[3, 4], false, |x| x + 2.0, Exact),
        ("sub row", &[3, 4], false, |x| x - constant([1.0, 2.0, 3.0, 4.0]), Exact),
        ("rsub column", &[3, 4], false, |x| constant([[1.0], [2.0], [3.0]]) - x, Exact),
        ("mul row", &[3, 4], false, |x| x * constant([1.0, -2.0, 3.0, 0.5]), Exact),
        ("div column", &[3, 4], false, |x| x / constant([[1.5], [2.0], [-3.0]]), Exact),
        ("rdiv scalar", &[3, 4], true, |x| constant(2.0) / x, Exact),
        ("pow scalar", &[3, 4], true, |x| x.pow(2.5), Exact),
        ("rpow", &[3, 4], false, |x| constant([[1.5], [2.0], [0.5]]).pow(x), Exact),
        ("maximum row", &[3, 4], false, |x| x.maximum(constant([0.0, 0.1, -0.2, 0.3])), Exact),
        ("minimum column", &[3, 4], false, |x| x.minimum(constant([[0.0], [0.1], [-0.2]])), Exact),
        // The source itself broadcast: a row, a column and a scalar against [3, 4].
        ("row source", &[4], false, |x| input(&[3, 4], false, DType::F32) * x, Exact),
        ("column source", &[3, 1], false, |x| x + input(&[3, 4], false, DType::F32), Exact),
        ("scalar source", &[], true, |x| input(&[3, 4], true, DType::F32).pow(x), Exact),
        ("column source, div", &[3, 1], true, |x| input(&[3, 4], false, DType::F32) / x, Exact),
        ("rank 3 from column", &[3, 1], false, |x| x.maximum(input(&[2, 3, 4], false, DType::F32)), Exact),
        // Both operands from the source, one broadcast.
        ("x * rowsum(x)", &[3, 4], false, |x| x * x.sum(&[1], true)?, Exact),
        ("x - colmean(x)", &[3, 4], false, |x| x - x.mean(&[0], false)?, Exact),
        ("x^x", &[3, 4], true, |x| x.pow(x), Exact),
    ];
    check_all(cases, DType::F32);
}

#[test]
fn reductions_agree_bit_for_bit() {
    let cases: &[(&str, &[usize], bool, Op, Agree)] = &[
        ("sum axis 0", &[3, 4], false, |x| x.sum(&[0], false), Exact),
        ("sum axis 1 keepdims", &[3, 4], false, |x| x.sum(&[1], true), Exact),
        ("sum axes 0, 2", &[2, 3, 4], false, |x| x.sum(&[0, 2], false), Exact),
        ("sum -1", &[2, 3, 4], false, |x| x.sum(&[-1], false), Exact),
        ("sum all", &[3, 4], false, |x| x.sum_all(), Exact),
        ("mean axis 1", &[3, 4], false, |x| x.mean(&[1], false), Exact),
        ("mean axis 0 keepdims", &[3, 4], false, |x| x.mean(&[0], true), Exact),
        ("mean all", &[2, 3, 4], false, |x| x.mean_all(), Exact),
        ("max axis 1", &[3, 4], false, |x| x.max(&[1], false), Exact),
        ("max axis 0 keepdims", &[3, 4], false, |x| x.max(&[0], true), Exact),
        ("max all", &[3, 4], false, |x| x.max_all(), Exact),
        ("max with ties", &[3, 4], false, |x| x.relu()?.max(&[1], true), Exact),
        ("sum of squares per row", &[3, 4], false, |x| x.square()?.sum(&[1], false)?.sqrt(), Exact),
    ];
    check_all(cases, DType::F32);
    check_all(&cases[..3], DType::F16);
}

#[test]
fn shape_ops_and_casts_agree_bit_for_bit() {
    let cases: &[(&str, &[usize], bool, Op, Agree)] = &[
        ("reshape", &[3, 4], false, |x| x.reshape([4, 3])?.tanh(), Exact),
        ("reshape flat", &[3, 4], false, |x| x.reshape([-1])?.exp(), Exact),
        ("transpose", &[3, 4], false, |x| x.transpose(&[1, 0])?.sin(), Exact),
        ("transpose rank 3", &[2, 3, 4], false, |x| x.transpose(&[2, 0, 1])?.tanh()?.reshape([4, 6]), Exact),
        ("broadcast_to column", &[3, 1], false, |x| x.broadcast_to([3, 4])?.tanh(), Exact),
        ("broadcast_to rank 3", &[4], false, |x| x.broadcast_to([2, 3, 4])?.square(), Exact),
        ("concat axis 0", &[3, 4], false, |x| concat(&[x.exp()?, x.sin()?], 0), Exact),
        ("concat axis 1", &[3, 4], false, |x| concat(&[x.to_tensor(), x.square()?], 1), Exact),
        ("concat axis -1", &[2, 3, 2], false, |x| concat(&[x.tanh()?, x.cos()?, x.to_tensor()], -1), Exact),
        ("cast to f16 and back", &[3, 4], false, |x| x.cast(DType::F16)?.square()?.cast(DType::F32), Exact),
        ("cast to f32 and back", &[3, 4], false, |x| x.cast(DType::F32)?.exp()?.cast(DType::F16), Exact),
    ];
    check_all(cases, DType::F32);
    check_all(cases, DType::F16);
}

#[test]
fn matmuls_agree_within_gemm_tolerance() {
    // x as the left operand, the right one or both, in every transpose combination.
    let cases: &[(&str, &[usize], bool, Op, Agree)] = &[
        ("x·W", &[3, 4], false, |x| x.matmul(input(&[4, 5], false, DType::F32)), GEMM),
        ("xᵀ·W", &[4, 3], false, |x| x.matmul_transposed(input(&[4, 5], false, DType::F32), true, false), GEMM),
        ("x·Wᵀ", &[3, 4], false, |x| x.matmul_transposed(input(&[5, 4], false, DType::F32), false, true), GEMM),
        ("xᵀ·Wᵀ", &[4, 3], false, |x| x.matmul_transposed(input(&[5, 4], false, DType::F32), true, true), GEMM),
        ("W·x", &[4, 3], false, |x| input(&[5, 4], false, DType::F32).matmul(x), GEMM),
        ("Wᵀ·x", &[4, 3], false, |x| input(&[4, 5], false, DType::F32).matmul_transposed(x, true, false), GEMM),
        ("W·xᵀ", &[3, 4], false, |x| input(&[5, 4], false, DType::F32).matmul_transposed(x, false, true), GEMM),
        ("Wᵀ·xᵀ", &[3, 4], false, |x| input(&[4, 5], false, DType::F32).matmul_transposed(x, true, true), GEMM),
        ("W·x vector", &[4, 1], false, |x| input(&[6, 4], false, DType::F32).matmul(x)?.tanh(), GEMM),
        ("x·x", &[4, 4], false, |x| x.matmul(x), GEMM),
        ("xᵀ·x", &[3, 4], false, |x| x.matmul_transposed(x, true, false), GEMM),
        ("x·xᵀ", &[3, 4], false, |x| x.matmul_transposed(x, false, true), GEMM),
        ("xᵀ·xᵀ", &[4, 4], false, |x| x.matmul_transposed(x, true, true), GEMM),
        // Batch dimensions: rank 3 against rank 2, both ways, and rank 3 against rank 3.
        ("x[2,3,4]·W", &[2, 3, 4], false, |x| x.matmul(input(&[4, 5], false, DType::F32)), GEMM),
        (
            "x[2,4,3]ᵀ·Wᵀ",
            &[2, 4, 3],
            false,
            |x| x.matmul_transposed(input(&[5, 4], false, DType::F32), true, true),
            GEMM,
        ),
        ("W[2,3,4]·x", &[4, 5], false, |x| input(&[2, 3, 4], false, DType::F32).matmul(x), GEMM),
        (
            "W[2,4,3]ᵀ·xᵀ",
            &[5, 4],
            false,
            |x| input(&[2, 4, 3], false, DType::F32).matmul_transposed(x, true, true),
            GEMM,
        ),
        ("x·W[2,4,5]", &[3, 4], false, |x| x.matmul(input(&[2, 4, 5], false, DType::F32)), GEMM),
        ("x[2,3,4]·x[2,3,4]ᵀ", &[2, 3, 4], false, |x| x.matmul_transposed(x, false, true), GEMM),
        (
            "x[1,3,4]ᵀ·W[2,3,5]",
            &[1, 3, 4],
            false,
            |x| x.matmul_transposed(input(&[2, 3, 5], false, DType::F32), true, false),
            GEMM,
        ),
        (
            "tanh(x·W)·V",
            &[3, 4],
            false,
            |x| x.matmul(input(&[4, 6], false, DType::F32))?.tanh()?.matmul(input(&[6, 2], false, DType::F32)),
            GEMM,
        ),
    ];
    check_all(cases, DType::F32);
    let f16_cases: &[(&str, &[usize], bool, Op, Agree)] = &[
        ("x·W", &[3, 4], false, |x| x.matmul(input(&[4, 5], false, DType::F16)), GEMM_F16),
        ("W·x vector", &[4, 1], false, |x| input(&[6, 4], false, DType::F16).matmul(x)?.tanh(), GEMM_F16),
        ("x·xᵀ", &[3, 4], false, |x| x.matmul_transposed(x, false, true), GEMM_F16),
    ];
    check_all(f16_cases, DType::F16);
}

#[test]
fn softmax_and_cross_entropy_agree_bit_for_bit() {
    let cases: &[(&str, &[usize], bool, Op, Agree)] = &[
        ("softmax -1", &[3, 4], false, |x| x.softmax(-1), Exact),
        ("softmax 0", &[3, 4], false, |x| x.softmax(0), Exact),
        ("softmax 1 of rank 3", &[2, 3, 4], false, |x| x.softmax(1), Exact),
        ("log_softmax -1", &[3, 4], false, |x| x.log_softmax(-1), Exact),
        ("log_softmax 0", &[3, 4], false, |x| x.log_softmax(0), Exact),
        ("log_softmax 1", &[3, 4], false, |x| x.log_softmax(1), Exact),
        (
            "sparse cross-entropy",
            &[3, 4],
            false,
            |x| x.sparse_softmax_cross_entropy(Tensor::from_vec(vec![1i32, 0, 3], [3])?),
            Exact,
        ),
        (
            "mean cross-entropy",
            &[3, 4],
            false,
            |x| x.sparse_softmax_cross_entropy(Tensor::from_vec(vec![2i32, 2, 0], [3])?)?.mean_all(),
            Exact,
        ),
    ];
    check_all(cases, DType::F32);
    check_all(cases, DType::F16);
}

/// The nested cases: the outer tape records the inner gradient's backward rules (including
/// `select` from max/min and pow, `slice` from concat, ReLU's fused gradient), whose own
/// backward rules then run batched in the outer jacobian.
#[test]
fn jacobian_of_a_gradient_agrees_with_rows() {
    let inner_gradients: &[(&str, Op)] = &[
        ("cubes", |x| x.pow(3)?.sum_all()),
        ("relu", |x| (x.relu()? * x)?.sum_all()),
        ("maximum", |x| x.maximum(x.sin()?)?.square()?.sum_all()),
        ("concat", |x| concat(&[x.square()?, x.exp()?], 0)?.tanh()?.sum_all()),
        ("softmax", |x| (x.softmax(-1)? * input(&[3, 4], false, DType::F32))?.sum_all()),
        ("log_softmax 0", |x| (x.log_softmax(0)? * input(&[3, 4], false, DType::F32))?.sum_all()),
        ("cross-entropy", |x| x.sparse_softmax_cross_entropy(Tensor::from_vec(vec![1i32, 0, 3], [3])?)?.sum_all()),
        ("max", |x| x.max(&[1], false)?.square()?.sum_all()),
    ];
    for &(label, f) in inner_gradients {
        let x = Variable::new(input(&[3, 4], false, DType::F32));
        let outer = GradientTape::new().persistent(true);
        let g = outer
            .record(|| -> Result<Tensor> {
                let inner = GradientTape::new();
                let y = inner.record(|| f(&x))?;
                Ok(inner.gradient(&y, &x)?.expect("connected"))
            })
            .unwrap();
        let fast = outer.jacobian_with(&g, &x, vectorized()).unwrap();
        let slow = outer.jacobian_with(&g, &x, rows()).unwrap();
        assert_agree(&format!("hessian of {label}"), fast, slow, Exact);
        let fast = outer.batch_jacobian_with(&g, &x, vectorized()).unwrap();
        let slow = outer.batch_jacobian_with(&g, &x, rows()).unwrap();
        assert_agree(&format!("batch hessian of {label}"), fast, slow, Exact);
    }
}

/// The vectorized jacobian computed while an outer tape records is differentiable: the
/// gradient of the sum of a jacobian, through matmul, tanh and the batch_jacobian's
/// transpose, equals the row loop's.
#[test]
fn gradient_of_a_vectorized_jacobian_agrees_with_rows() {
    let w = input(&[4, 3], false, DType::F32);
    let x = Variable::new(input(&[2, 4], false, DType::F32));
    let through = |options: JacobianOptions, batch: bool| -> Tensor {
        let outer = GradientTape::new();
        let total = outer
            .record(|| -> Result<Tensor> {
                let inner = GradientTape::new();
                let y = inner.record(|| x.matmul(&w)?.tanh())?;
                let j = if batch {
                    inner.batch_jacobian_with(&y, &x, options)?
                } else {
                    inner.jacobian_with(&y, &x, options)?
                };
                (j.expect("connected") * input(if batch { &[2, 3, 4] } else { &[2, 3, 2, 4] }, false, DType::F32))?
                    .sum_all()
            })
            .unwrap();
        outer.gradient(&total, &x).unwrap().expect("second order connected")
    };
    for batch in [false, true] {
        let label = if batch { "batch_jacobian" } else { "jacobian" };
        assert_agree(label, Some(through(vectorized(), batch)), Some(through(rows(), batch)), GEMM);
    }
}

#[test]
fn the_default_is_vectorized_and_bounded_chunks_agree() {
    let x = Variable::new(input(&[5, 3], true, DType::F32));
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| x.pow(2.0)?.log()?.matmul(input(&[3, 2], false, DType::F32))).unwrap();
    let default = tape.jacobian(&y, &x).unwrap();
    let explicit = tape.jacobian_with(&y, &x, vectorized()).unwrap();
    assert_agree("default", default.clone(), explicit, Exact);
    for chunk in [1, 3, 4, 100] {
        let bounded = tape.jacobian_with(&y, &x, vectorized().parallel_iterations(chunk)).unwrap();
        assert_agree(&format!("chunks of {chunk}"), bounded, default.clone(), GEMM);
        let batch = tape.batch_jacobian_with(&y, &x, vectorized().parallel_iterations(chunk)).unwrap();
        assert_agree(
            &format!("batch, chunks of {chunk}"),
            batch,
            tape.batch_jacobian_with(&y, &x, rows()).unwrap(),
            GEMM,
        );
    }
}

#[test]
fn unconnected_targets_give_none_or_zeros_as_the_row_loop() {
    let x = Variable::new(input(&[3, 2], false, DType::F32));
    let other = Variable::new(input(&[3], false, DType::F32));
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| other.exp()).unwrap();
    for options in [vectorized(), rows()] {
        assert!(tape.jacobian_with(&y, &x, options).unwrap().is_none());
        assert!(tape.batch_jacobian_with(&y, &x, options).unwrap().is_none());
        let zero = options.unconnected(UnconnectedGradients::Zero);
        let j = tape.jacobian_with(&y, &x, zero).unwrap().expect("zeros");
        assert_eq!((j.dims(), f32_values(&j)), (&[3usize, 3, 2][..], vec![0.0; 18]));
        let b = tape.batch_jacobian_with(&y, &x, zero).unwrap().expect("zeros");
        assert_eq!((b.dims(), f32_values(&b)), (&[3usize, 2][..], vec![0.0; 6]));
    }
}

/// The jacobian of a target that is the source is the identity, by either path.
#[test]
fn jacobian_of_the_source_itself_is_the_identity() {
    let x = Variable::new(input(&[2, 3], false, DType::F32));
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| x.mul(1.0)).unwrap();
    let j = tape.jacobian_with(&y, &x, vectorized()).unwrap().expect("connected");
    let identity: Vec<f32> = (0..36).map(|i| if i / 6 == i % 6 { 1.0 } else { 0.0 }).collect();
    assert_eq!(f32_values(&j), identity);
}

// ---- Catalog II: reductions and scans ----

#[test]
fn catalog2_reductions_and_scans_agree_bit_for_bit() {
    let cases: &[(&str, &[usize], bool, Op, Agree)] = &[
        ("min axis 1", &[3, 4], false, |x| x.min(&[1], false), Exact),
        ("min all", &[3, 4], false, |x| x.min_all(), Exact),
        ("prod axis 0", &[3, 4], false, |x| x.prod(&[0], false), Exact),
        ("prod axes 0, 2 keepdims", &[2, 3, 4], true, |x| x.prod(&[0, 2], true), Exact),
        ("prod all", &[3, 4], true, |x| x.prod_all(), Exact),
        ("logsumexp -1", &[3, 4], false, |x| x.logsumexp(&[-1], false), Exact),
        ("variance 0", &[3, 4], false, |x| x.variance(&[0], false), Exact),
        ("std all keepdims", &[2, 3, 4], false, |x| x.std(&[0, 1, 2], true), Exact),
        ("cumsum 1", &[3, 4], false, |x| x.cumsum(1, false, false), Exact),
        ("cumsum 0 exclusive reverse", &[3, 4], false, |x| x.cumsum(0, true, true), Exact),
        ("cumprod 1 reverse", &[3, 4], true, |x| x.cumprod(1, false, true), Exact),
        ("cumprod -2 exclusive", &[2, 3, 4], false, |x| x.cumprod(-2, true, false), Exact),
    ];
    check_all(cases, DType::F32);
    check_all(cases, DType::F16);
}

#[test]
fn catalog2_hessians_agree_with_rows() {
    let inner_gradients: &[(&str, Op)] = &[
        ("prod", |x| x.prod(&[1], false)?.sum_all()),
        ("prod all", |x| x.prod_all()),
        ("cumprod", |x| x.cumprod(1, true, false)?.square()?.sum_all()),
        ("cumsum", |x| x.cumsum(0, false, true)?.square()?.sum_all()),
        ("logsumexp", |x| x.logsumexp(&[1], false)?.square()?.sum_all()),
        ("variance", |x| x.variance(&[0], false)?.sum_all()),
        ("std", |x| x.std(&[1], true)?.sum_all()),
        ("min", |x| x.min(&[1], false)?.square()?.sum_all()),
    ];
    for &(label, f) in inner_gradients {
        let x = Variable::new(input(&[3, 4], false, DType::F32));
        let outer = GradientTape::new().persistent(true);
        let g = outer
            .record(|| -> Result<Tensor> {
                let inner = GradientTape::new();
                let y = inner.record(|| f(&x))?;
                Ok(inner.gradient(&y, &x)?.expect("connected"))
            })
            .unwrap();
        let fast = outer.jacobian_with(&g, &x, vectorized()).unwrap();
        let slow = outer.jacobian_with(&g, &x, rows()).unwrap();
        assert_agree(&format!("hessian of {label}"), fast, slow, Exact);
        let fast = outer.batch_jacobian_with(&g, &x, vectorized()).unwrap();
        let slow = outer.batch_jacobian_with(&g, &x, rows()).unwrap();
        assert_agree(&format!("batch hessian of {label}"), fast, slow, Exact);
    }
}

/// The gradient of `Σ f(x)²` taken on an inner tape: a jacobian of it runs the batched
/// forms of the rules of `f`'s gradient (the adjoint ops: segment sums, scatters, puts).
fn inner_gradient(x: &Variable, f: impl Fn(&Variable) -> Result<Tensor>) -> Result<Tensor> {
    let tape = GradientTape::new();
    let y = tape.record(|| f(x)?.square()?.sum_all())?;
    Ok(tape.gradient(&y, x)?.expect("connected"))
}

#[test]
fn slicing_and_indexing_ops_agree_bit_for_bit() {
    let cases: &[(&str, &[usize], bool, Op, Agree)] = &[
        ("slice", &[3, 4], false, |x| x.slice(&[1, 1], &[2, -1])?.tanh(), Exact),
        ("strided_slice backwards", &[4, 5], false, |x| x.strided_slice(&[-1, 4], &[0, 0], &[-1, -2])?.sin(), Exact),
        ("reverse", &[3, 4], false, |x| x.reverse(&[0, -1])?.exp(), Exact),
        ("pad constant", &[3, 4], false, |x| x.pad(&[[1, 0], [2, 1]], PadMode::Constant(0.5))?.square(), Exact),
        ("pad reflect", &[3, 4], false, |x| x.pad(&[[2, 1], [1, 3]], PadMode::Reflect)?.sin(), Exact),
        ("pad symmetric", &[3, 4], false, |x| x.pad(&[[3, 0], [1, 4]], PadMode::Symmetric)?.tanh(), Exact),
        ("gather axis 0", &[3, 4], false, |x| x.gather(constant([2, 0, 2, 1]), 0)?.exp(), Exact),
        ("gather axis 1, 2-D indices", &[3, 4], false, |x| x.gather(constant([[3, 0], [3, 3]]), 1)?.sin(), Exact),
        (
            "unsorted_segment_sum",
            &[4, 3],
            false,
            |x| unsorted_segment_sum(x, constant([1, -1, 1, 0]), 3)?.tanh(),
            Exact,
        ),
        ("gather_nd", &[3, 4], false, |x| x.gather_nd(constant([[2, 1], [0, 3], [2, 1]]))?.exp(), Exact),
        ("gather_nd rows", &[3, 4], false, |x| x.gather_nd(constant([[2], [0]]))?.sin(), Exact),
        ("scatter_nd", &[3, 2], false, |x| scatter_nd(constant([[1], [3], [1]]), x, [5, 2])?.tanh(), Exact),
        ("tile", &[2, 3], false, |x| x.tile(&[2, 3])?.sin(), Exact),
        ("stack", &[3, 4], false, |x| stack(&[x.exp()?, x.to_tensor()], 1), Exact),
        ("unstack", &[3, 4], false, |x| Ok(x.unstack(1)?.swap_remove(2).exp()? * 2.0)?, Exact),
        ("split", &[3, 4], false, |x| x.split(&[1, 3], -1)?.swap_remove(1).tanh(), Exact),
        ("squeeze and expand_dims", &[3, 1, 4], false, |x| x.squeeze(&[])?.expand_dims(0)?.sin(), Exact),
        ("einsum transpose", &[3, 4], false, |x| einsum("ij->ji", &[x])?.exp(), Exact),
        ("einsum diagonal", &[4, 4], false, |x| einsum("ii->i", &[x])?.exp(), Exact),
        ("einsum outer", &[3], false, |x| einsum("i,j->ij", &[x.to_tensor(), x.exp()?]), Exact),
        ("einsum contraction", &[3, 4], false, |x| einsum("ij,kj->ik", &[x.to_tensor(), x.sin()?]), GEMM),
        // Jacobians of gradients: the adjoint ops' own batched rules.
        ("d gather", &[3, 4], false, |x| inner_gradient(x, |x| x.gather(constant([2, 0, 2]), 0)), Exact),
        (
            "d unsorted_segment_sum",
            &[4, 3],
            false,
            |x| inner_gradient(x, |x| unsorted_segment_sum(x, constant([1, -1, 1, 0]), 2)),
            Exact,
        ),
        ("d gather_nd", &[3, 4], false, |x| inner_gradient(x, |x| x.gather_nd(constant([[2, 1], [2, 1]]))), Exact),
        (
            "d scatter_nd",
            &[3, 2],
            false,
            |x| inner_gradient(x, |x| scatter_nd(constant([[1], [3], [1]]), x, [5, 2])),
            Exact,
        ),
        (
            "d strided_slice",
            &[4, 5],
            false,
            |x| inner_gradient(x, |x| x.strided_slice(&[3, 0], &[0, 5], &[-2, 2])),
            Exact,
        ),
        ("d pad", &[3, 4], false, |x| inner_gradient(x, |x| x.pad(&[[1, 1], [0, 2]], PadMode::Constant(1.0))), Exact),
        ("d pad reflect", &[3, 4], false, |x| inner_gradient(x, |x| x.pad(&[[2, 1], [1, 3]], PadMode::Reflect)), Exact),
    ];
    check_all(cases, DType::F32);
    check_all(cases, DType::F16);
}
