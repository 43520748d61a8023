//! Mask kernels against `reference` at every level: tails, empty inputs, splats, the
//! values that break careless code, broadcasting, the split paths and the errors.

use super::*;
use crate::parallel::CHUNK;
use crate::reference;

type T = Tensor<()>;

/// Lengths around the 16-lane vector: tails, an empty run, several vectors.
const LENGTHS: [usize; 9] = [0, 1, 15, 16, 17, 31, 33, 64, 100];

const SPECIAL: [f32; 10] = [0.0, -0.0, 1.0, -1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-45, f32::MAX, 2.5];

/// `n` values cycling through the specials and a few ordinary ones (with repeats, so
/// equal pairs occur).
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| SPECIAL[(i * 7 + seed * 3) % SPECIAL.len()]).collect()
}

/// Bools as the bytes the kernels read and write (0 or 1).
fn bytes(v: &[bool]) -> Vec<u8> {
    v.iter().map(|&b| u8::from(b)).collect()
}

#[test]
fn float32_comparisons_match_the_reference_at_every_level() {
    for level in isa::supported_levels() {
        for n in LENGTHS {
            let (x, y) = (values(n, 1), values(n, 2));
            for op in CompareOp::ALL {
                let mut got = vec![0u8; n];
                compare_f32(level, op, Side::Run(&x), Side::Run(&y), &mut got);
                let want: Vec<bool> =
                    x.iter().zip(&y).map(|(&a, &b)| reference::compare(op, a.into(), b.into())).collect();
                assert_eq!(got, bytes(&want), "{op:?} n={n} at {level:?}");
                for splat in SPECIAL {
                    compare_f32(level, op, Side::Run(&x), Side::Splat(splat), &mut got);
                    let want: Vec<bool> = x.iter().map(|&a| reference::compare(op, a.into(), splat.into())).collect();
                    assert_eq!(got, bytes(&want), "{op:?} run-splat {splat} n={n} at {level:?}");
                    compare_f32(level, op, Side::Splat(splat), Side::Run(&y), &mut got);
                    let want: Vec<bool> = y.iter().map(|&b| reference::compare(op, splat.into(), b.into())).collect();
                    assert_eq!(got, bytes(&want), "{op:?} splat-run {splat} n={n} at {level:?}");
                }
            }
        }
    }
}

#[test]
fn classification_matches_the_reference_at_every_level() {
    let odd = [f32::from_bits(0x7f80_0001), f32::from_bits(0xffc0_0000), -f32::MIN_POSITIVE, 3.0e38];
    for level in isa::supported_levels() {
        for n in LENGTHS {
            let x: Vec<f32> =
                values(n, 3).iter().zip(odd.iter().cycle()).map(|(&a, &b)| if n % 2 == 0 { a } else { b }).collect();
            for op in ClassifyOp::ALL {
                let mut got = vec![0u8; n];
                classify_f32(level, op, &x, &mut got);
                let want: Vec<bool> = x.iter().map(|&v| reference::classify_f32(op, v)).collect();
                assert_eq!(got, bytes(&want), "{op:?} n={n} at {level:?}");
            }
        }
    }
}

#[test]
fn logical_and_int_and_bool_comparisons_match_the_reference_at_every_level() {
    for level in isa::supported_levels() {
        for n in LENGTHS {
            let p: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
            let q: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
            let (pb, qb) = (bytes(&p), bytes(&q));
            let mut got = vec![0u8; n];
            for op in LogicalOp::ALL {
                logical_bool(level, op, Side::Run(&pb), Side::Run(&qb), &mut got);
                let want: Vec<bool> = p.iter().zip(&q).map(|(&a, &b)| reference::logical(op, a, b)).collect();
                assert_eq!(got, bytes(&want), "{op:?} n={n} at {level:?}");
                logical_bool(level, op, Side::Run(&pb), Side::Splat(1), &mut got);
                let want: Vec<bool> = p.iter().map(|&a| reference::logical(op, a, true)).collect();
                assert_eq!(got, bytes(&want), "{op:?} splat n={n} at {level:?}");
            }
            not_bool(level, &pb, &mut got);
            assert_eq!(got, bytes(&p.iter().map(|&a| !a).collect::<Vec<_>>()), "not n={n} at {level:?}");
            let a: Vec<i32> = (0..n).map(|i| (i as i32 % 5) - 2).collect();
            let b: Vec<i32> = (0..n).map(|i| [i32::MIN, 0, 1, i32::MAX, -1][i % 5]).collect();
            for op in CompareOp::ALL {
                compare_i32(level, op, Side::Run(&a), Side::Run(&b), &mut got);
                let want: Vec<bool> =
                    a.iter().zip(&b).map(|(&x, &y)| reference::compare(op, x.into(), y.into())).collect();
                assert_eq!(got, bytes(&want), "int32 {op:?} n={n} at {level:?}");
            }
            for op in [CompareOp::Equal, CompareOp::NotEqual] {
                compare_bool(level, op, Side::Run(&pb), Side::Run(&qb), &mut got);
                let want: Vec<bool> = p.iter().zip(&q).map(|(&x, &y)| (x == y) == (op == CompareOp::Equal)).collect();
                assert_eq!(got, bytes(&want), "bool {op:?} n={n} at {level:?}");
            }
        }
    }
}

