//! GEMM against `reference::matmul_f32`.
//!
//! Tolerance: `|c − c_ref| ≤ 1e-5 · k · max|a| · max|b|` per element (both sides
//! accumulate in f32; the blocked FMA order differs from the reference's mul-then-add
//! order, and each sum of k products has a rounding error of order `k·ε·max|a|·max|b|`).

use half::f16;
use proptest::prelude::*;

use super::*;
use crate::isa::Isa;
use crate::reference;

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `op(A)` of a stored `a` the way `reference::matmul_f32` reads it.
fn view<T: Copy>(data: &[T], rows: usize, cols: usize, transposed: bool) -> MatRef<'_, T> {
    MatRef::op(data, rows, cols, transposed).unwrap()
}

fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |acc, v| acc.max(v.abs()))
}

fn assert_close(got: &[f32], want: &[f32], k: usize, a: &[f32], b: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let tol = 1e-5 * k as f32 * max_abs(a) * max_abs(b);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}: element {i}: got {g}, want {w}, tol {tol}");
    }
}

/// Checks one f32 product (stored operands, transposes) with `tuning`.
fn check(m: usize, k: usize, n: usize, ta: bool, tb: bool, tuning: &Tuning) {
    let a = values(m * k, (m * 31 + k) as u64);
    let b = values(k * n, (n * 17 + k + 5) as u64);
    let mut want = vec![0.0; m * n];
    reference::matmul_f32(&a, &b, &mut want, m, k, n, ta, tb);
    let mut got = vec![f32::NAN; m * n];
    gemm_tuned(view(&a, m, k, ta), view(&b, k, n, tb), &mut got, tuning).unwrap();
    assert_close(&got, &want, k, &a, &b, &format!("{m}x{k}x{n} ta={ta} tb={tb} {tuning:?}"));
}

/// Small blocks so that few-element shapes cross every KC/MC/NC boundary.
fn tiny(kernel: KernelShape) -> Tuning {
    Tuning { kernel, kc: 40, mc: 1, nc: 1, min_tasks: 3, inline_below: 0, a_outer: true, ncb: 1, owner_pack: true }
}

const SHAPES: [KernelShape; 7] = KernelShape::ALL;

/// Runs `f` at every level this CPU has (on this thread; pools inside `f` pass the level
/// on with `with_isa`).
fn at_every_level(f: impl Fn(Isa)) {
    for level in isa::supported_levels() {
        isa::with_isa(level.isa(), || f(level.isa()));
    }
}

/// The register transpose of every level, as a kernel.
struct Transpose;

impl crate::isa::Kernel for Transpose {
    type Output = [[f32; 16]; 16];
    fn run<S: Simd>(self, s: S) -> [[f32; 16]; 16] {
        let m: [S::F; 16] = std::array::from_fn(|r| s.load(&std::array::from_fn(|c| (r * 16 + c) as f32)));
        s.transpose16(m).map(crate::isa::F32s::to_array)
    }
}

#[test]
fn gemm_transpose16_is_a_transpose() {
    for level in isa::supported_levels() {
        let t = level.dispatch(Transpose);
        for (q, v) in t.iter().enumerate() {
            for (i, &x) in v.iter().enumerate() {
                assert_eq!(x, (i * 16 + q) as f32, "{level:?}");
            }
        }
    }
}

#[test]
fn gemm_edge_sizes_all_transposes() {
    at_every_level(|_| {
        let sizes = [0usize, 1, 5, 13, 14, 15, 16, 17, 31, 32, 33, 47, 49];
        for &s in &sizes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                check(s, s, s, ta, tb, &Tuning::DEFAULT);
                check(s, 7, 33, ta, tb, &Tuning::DEFAULT);
                check(15, s, 17, ta, tb, &Tuning::DEFAULT);
                check(31, 9, s, ta, tb, &Tuning::DEFAULT);
            }
        }
    });
}

#[test]
fn gemm_odd_shapes_every_kernel() {
    at_every_level(|_| {
        for shape in SHAPES {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for t in [Tuning { kernel: shape, ..Tuning::DEFAULT }, tiny(shape)] {
                    check(37, 29, 53, ta, tb, &t);
                    check(1, 64, 65, ta, tb, &t);
                    check(65, 3, 1, ta, tb, &t);
                }
            }
        }
    });
}

