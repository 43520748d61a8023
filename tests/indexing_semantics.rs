//! Catalog II's shape, slicing and indexing ops: the contract's lines (`catalog2.md`) and
//! TensorFlow's edge rules, on values worked out by hand (comments give the arithmetic).

use tapeflow::prelude::*;

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn range(n: usize, dims: &[usize]) -> Tensor {
    Tensor::from_vec((0..n).map(|i| i as f32).collect::<Vec<_>>(), dims.to_vec()).unwrap()
}

#[test]
fn the_contract_lines_for_shapes_slices_and_gathers() -> Result<()> {
    let r = Tensor::from_vec(vec![3.0f32, 1.0, 2.0, 4.0, 5.0, 0.5], [2, 3])?;
    let s = Tensor::zeros([1, 3, 1, 2], DType::F32);
    assert_eq!(s.squeeze(&[])?.dims(), &[3, 2]);
    assert_eq!(s.squeeze(&[2])?.dims(), &[1, 3, 2]);
    assert!(s.squeeze(&[1]).is_err());
    assert_eq!(r.expand_dims(0)?.dims(), &[1, 2, 3]);
    let st = stack(&[&r, &r], 0)?;
    let parts: Vec<Tensor> = st.unstack(0)?;
    let halves: Vec<Tensor> = r.split(&[1, 2], 1)?;
    assert_eq!((parts.len(), halves[1].dims()), (2, &[2usize, 2][..]));
    assert_eq!(f32s(&parts[1]), f32s(&r));
    assert_eq!(f32s(&halves[1]), vec![1.0, 2.0, 5.0, 0.5]);
    // tile [[3,1,2],[4,5,.5]] twice down; reverse each row.
    assert_eq!(f32s(&r.tile(&[2, 1])?), [f32s(&r), f32s(&r)].concat());
    assert_eq!(f32s(&r.reverse(&[1])?), vec![2.0, 1.0, 3.0, 0.5, 5.0, 4.0]);
    assert_eq!(r.pad(&[[1, 0], [0, 2]], PadMode::Constant(0.0))?.dims(), &[3, 5]);
    let reflect = r.pad(&[[1, 1], [1, 1]], PadMode::Reflect)?;
    // Rows reflect to [row1, row0, row1, row0]; within a row [1, 3, 1, 2, 1] for [3, 1, 2].
    assert_eq!(&f32s(&reflect)[..5], &[5.0, 4.0, 5.0, 0.5, 5.0]);
    assert_eq!(&f32s(&reflect)[5..10], &[1.0, 3.0, 1.0, 2.0, 1.0]);
    let symmetric = r.pad(&[[0, 0], [2, 0]], PadMode::Symmetric)?;
    assert_eq!(&f32s(&symmetric)[..5], &[1.0, 3.0, 3.0, 1.0, 2.0]);

    let w = range(20, &[4, 5]);
    assert_eq!(w.slice(&[1, 0], &[2, -1])?.dims(), &[2, 5]);
    assert_eq!(f32s(&w.strided_slice(&[-1, 4], &[0, 0], &[-1, -2])?), vec![19.0, 17.0, 14.0, 12.0, 9.0, 7.0]);

    let emb = Variable::new(range(12, &[4, 3]));
    let ids = constant([2, 0, 2]);
    let tape = GradientTape::new();
    let rows = tape.record(|| emb.gather(&ids, 0))?;
    assert_eq!(f32s(&rows), vec![6.0, 7.0, 8.0, 0.0, 1.0, 2.0, 6.0, 7.0, 8.0]);
    let g = tape.gradient(&rows, &emb)?.unwrap();
    // Row 2 twice, row 0 once, rows 1 and 3 never.
    assert_eq!(f32s(&g), vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0]);
    assert!(emb.gather(constant([4]), 0).is_err());
    let idx = Tensor::from_vec(vec![0, 1, 1, 2], [2, 2])?;
    assert_eq!(f32s(&r.gather_nd(&idx)?), vec![1.0, 0.5]);
    let scattered = scatter_nd(&Tensor::from_vec(vec![1, 3], [2, 1])?, constant([5.0, 6.0]), [4])?;
    assert_eq!(f32s(&scattered), vec![0.0, 5.0, 0.0, 6.0]);
    assert_eq!(f32s(&one_hot(constant([0, 2]), 3)?), vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    // Row 0 goes to segment 1, row 1 to segment 0.
    assert_eq!(f32s(&unsorted_segment_sum(&r, constant([1, 0]), 2)?), vec![4.0, 5.0, 0.5, 3.0, 1.0, 2.0]);

    let q = Tensor::zeros([2, 3, 4], DType::F32);
    let k = Tensor::zeros([2, 5, 4], DType::F32);
    assert_eq!(einsum("bqd,bkd->bqk", &[&q, &k])?.dims(), &[2, 3, 5]);
    assert_eq!(f32s(&einsum("ij->ji", &[&r])?), f32s(&r.transpose(&[1, 0])?));
    Ok(())
}