/// `op` of every pair of broadcast elements, by index arithmetic (the plainest loop).
fn broadcast_reference(op: CompareOp, a: &T, b: &T) -> Vec<bool> {
    let out = crate::layout::broadcast_dims(a.dims(), b.dims()).unwrap();
    let (sa, sb) = (broadcast_strides(a.dims(), out.dims()), broadcast_strides(b.dims(), out.dims()));
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let mut want = vec![false; out.num_elements()];
    for_each_strided(out.dims(), [&sa[..], &sb[..]], |o, [i, j]| want[o] = reference::compare(op, x[i], y[j]));
    want
}

#[test]
fn comparisons_broadcast_for_every_dtype() {
    let shapes: [(&[usize], &[usize]); 6] = [
        (&[3, 4], &[3, 4]),
        (&[2, 3], &[3]),
        (&[4, 1], &[1, 5]),
        (&[], &[17]),
        (&[2, 1, 33], &[3, 1]),
        (&[0, 3], &[3]),
    ];
    for level in isa::supported_levels() {
        isa::with_isa(level.isa(), || {
            for (da, db) in shapes {
                let na: usize = da.iter().product();
                let nb: usize = db.iter().product();
                let a = T::from_vec(values(na, 4), da).unwrap();
                let b = T::from_vec(values(nb, 5), db).unwrap();
                let ints = |t: &T| t.to_dtype(DType::I32);
                for (a, b) in
                    [(a.clone(), b.clone()), (a.to_dtype(DType::F16), b.to_dtype(DType::F16)), (ints(&a), ints(&b))]
                {
                    for op in CompareOp::ALL {
                        let got = compare(op, &a, &b).unwrap();
                        assert_eq!(got.dtype(), DType::Bool);
                        assert_eq!(
                            got.to_vec::<bool>().unwrap(),
                            broadcast_reference(op, &a, &b),
                            "{op:?} {da:?} {db:?} {}",
                            a.dtype()
                        );
                    }
                }
                let (p, q) = (a.to_dtype(DType::Bool), b.to_dtype(DType::Bool));
                let got = compare(CompareOp::Equal, &p, &q).unwrap();
                assert_eq!(got.to_vec::<bool>().unwrap(), broadcast_reference(CompareOp::Equal, &p, &q));
                let and = logical(LogicalOp::And, &p, &q).unwrap();
                let or = logical(LogicalOp::Or, &p, &q).unwrap();
                let both = compare(CompareOp::Equal, &and, &or).unwrap();
                let xor = logical(LogicalOp::Xor, &p, &q).unwrap();
                // xor is true exactly where and and or differ.
                assert_eq!(logical_not(&both).unwrap().to_vec::<bool>().unwrap(), xor.to_vec::<bool>().unwrap());
            }
        });
    }
}

#[test]
fn split_comparisons_give_the_kernels_bools_at_every_level() {
    let n = 3 * CHUNK + 37;
    let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 / 97.0 - 10.0).collect();
    let ys: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 1999) as f32 / 97.0 - 10.0).collect();
    let (x, y) = (T::from_slice(&xs, [n]).unwrap(), T::from_slice(&ys, [n]).unwrap());
    for level in isa::supported_levels() {
        isa::with_isa(level.isa(), || {
            for op in CompareOp::ALL {
                let got = compare(op, &x, &y).unwrap().to_vec::<bool>().unwrap();
                let want: Vec<bool> =
                    xs.iter().zip(&ys).map(|(&a, &b)| reference::compare(op, a.into(), b.into())).collect();
                assert_eq!(got, want, "{op:?} at {level:?}");
            }
            let got = classify(ClassifyOp::IsFinite, &x.to_dtype(DType::F16)).unwrap().to_vec::<bool>().unwrap();
            assert!(got.iter().all(|&f| f), "f16 is_finite at {level:?}");
        });
    }
}