#[test]
fn gemm_multiple_blocks() {
    at_every_level(|_| {
        // Default blocking: k > KC (two and three K blocks), m > MC, n over a panel of tasks.
        for (m, k, n) in [(300, 900, 70), (33, 1700, 100), (290, 257, 290), (3, 40, 4100)] {
            check(m, k, n, false, false, &Tuning::DEFAULT);
            check(m, k, n, true, true, &Tuning::DEFAULT);
        }
        // Forced multi-panel (nc < n) and many small tasks, parallel.
        for (a_outer, owner_pack) in [(false, false), (true, false), (false, true), (true, true)] {
            let t = Tuning { nc: 64, kc: 50, mc: 30, a_outer, ncb: 64, owner_pack, ..Tuning::DEFAULT };
            check(150, 170, 300, false, true, &t);
            check(150, 170, 300, true, false, &t);
        }
    });
}

#[test]
fn gemm_packing_by_the_owning_thread_gives_the_same_bits() {
    at_every_level(|_| {
        // Packing B per column group (owner_pack) or in one parallel phase only moves work
        // between threads: every tile sums the same products in the same order.
        let (m, k, n) = (70, 600, 530);
        let (a, b) = (values(m * k, 3), values(k * n, 4));
        let run = |owner_pack: bool| {
            let mut c = vec![f32::NAN; m * n];
            let t = Tuning { owner_pack, ..Tuning::DEFAULT };
            gemm_tuned(view(&a, m, k, false), view(&b, k, n, false), &mut c, &t).unwrap();
            c.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(run(true), run(false));
    });
}

#[test]
fn gemm_k_zero_gives_zeros_and_empty_is_fine() {
    at_every_level(|_| {
        let mut c = vec![f32::NAN; 12];
        gemm(MatRef::<f32>::row_major(&[], 3, 0).unwrap(), MatRef::row_major(&[], 0, 4).unwrap(), &mut c).unwrap();
        assert!(c.iter().all(|&v| v == 0.0));
        let mut empty: Vec<f32> = Vec::new();
        let b = [1.0f32; 8];
        gemm(MatRef::row_major(&[], 0, 2).unwrap(), MatRef::row_major(&b, 2, 4).unwrap(), &mut empty).unwrap();
        gemm(MatRef::row_major(&b, 4, 2).unwrap(), MatRef::row_major(&[], 2, 0).unwrap(), &mut empty).unwrap();
    });
}

#[test]
fn gemm_rejects_bad_shapes_without_panicking() {
    let x = [1.0f32; 12];
    assert!(MatRef::row_major(&x, 4, 4).is_none());
    assert!(MatRef::new(&x, 2, 2, usize::MAX, 1).is_none());
    let a = MatRef::row_major(&x, 3, 4).unwrap();
    let mut c = vec![0.0; 9];
    assert_eq!(gemm(a, a, &mut c), Err(GemmError::InnerDims { a_cols: 4, b_rows: 3 }));
    assert_eq!(gemm(a, a.t(), &mut c[..8]), Err(GemmError::OutputLen { expected: 9, got: 8 }));
    assert!(gemm(a, a.t(), &mut c).is_ok());
}

#[test]
fn gemm_general_strides() {
    at_every_level(|_| {
        // Every other element of a 2m × 2k buffer, in both orientations.
        let (m, k, n) = (23, 41, 37);
        let big_a = values(4 * m * k, 3);
        let big_b = values(4 * k * n, 4);
        let a = MatRef::new(&big_a, m, k, 4 * k, 2).unwrap();
        let b = MatRef::new(&big_b, k, n, 2, 2 * k).unwrap();
        let dense = |v: &MatRef<'_, f32>| -> Vec<f32> {
            (0..v.rows).flat_map(|i| (0..v.cols).map(move |j| (i, j))).map(|(i, j)| v.get(i, j)).collect()
        };
        let (da, db) = (dense(&a), dense(&b));
        let mut want = vec![0.0; m * n];
        reference::matmul_f32(&da, &db, &mut want, m, k, n, false, false);
        for t in [Tuning::DEFAULT, tiny(KernelShape::K14x32)] {
            let mut got = vec![f32::NAN; m * n];
            gemm_tuned(a, b, &mut got, &t).unwrap();
            assert_close(&got, &want, k, &da, &db, "strided");
        }
    });
}