#[test]
fn einsum_matches_its_spelled_out_forms() -> Result<()> {
    let a = Tensor::from_vec((0..12).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), [3, 4])?;
    let b = Tensor::from_vec((0..20).map(|i| (i as f32 * 0.21).cos()).collect::<Vec<_>>(), [4, 5])?;
    let close = |x: &Tensor, y: &Tensor| {
        assert_eq!(x.dims(), y.dims());
        for (p, q) in f32s(x).iter().zip(f32s(y)) {
            assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
        }
    };
    close(&einsum("ij,jk->ik", &[&a, &b])?, &a.matmul(&b)?);
    close(&einsum("ij,jk", &[&a, &b])?, &a.matmul(&b)?); // implicit output: ik
    close(&einsum("ij,kj->ik", &[&a, &a])?, &a.matmul_transposed(&a, false, true)?);
    close(&einsum("ij->", &[&a])?, &a.sum_all()?);
    close(&einsum("ij->j", &[&a])?, &a.sum(&[0], false)?);
    close(&einsum("ij,ij->ij", &[&a, &a])?, &(&a * &a)?);
    close(&einsum("ij,ij->", &[&a, &a])?, &(&a * &a)?.sum_all()?);
    close(
        &einsum("i,j->ij", &[&a.slice(&[0, 0], &[1, -1])?.squeeze(&[0])?, &b.slice(&[0, 0], &[1, -1])?.squeeze(&[])?])?,
        &{
            let u = a.slice(&[0, 0], &[1, -1])?.reshape([4, 1])?;
            let v = b.slice(&[0, 0], &[1, -1])?;
            u.matmul(&v)?
        },
    );
    // Diagonals: trace and diagonal of a square matrix; a repeated label in one operand.
    let m = Tensor::from_vec((0..9).map(|i| i as f32).collect::<Vec<_>>(), [3, 3])?;
    assert_eq!(f32s(&einsum("ii->i", &[&m])?), vec![0.0, 4.0, 8.0]);
    assert_eq!(f32s(&einsum("ii", &[&m])?), vec![12.0]);
    assert_eq!(f32s(&einsum("ii,i->i", &[&m, &constant([1.0, 2.0, 3.0])])?), vec![0.0, 8.0, 24.0]);
    // Batched attention scores and their gradient shapes.
    let q = Variable::new(Tensor::from_vec((0..24).map(|i| i as f32 * 0.1).collect::<Vec<_>>(), [2, 3, 4])?);
    let k = Variable::new(Tensor::from_vec((0..40).map(|i| i as f32 * -0.05).collect::<Vec<_>>(), [2, 5, 4])?);
    let tape = GradientTape::new().persistent(true);
    let s = tape.record(|| einsum("bqd,bkd->bqk", &[&q, &k]))?;
    close(&s, &q.read().matmul_transposed(k.read(), false, true)?);
    assert_eq!(tape.gradient(&s, &q)?.unwrap().dims(), &[2, 3, 4]);
    assert_eq!(tape.gradient(&s, &k)?.unwrap().dims(), &[2, 5, 4]);
    Ok(())
}

#[test]
fn bad_equations_are_errors_naming_einsum() {
    let a = Tensor::zeros([2, 3], DType::F32);
    let b = Tensor::zeros([3, 4], DType::F32);
    for (eq, ops) in [
        ("...ij->ij", vec![&a]),
        ("ij->ij", vec![&a, &b]),
        ("ijk->i", vec![&a]),
        ("ij,jk->ii", vec![&a, &b]),
        ("ij,jk->iz", vec![&a, &b]),
        ("ij,ik->jk", vec![&a, &b]),
        ("i1->i", vec![&a]),
        ("ij,jk,kl->il", vec![&a, &b, &b]),
        ("ii->i", vec![&a]),
    ] {
        let msg = einsum(eq, &ops).unwrap_err().to_string();
        assert!(msg.starts_with("einsum") && msg.contains("(2, 3)") && msg.contains("float32"), "{eq}: {msg}");
    }
    let h = Tensor::zeros([3, 4], DType::F16);
    assert!(einsum("ij,jk->ik", &[&a, &h]).is_err());
}

