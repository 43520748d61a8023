//! Every backward rule, run both ways: as fused first-order kernels
//! (`Rule::apply_first_order`) and as the composed differentiable ops (`Rule::apply`). The
//! bits must be the same, for every shape (vector bodies, padded tails, scalars, empty).

use tapeflow_dtype::{DType, Shape};
use tapeflow_kernels::{self as kernels, BinaryOp, ReduceOp, UnaryOp};

use crate::context::Rule;
use crate::ops::{binary, unary};
use crate::runtime::Tensor;

/// The binary ops that are recorded (the others are piecewise constant: comparisons,
/// floordiv).
const BINARY: [BinaryOp; 10] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::SquaredDifference,
    BinaryOp::FloorMod,
    BinaryOp::Atan2,
];

/// Values over several magnitudes and both signs, with zeros, ties and a NaN among them.
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match (i * 7 + seed) % 23 {
            0 => 0.0,
            1 => -0.0,
            2 if n > 8 => f32::NAN,
            3 => 1.0,
            k => ((((i + 31 * seed) * 2654435761) % 2001) as f32 / 1000.0 - 1.0) * (1 + k % 5) as f32 * 1.7,
        })
        .collect()
}

fn tensor(dims: &[usize], seed: usize, dtype: DType) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(values(n, seed), Shape::from(dims.to_vec())).unwrap().to_dtype(dtype)
}

/// The values' bits, every NaN as one canonical NaN: which NaN a product of two NaNs
/// returns depends on its operand order (x86 keeps the first), which LLVM may commute.
fn bits(t: &Option<Tensor>) -> Option<Vec<u32>> {
    let canonical = |v: &f32| if v.is_nan() { f32::NAN.to_bits() } else { v.to_bits() };
    t.as_ref().map(|t| t.to_dtype(DType::F32).to_vec::<f32>().unwrap().iter().map(canonical).collect())
}

/// Both ways at every instruction-set level this CPU has.
fn both_ways(rule: &Rule, g: &Tensor, needs: &[bool], what: &str) {
    for level in kernels::isa::supported_levels() {
        kernels::isa::with_isa(level.isa(), || {
            let composed = rule.apply(g, needs).unwrap();
            let fused = rule.apply_first_order(g, needs).unwrap();
            assert_eq!(composed.len(), fused.len(), "{what}");
            for (k, (c, f)) in composed.iter().zip(&fused).enumerate() {
                assert_eq!(bits(c), bits(f), "{what}, input {k}, {level:?}");
            }
        });
    }
}

const SHAPES: [&[usize]; 6] = [&[], &[1], &[5], &[16], &[37], &[3, 70]];

#[test]
fn unary_rules_give_the_same_bits_fused_and_composed() {
    for dtype in [DType::F32, DType::F16] {
        for dims in SHAPES {
            for op in UnaryOp::ALL {
                let x = tensor(dims, 1, dtype);
                let y = kernels::unary(op, &x).unwrap();
                let g = tensor(dims, 2, dtype);
                let rule = unary::rule(op, &x, &y);
                // Sign's zeros, and floor, ceil and round (never recorded), take the composed
                // rule both ways.
                if let (DType::F32, Rule::Unary { x, y, .. }, true) =
                    (dtype, &rule, kernels::grad::unary_grad_fused(op))
                {
                    // The fused kernel is what runs for float32.
                    assert!(unary::derivative_first_order(op, x, y, &g).unwrap().is_some(), "{op:?}");
                }
                both_ways(&rule, &g, &[true], &format!("{op:?} {dims:?} {dtype}"));
            }
        }
    }
}

#[test]
fn binary_rules_give_the_same_bits_fused_and_composed() {
    // Same shapes (fused), and broadcast operands (which take the composed path both ways).
    let pairs: [(&[usize], &[usize]); 8] = [
        (&[], &[]),
        (&[5], &[5]),
        (&[37], &[37]),
        (&[3, 70], &[3, 70]),
        (&[3, 70], &[]),
        (&[], &[37]),
        (&[3, 70], &[70]),
        (&[3, 1], &[1, 5]),
    ];
    for dtype in [DType::F32, DType::F16] {
        for (da, db) in pairs {
            for op in BINARY {
                let (a, b) = (tensor(da, 3, dtype), tensor(db, 4, dtype));
                let out = kernels::binary(op, &a, &b).unwrap();
                let g = tensor(out.dims(), 5, dtype);
                let rule = if matches!(op, BinaryOp::Add | BinaryOp::Sub) {
                    Rule::AddSub { sub: op == BinaryOp::Sub, a: a.shape().clone(), b: b.shape().clone() }
                } else {
                    Rule::Binary { op, a: a.clone(), b: b.clone(), out: (op == BinaryOp::Pow).then_some(Box::new(out)) }
                };
                if dtype == DType::F32 && da == db && kernels::grad::binary_grad_fused(op) {
                    let fused = binary::derivatives_first_order(op, &a, &b, &g, &[true, false]).unwrap();
                    assert!(fused.is_some(), "{op:?} {da:?}");
                }
                for needs in [[true, true], [true, false], [false, true]] {
                    both_ways(&rule, &g, &needs, &format!("{op:?} {da:?} {db:?} {needs:?} {dtype}"));
                }
            }
        }
    }
}

#[test]
fn the_other_rules_give_the_same_bits_both_ways() {
    let x = tensor(&[4, 6], 6, DType::F32);
    let w = tensor(&[6, 3], 7, DType::F32);
    let matmul = Rule::Matmul { a: x.clone(), b: w.clone(), transpose_a: false, transpose_b: false };
    both_ways(&matmul, &tensor(&[4, 3], 8, DType::F32), &[true, true], "matmul");
    for op in ReduceOp::ALL {
        let y = kernels::reduce(op, &x, &[1], false).unwrap();
        let rule = Rule::Reduce { op, x: x.clone(), y, axes: smallvec::smallvec![1] };
        both_ways(&rule, &tensor(&[4], 9, DType::F32), &[true], &format!("{op:?}"));
    }
    both_ways(&Rule::Reshape { shape: Shape::from(vec![4, 6]) }, &tensor(&[24], 10, DType::F32), &[true], "reshape");
    both_ways(&Rule::BroadcastTo { shape: Shape::from(vec![1, 6]) }, &x, &[true], "broadcast_to");
    both_ways(&Rule::Transpose { inverse: smallvec::smallvec![1, 0] }, &x, &[true], "transpose");
    both_ways(&Rule::Cast { from: DType::F16 }, &x, &[true], "cast");
    both_ways(&Rule::Identity, &x, &[true], "identity");
}