#[test]
fn gemm_f16_inputs() {
    at_every_level(|_| {
        for (m, k, n) in [(1, 1, 1), (17, 33, 15), (37, 29, 53), (70, 300, 90)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a16: Vec<f16> = values(m * k, 9).iter().map(|&v| f16::from_f32(v)).collect();
                let b16: Vec<f16> = values(k * n, 10).iter().map(|&v| f16::from_f32(v)).collect();
                let (a, b): (Vec<f32>, Vec<f32>) =
                    (a16.iter().map(|v| v.to_f32()).collect(), b16.iter().map(|v| v.to_f32()).collect());
                let mut want = vec![0.0; m * n];
                reference::matmul_f32(&a, &b, &mut want, m, k, n, ta, tb);
                for t in [Tuning::DEFAULT, tiny(KernelShape::K14x32)] {
                    let mut got = vec![f32::NAN; m * n];
                    gemm_tuned(view(&a16, m, k, ta), view(&b16, k, n, tb), &mut got, &t).unwrap();
                    assert_close(&got, &want, k, &a, &b, &format!("f16 {m}x{k}x{n} ta={ta} tb={tb}"));
                    // Same widened values through the f32 path: bitwise equal.
                    let mut via_f32 = vec![f32::NAN; m * n];
                    gemm_tuned(view(&a, m, k, ta), view(&b, k, n, tb), &mut via_f32, &t).unwrap();
                    assert!(got.iter().zip(&via_f32).all(|(x, y)| x.to_bits() == y.to_bits()));
                }
            }
        }
    });
}

#[test]
fn gemm_bitwise_identical_for_any_thread_count() {
    at_every_level(|level| {
        let (m, k, n) = (203, 555, 161);
        let a = values(m * k, 21);
        let b = values(k * n, 22);
        let run = |threads: usize, ta: bool| -> Vec<u32> {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut c = vec![f32::NAN; m * n];
            pool.install(|| isa::with_isa(level, || gemm(view(&a, m, k, ta), view(&b, k, n, false), &mut c))).unwrap();
            c.iter().map(|v| v.to_bits()).collect()
        };
        for ta in [false, true] {
            let one = run(1, ta);
            assert_eq!(one, run(2, ta));
            assert_eq!(one, run(3, ta));
        }
    });
}

#[test]
fn gemm_with_k_cut_in_halves_is_right_and_the_same_on_any_thread_count() {
    at_every_level(|level| {
        // Few tiles and a long K: the two K halves run side by side and C = first + second.
        // Every transpose, every kernel shape, f32 and f16, and a product just below the cut's
        // K and tile limits (the ordinary path) beside each.
        for shape in SHAPES {
            for (m, k, n) in [(64, 1437, 128), (128, 1437, 10), (5, 4000, 3), (40, 1023, 40), (300, 1100, 300)] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let t = Tuning { kernel: shape, inline_below: 0, ..Tuning::DEFAULT };
                    check(m, k, n, ta, tb, &t);
                    let a = values(m * k, 41);
                    let b = values(k * n, 42);
                    let run = |threads: usize| -> Vec<u32> {
                        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                        let mut c = vec![f32::NAN; m * n];
                        pool.install(|| {
                            isa::with_isa(level, || gemm_tuned(view(&a, m, k, ta), view(&b, k, n, tb), &mut c, &t))
                        })
                        .unwrap();
                        c.iter().map(|v| v.to_bits()).collect()
                    };
                    assert_eq!(run(1), run(2), "{shape:?} {m}x{k}x{n} ta={ta} tb={tb}");
                }
            }
        }
        let (m, k, n) = (64, 1437, 128);
        let a: Vec<f16> = values(m * k, 43).into_iter().map(f16::from_f32).collect();
        let b: Vec<f16> = values(k * n, 44).into_iter().map(f16::from_f32).collect();
        let mut got = vec![f32::NAN; m * n];
        gemm(view(&a, m, k, true), view(&b, k, n, false), &mut got).unwrap();
        let wide = |x: &[f16]| x.iter().map(|v| v.to_f32()).collect::<Vec<f32>>();
        let (af, bf) = (wide(&a), wide(&b));
        let mut want = vec![0.0; m * n];
        reference::matmul_f32(&af, &bf, &mut want, m, k, n, true, false);
        assert_close(&got, &want, k, &af, &bf, "f16 64x1437x128");
    });
}

