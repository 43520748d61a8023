//! Elementwise ops on tensors: definitions, broadcasting, errors, float16 rounding, and
//! the split paths at every level.

use super::*;
type T = Tensor<()>;

/// Ops large enough to split over rayon's threads give, at every level, the bits of the
/// level's slice kernel run over the whole input on this thread: the level reaches the
/// worker threads (the baseline of a plain build has no FMA, so a worker at another
/// level would change the transcendentals' last bits), and chunking changes nothing.
#[test]
fn split_ops_give_the_kernels_bits_at_every_level() {
    let n = 3 * CHUNK + 37;
    let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 / 97.0 - 10.0).collect();
    let ys: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 1999) as f32 / 13.0 + 0.5).collect();
    let (x, y) = (T::from_slice(&xs, [n]).unwrap(), T::from_slice(&ys, [n]).unwrap());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    for level in isa::supported_levels() {
        isa::with_isa(level.isa(), || {
            for op in [UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Log, UnaryOp::Sin, UnaryOp::Sigmoid] {
                let got = unary(op, &x).unwrap().to_vec::<f32>().unwrap();
                let mut want = vec![0.0f32; n];
                simd::unary_f32(level, op, &xs, &mut want);
                assert_eq!(bits(&got), bits(&want), "{op:?} at {level:?}");
            }
            for op in [BinaryOp::Add, BinaryOp::Div, BinaryOp::Maximum] {
                let got = binary(op, &x, &y).unwrap().to_vec::<f32>().unwrap();
                let mut want = vec![0.0f32; n];
                simd::binary_f32(level, op, Operand::Run(&xs), Operand::Run(&ys), &mut want);
                assert_eq!(bits(&got), bits(&want), "{op:?} at {level:?}");
            }
            // float16: widened, computed and rounded per level, split the same way.
            let h = x.to_dtype(DType::F16);
            let got = unary(UnaryOp::Exp, &h).unwrap().to_vec::<f16>().unwrap();
            let wide: Vec<f32> = h.to_vec::<f16>().unwrap().iter().map(|v| v.to_f32()).collect();
            let mut e = vec![0.0f32; n];
            simd::unary_f32(level, UnaryOp::Exp, &wide, &mut e);
            let want: Vec<f16> = e.iter().map(|&v| f16::from_f32(v)).collect();
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "f16 exp at {level:?}");
        });
    }
}

/// relu_grad against its definition (`g` where `x > 0`, else +0) over special values,
/// every length from 0 to 80 (vector tails) and one length on the parallel path, in
/// both float dtypes, and bit for bit against the select/greater composition it fuses.
#[test]
fn relu_grad_matches_its_definition() {
    let specials = [0.0f32, -0.0, 1.0, -1.0, f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-45, -1e-45, 3.5];
    for len in (0..=80).chain([(1 << 18) + 17]) {
        let xv: Vec<f32> = (0..len).map(|k| specials[(k * 7 + len) % specials.len()]).collect();
        let gv: Vec<f32> = (0..len).map(|k| specials[(k * 3 + 1) % specials.len()] - 0.25).collect();
        for dtype in [DType::F32, DType::F16] {
            let x = T::from_vec(xv.clone(), [len]).unwrap().to_dtype(dtype);
            let g = T::from_vec(gv.clone(), [len]).unwrap().to_dtype(dtype);
            let got = relu_grad(&x, &g).unwrap();
            assert_eq!((got.dtype(), got.dims()), (dtype, &[len][..]));
            let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            let (xs, gs, out) = (x.to_f64_vec(), g.to_f64_vec(), got.to_f64_vec());
            let zero = T::scalar(0.0f32).to_dtype(dtype);
            let composed = select(&binary(BinaryOp::Greater, &x, &zero).unwrap(), &g, &zero).unwrap().to_f64_vec();
            for k in 0..len {
                let want = if xs[k] > 0.0 { gs[k] } else { 0.0 };
                assert!(same(out[k], want), "len {len} {dtype:?} [{k}]: {} vs {want}", out[k]);
                assert!(same(out[k], composed[k]), "len {len} {dtype:?} [{k}]: {} vs {}", out[k], composed[k]);
            }
        }
    }
    let (x, g) = (T::from_vec(vec![1.0f32; 6], [2, 3]).unwrap(), T::from_vec(vec![1.0f32; 6], [3, 2]).unwrap());
    let err = relu_grad(&x, &g).unwrap_err().to_string();
    assert!(err.contains("relu_grad") && err.contains("(2, 3) float32"), "{err}");
    assert!(relu_grad(&x, &x.to_dtype(DType::F16)).is_err());
    assert!(relu_grad(&x.to_dtype(DType::I32), &x.to_dtype(DType::I32)).is_err());
}