#[test]
fn edge_rules_are_tensorflows() -> Result<()> {
    let x = range(6, &[2, 3]);
    // one_hot: out-of-range indices, negative ones included, give zero rows.
    assert_eq!(f32s(&one_hot(constant([3, -1, 1]), 3)?), vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    // unsorted_segment_sum: negative ids are dropped; ids ≥ num_segments are an Err.
    assert_eq!(f32s(&unsorted_segment_sum(&x, constant([-1, 0]), 1)?), vec![3.0, 4.0, 5.0]);
    assert!(unsorted_segment_sum(&x, constant([0, 1]), 1).unwrap_err().to_string().contains("unsorted_segment_sum"));
    // scatter_nd: duplicates add up.
    assert_eq!(
        f32s(&scatter_nd(&Tensor::from_vec(vec![1, 1], [2, 1])?, constant([2.0, 3.0]), [3])?),
        vec![0.0, 5.0, 0.0]
    );
    // gather along an inner axis with 2-D indices: [2] + [2, 2] shape.
    let g = x.gather(&Tensor::from_vec(vec![2, 0, 1, 1], [2, 2])?, 1)?;
    assert_eq!((g.dims(), f32s(&g)), (&[2usize, 2, 2][..], vec![2.0, 0.0, 1.0, 1.0, 5.0, 3.0, 4.0, 4.0]));
    // Scalars index too (the axis goes away).
    assert_eq!(f32s(&x.gather(1, 0)?), vec![3.0, 4.0, 5.0]);
    // strided_slice clamps out-of-range bounds; an empty range is an empty axis.
    assert_eq!(x.strided_slice(&[0, 10], &[10, 0], &[1, -1])?.dims(), &[2, 2]);
    assert_eq!(x.strided_slice(&[1], &[1], &[1])?.dims(), &[0, 3]);
    assert!(x.strided_slice(&[0], &[1], &[0]).is_err());
    // Pads past MirrorPad's limits.
    assert!(x.pad(&[[2, 0], [0, 0]], PadMode::Reflect).is_err());
    assert!(x.pad(&[[2, 0], [0, 0]], PadMode::Symmetric).is_ok());
    assert!(x.pad(&[[3, 0], [0, 0]], PadMode::Symmetric).is_err());
    // An int32 pad constant must be an integer; int32 shape ops work.
    let i = constant([[1, 2], [3, 4]]);
    assert!(i.pad(&[[1, 0], [0, 0]], PadMode::Constant(1.5)).is_err());
    assert_eq!(i.pad(&[[1, 0], [0, 1]], PadMode::Constant(7.0))?.to_vec::<i32>()?, vec![7, 7, 7, 1, 2, 7, 3, 4, 7]);
    assert_eq!(stack(&[constant([1, 2]), constant([3, 4])], 1)?.to_vec::<i32>()?, vec![1, 3, 2, 4]);
    // stack and expand_dims take axes up to the new rank.
    assert_eq!(stack(&[&x, &x], -1)?.dims(), &[2, 3, 2]);
    assert!(stack(&[&x, &x], 3).is_err());
    assert!(stack(&[&x, &range(6, &[3, 2])], 0).unwrap_err().to_string().contains("stack"));
    assert_eq!(x.expand_dims(-1)?.dims(), &[2, 3, 1]);
    assert!(x.expand_dims(3).is_err());
    assert!(x.split(&[1, 1], 1).is_err());
    assert!(x.reverse(&[1, -1]).is_err());
    assert!(x.tile(&[2]).is_err());
    Ok(())
}

#[test]
fn second_order_gradients_flow_through_gathers_and_pads() -> Result<()> {
    // y = Σ gather(x, [1, 1, 0])²: dy/dx = [2·x0, 4·x1, 0·x2] summed per row; d²y = diag(2, 4, 0).
    let x = Variable::new(constant([1.0, 2.0, 3.0]));
    let outer = GradientTape::new();
    let inner = GradientTape::new();
    let dx = outer.record(|| -> Result<Tensor> {
        let y = inner.record(|| x.gather(constant([1, 1, 0]), 0)?.square()?.sum_all())?;
        inner.gradient(&y, &x).map(Option::unwrap)
    })?;
    assert_eq!(f32s(&dx), vec![2.0, 8.0, 0.0]);
    let d2 = outer.gradient(&dx, &x)?.unwrap(); // of Σ dx = 2·x0 + 4·x1
    assert_eq!(f32s(&d2), vec![2.0, 4.0, 0.0]);
    // A reflect pad of [a, b, c] by 2 on the left reads c, b, a, b, c: d Σ(pad·w) / dx folds.
    let tape = GradientTape::new();
    let w = constant([1.0, 10.0, 100.0, 1000.0, 10000.0]);
    let y = tape.record(|| (x.pad(&[[2, 0]], PadMode::Reflect)? * &w)?.sum_all())?;
    assert_eq!(f32s(&tape.gradient(&y, &x)?.unwrap()), vec![100.0, 1010.0, 10001.0]);
    Ok(())
}