#[test]
fn gemm_short_k_path_gives_the_blocked_paths_bits() {
    at_every_level(|_| {
        // k ≤ 16 goes through the short-K path in `gemm`; `gemm_tuned` keeps the blocked one.
        // Every k, columns around the vector width and the 8-vector groups, rows around the
        // parallel job size, every transpose, f32 and f16.
        let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for k in 1..=16 {
            for (m, n) in [(1, 1), (3, 15), (17, 16), (65, 17), (130, 129), (1437, 10), (256, 512)] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let a = values(m * k, (m + 7 * k) as u64);
                    let b = values(k * n, (n + 3 * k) as u64);
                    let mut short = vec![f32::NAN; m * n];
                    gemm(view(&a, m, k, ta), view(&b, k, n, tb), &mut short).unwrap();
                    let mut blocked = vec![f32::NAN; m * n];
                    gemm_tuned(view(&a, m, k, ta), view(&b, k, n, tb), &mut blocked, &Tuning::DEFAULT).unwrap();
                    assert_eq!(bits(&short), bits(&blocked), "{m}x{k}x{n} ta={ta} tb={tb}");
                }
            }
        }
        let (m, k, n) = (300, 10, 70);
        let a: Vec<f16> = values(m * k, 51).into_iter().map(f16::from_f32).collect();
        let b: Vec<f16> = values(k * n, 52).into_iter().map(f16::from_f32).collect();
        let mut short = vec![f32::NAN; m * n];
        gemm(view(&a, m, k, false), view(&b, k, n, true), &mut short).unwrap();
        let mut blocked = vec![f32::NAN; m * n];
        gemm_tuned(view(&a, m, k, false), view(&b, k, n, true), &mut blocked, &Tuning::DEFAULT).unwrap();
        assert_eq!(bits(&short), bits(&blocked), "f16");
    });
}