#[test]
fn any_and_all_match_the_reference_over_axes() {
    let dims = [3usize, 4, 5];
    let src: Vec<bool> = (0..60).map(|i| (i * 7) % 11 < 3).collect();
    let x = T::from_vec(src.clone(), dims).unwrap();
    for axes in [vec![], vec![0], vec![1], vec![2], vec![0, 2], vec![0, 1, 2]] {
        for all in [false, true] {
            let got = any_all(all, &x, &axes, false).unwrap();
            assert_eq!(got.to_vec::<bool>().unwrap(), reference::any_all(all, &src, &dims, &axes), "{all} {axes:?}");
            let kept = any_all(all, &x, &axes, true).unwrap();
            assert_eq!(kept.rank(), 3);
        }
    }
    // Empty reductions: any is false, all is true (the identities).
    let empty = T::from_vec(Vec::<bool>::new(), [2, 0]).unwrap();
    assert_eq!(any_all(false, &empty, &[1], false).unwrap().to_vec::<bool>().unwrap(), vec![false, false]);
    assert_eq!(any_all(true, &empty, &[1], false).unwrap().to_vec::<bool>().unwrap(), vec![true, true]);
}

#[test]
fn wrong_dtypes_and_shapes_are_errors_naming_the_op() {
    let f = T::from_vec(vec![1.0f32, 2.0], [2]).unwrap();
    let m = T::from_vec(vec![true, false], [2]).unwrap();
    let i = T::from_vec(vec![1i32, 2], [2]).unwrap();
    let message = |r: Result<T>| r.unwrap_err().to_string();
    assert!(message(compare(CompareOp::Less, &m, &m)).starts_with("less: dtype bool"));
    assert!(message(compare(CompareOp::Equal, &f, &i)).starts_with("equal"));
    assert!(message(compare(CompareOp::Greater, &f, &T::zeros([3], DType::F32))).contains("(2,)"));
    assert!(message(logical(LogicalOp::And, &f, &m)).starts_with("logical_and: dtype float32"));
    assert!(message(logical(LogicalOp::Or, &m, &i)).contains("int32"));
    assert!(message(logical_not(&i)).starts_with("logical_not"));
    assert!(message(classify(ClassifyOp::IsNan, &i)).starts_with("is_nan: dtype int32"));
    assert!(message(classify(ClassifyOp::IsInf, &m)).contains("bool"));
    assert!(message(any_all(false, &f, &[0], false)).starts_with("any: dtype float32"));
    assert!(message(any_all(true, &m, &[1], false)).starts_with("all"));
}

#[test]
fn select_kernel_matches_its_definition_at_every_level() {
    for level in isa::supported_levels() {
        for n in LENGTHS {
            // The condition as a bool tensor's bytes.
            let c: Vec<u8> = (0..n).map(|i| u8::from(i % 3 != 1)).collect();
            let (x, y) = (values(n, 6), values(n, 7));
            let pick = |k: usize, p: f32, q: f32| if c[k] != 0 { p } else { q };
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let mut got = vec![0.0f32; n];
            simd::select_f32(level, Side::Run(&c), Side::Run(&x), Side::Run(&y), &mut got);
            let want: Vec<f32> = (0..n).map(|k| pick(k, x[k], y[k])).collect();
            assert_eq!(bits(&got), bits(&want), "runs n={n} at {level:?}");
            simd::select_f32(level, Side::Run(&c), Side::Splat(-0.0), Side::Run(&y), &mut got);
            let want: Vec<f32> = (0..n).map(|k| pick(k, -0.0, y[k])).collect();
            assert_eq!(bits(&got), bits(&want), "splat x n={n} at {level:?}");
            simd::select_f32(level, Side::Run(&c), Side::Run(&x), Side::Splat(f32::NAN), &mut got);
            let want: Vec<f32> = (0..n).map(|k| pick(k, x[k], f32::NAN)).collect();
            assert_eq!(bits(&got), bits(&want), "splat y n={n} at {level:?}");
            simd::select_f32(level, Side::Splat(0), Side::Run(&x), Side::Run(&y), &mut got);
            assert_eq!(bits(&got), bits(&y), "splat cond n={n} at {level:?}");
        }
    }
}