/// Every mix of full-shape and one-element operands (the flat path) and of broadcast
/// rows and columns (the strided path), in every dtype of the condition, against the
/// element-by-element definition.
#[test]
fn select_matches_its_definition_on_flat_and_strided_paths() {
    let shapes: [&[usize]; 5] = [&[2, 3], &[], &[1, 3], &[2, 1], &[1]];
    let values = |shape: &[usize], base: f32| {
        let n: usize = shape.iter().product();
        T::from_vec((0..n).map(|k| base + k as f32).collect::<Vec<_>>(), shape.to_vec()).unwrap()
    };
    let conds = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        let pattern: Vec<f32> = (0..n).map(|k| [0.0, 1.0, f32::NAN, -0.0, 2.0, 0.0][k % 6]).collect();
        let f = T::from_vec(pattern, shape.to_vec()).unwrap();
        [f.to_dtype(DType::F16), f.to_dtype(DType::I32), f]
    };
    for cs in shapes {
        for cond in conds(cs) {
            for xs in shapes {
                for ys in shapes {
                    let (x, y) = (values(xs, 10.0), values(ys, 100.0));
                    let got = select(&cond, &x, &y).unwrap();
                    let full = |t: &T| crate::layout::broadcast_to(t, got.shape()).unwrap().to_f64_vec();
                    let (c, xv, yv) = (full(&cond), full(&x), full(&y));
                    for (k, g) in got.to_f64_vec().iter().enumerate() {
                        let want = if c[k] != 0.0 { xv[k] } else { yv[k] };
                        assert_eq!(*g, want, "cond {:?} {cs:?}, x {xs:?}, y {ys:?}, element {k}", cond.dtype());
                    }
                }
            }
        }
    }
}

#[test]
fn binary_broadcasts_rows_and_columns() {
    let a = T::from_vec(vec![1.0f32, 2.0, 3.0], [3, 1]).unwrap();
    let b = T::from_vec(vec![10.0f32, 20.0], [2]).unwrap();
    let c = binary(BinaryOp::Add, &a, &b).unwrap();
    assert_eq!(c.dims(), &[3, 2]);
    assert_eq!(c.to_vec::<f32>().unwrap(), vec![11.0, 21.0, 12.0, 22.0, 13.0, 23.0]);
}

#[test]
fn int_division_truncates_and_refuses_zero() {
    let a = T::from_vec(vec![7i32, -7, i32::MIN], [3]).unwrap();
    let b = T::from_vec(vec![2i32, 2, -1], [3]).unwrap();
    assert_eq!(binary(BinaryOp::Div, &a, &b).unwrap().to_vec::<i32>().unwrap(), vec![3, -3, i32::MIN]);
    let z = T::from_vec(vec![1i32, 0, 1], [3]).unwrap();
    let err = binary(BinaryOp::Div, &a, &z).unwrap_err().to_string();
    assert!(err.contains("div") && err.contains("int32"), "{err}");
}

#[test]
fn maximum_propagates_nan() {
    let a = T::from_vec(vec![f32::NAN, 1.0], [2]).unwrap();
    let b = T::from_vec(vec![0.0f32, f32::NAN], [2]).unwrap();
    let m = binary(BinaryOp::Maximum, &a, &b).unwrap().to_vec::<f32>().unwrap();
    assert!(m[0].is_nan() && m[1].is_nan());
}

#[test]
fn mismatches_are_errors() {
    let a = T::from_vec(vec![1.0f32; 6], [2, 3]).unwrap();
    let b = T::from_vec(vec![1.0f32; 4], [4]).unwrap();
    let msg = binary(BinaryOp::Mul, &a, &b).unwrap_err().to_string();
    assert!(msg.contains("mul") && msg.contains("(2, 3)") && msg.contains("(4,)"), "{msg}");
    let i = T::from_vec(vec![1i32; 3], [3]).unwrap();
    assert!(binary(BinaryOp::Add, &a, &i).is_err());
    assert!(unary(UnaryOp::Exp, &i).is_err());
}

#[test]
fn f16_rounds_once() {
    let a = T::from_vec(vec![f16::from_f32(0.1); 3], [3]).unwrap();
    let s = binary(BinaryOp::Add, &a, &a).unwrap();
    assert_eq!(s.dtype(), DType::F16);
    assert_eq!(s.to_vec::<f16>().unwrap()[0], f16::from_f32(f16::from_f32(0.1).to_f32() * 2.0));
}

/// The one-element path of `binary` (scalar code) gives the vector kernel's bits, for every
/// op, at every level, on special values (NaN, signed zeros, infinities, subnormals, ties).
#[test]
fn scalar_operands_give_the_vector_kernels_bits() {
    let special = [0.0f32, -0.0, 1.0, -1.5, 2.0, 3.25, 0.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-40, -7e-39];
    for level in crate::isa::supported_levels() {
        crate::isa::with_isa(level.isa(), || {
            for op in BinaryOp::ALL {
                for &x in &special {
                    for &y in &special {
                        let one = binary(op, &T::scalar(x), &T::from_vec(vec![y], [1, 1]).unwrap()).unwrap();
                        assert_eq!(one.dims(), &[1, 1]);
                        // 17 elements: a whole vector and a padded tail, through the kernel.
                        let wide = binary(
                            op,
                            &T::from_vec(vec![x; 17], [17]).unwrap(),
                            &T::from_vec(vec![y; 17], [17]).unwrap(),
                        )
                        .unwrap();
                        let (s, w) = (one.to_vec::<f32>().unwrap()[0], wide.to_vec::<f32>().unwrap());
                        assert!(
                            w.iter().all(|v| v.to_bits() == s.to_bits()),
                            "{op:?}({x}, {y}) at {level:?}: {s} vs {w:?}"
                        );
                    }
                }
            }
        })
    }
}