#[test]
fn gemm_narrow_output_path_gives_the_blocked_paths_bits() {
    at_every_level(|_| {
        // n ≤ 16 (k > 16) goes through the narrow-output path in `gemm`; `gemm_tuned` keeps the
        // blocked one, here with the settings `gemm` would give it. Rows around the 8-row block
        // and the parallel job size, every width up to one vector, K within one K block, past
        // it, cut in halves (1437, 2100: two blocks per half), every orientation, f32 and f16.
        let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let blocked_tuning =
            Tuning { kernel: KernelShape::K28x16, inline_below: SKINNY_INLINE_BELOW, ..Tuning::DEFAULT };
        for k in [17, 31, 64, 128, 512, 800, 801, 1437, 2100] {
            for m in [0, 1, 7, 8, 9, 65, 128, 130, 1437] {
                for n in [1, 9, 10, 16] {
                    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                        let a = values(m * k, (m + 7 * k + n) as u64);
                        let b = values(k * n, (n + 3 * k) as u64);
                        let mut narrow = vec![f32::NAN; m * n];
                        gemm(view(&a, m, k, ta), view(&b, k, n, tb), &mut narrow).unwrap();
                        let mut blocked = vec![f32::NAN; m * n];
                        gemm_tuned(view(&a, m, k, ta), view(&b, k, n, tb), &mut blocked, &blocked_tuning).unwrap();
                        assert_eq!(bits(&narrow), bits(&blocked), "{m}x{k}x{n} ta={ta} tb={tb}");
                    }
                }
            }
        }
        let (m, k, n) = (300, 100, 10);
        let a: Vec<f16> = values(m * k, 61).into_iter().map(f16::from_f32).collect();
        let b: Vec<f16> = values(k * n, 62).into_iter().map(f16::from_f32).collect();
        for ta in [false, true] {
            let mut narrow = vec![f32::NAN; m * n];
            gemm(view(&a, m, k, ta), view(&b, k, n, true), &mut narrow).unwrap();
            let mut blocked = vec![f32::NAN; m * n];
            gemm_tuned(view(&a, m, k, ta), view(&b, k, n, true), &mut blocked, &blocked_tuning).unwrap();
            assert_eq!(bits(&narrow), bits(&blocked), "f16 ta={ta}");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn gemm_narrow_output_matches_reference(m in 0usize..40, k in 17usize..120, n in 1usize..=16, ta: bool, tb: bool) {
        let a = values(m * k, (m * 31 + k) as u64);
        let b = values(k * n, (n * 17 + k) as u64);
        let mut got = vec![f32::NAN; m * n];
        gemm(view(&a, m, k, ta), view(&b, k, n, tb), &mut got).unwrap();
        let mut want = vec![0.0; m * n];
        reference::matmul_f32(&a, &b, &mut want, m, k, n, ta, tb);
        assert_close(&got, &want, k, &a, &b, "narrow output");
    }

    #[test]
    fn gemm_matches_reference(m in 0usize..40, k in 0usize..40, n in 0usize..70, ta: bool, tb: bool, small: bool, shape in 0usize..SHAPES.len()) {
        let t = if small { tiny(SHAPES[shape]) } else { Tuning { kernel: SHAPES[shape], ..Tuning::DEFAULT } };
        check(m, k, n, ta, tb, &t);
    }
}

#[test]
fn gemm_inline_and_rayon_paths_agree_bitwise() {
    at_every_level(|_| {
        let (m, k, n) = (70, 700, 90);
        let a = values(m * k, 31);
        let b = values(k * n, 32);
        let run = |inline_below: usize| -> Vec<u32> {
            let mut c = vec![f32::NAN; m * n];
            gemm_tuned(
                view(&a, m, k, false),
                view(&b, k, n, true),
                &mut c,
                &Tuning { inline_below, ..Tuning::DEFAULT },
            )
            .unwrap();
            c.iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(run(usize::MAX), run(0));
    });
}

#[test]
fn gemm_through_matmul_batches_and_f16() {
    at_every_level(|_| {
        use tapeflow_dtype::Tensor;
        // Batched (broadcast B), small products: the batch-parallel path; then one large
        // product: the blocked parallel path. Each batch member against the reference.
        for (batch, m, k, n) in [(7usize, 9usize, 33usize, 17usize), (2, 150, 120, 140)] {
            for (ta, tb) in [(false, false), (true, true), (true, false), (false, true)] {
                let a = values(batch * m * k, 41);
                let b = values(k * n, 42);
                let a_dims = if ta { [batch, k, m] } else { [batch, m, k] };
                let b_dims = if tb { [n, k] } else { [k, n] };
                let at = Tensor::<()>::from_vec(a.clone(), a_dims).unwrap();
                let bt = Tensor::<()>::from_vec(b.clone(), b_dims).unwrap();
                let c = crate::matmul(&at, &bt, ta, tb).unwrap();
                assert_eq!(c.dims(), &[batch, m, n]);
                let got = c.to_vec::<f32>().unwrap();
                for bi in 0..batch {
                    let ab = &a[bi * m * k..(bi + 1) * m * k];
                    let mut want = vec![0.0; m * n];
                    reference::matmul_f32(ab, &b, &mut want, m, k, n, ta, tb);
                    assert_close(&got[bi * m * n..(bi + 1) * m * n], &want, k, ab, &b, "matmul batch");
                }
                // f16 in, f16 out: the f32 result of the widened inputs, rounded once.
                let a16: Vec<f16> = a.iter().map(|&v| f16::from_f32(v)).collect();
                let b16: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
                let c16 = crate::matmul(
                    &Tensor::<()>::from_vec(a16.clone(), a_dims).unwrap(),
                    &Tensor::<()>::from_vec(b16.clone(), b_dims).unwrap(),
                    ta,
                    tb,
                )
                .unwrap();
                let wide_a: Vec<f32> = a16.iter().map(|v| v.to_f32()).collect();
                let wide_b: Vec<f32> = b16.iter().map(|v| v.to_f32()).collect();
                let c32 = crate::matmul(
                    &Tensor::<()>::from_vec(wide_a, a_dims).unwrap(),
                    &Tensor::<()>::from_vec(wide_b, b_dims).unwrap(),
                    ta,
                    tb,
                )
                .unwrap();
                let rounded: Vec<f16> = c32.to_vec::<f32>().unwrap().iter().map(|&v| f16::from_f32(v)).collect();
                assert_eq!(c16.to_vec::<f16>().unwrap(), rounded);
            }
        }
    });
}
