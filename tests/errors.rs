//! Bad input is an `Err` that names the op, the shapes and the dtypes — never a panic —
//! and a failed operation changes nothing.

use tapeflow::prelude::*;

/// The error's message mentions every one of `parts`.
fn assert_mentions(err: Error, parts: &[&str]) {
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "message {msg:?} should mention {part:?}");
    }
}

fn matrix(rows: usize, cols: usize) -> Tensor {
    Tensor::from_vec((0..rows * cols).map(|v| v as f32).collect(), [rows, cols]).unwrap()
}

#[test]
fn mismatched_broadcast_shapes_name_op_shapes_and_dtypes() {
    let err = (matrix(2, 3) + matrix(4, 2)).unwrap_err();
    assert_mentions(err, &["add", "(2, 3)", "(4, 2)", "float32"]);
    let err = matrix(2, 3).maximum(matrix(3, 2)).unwrap_err();
    assert_mentions(err, &["maximum", "(2, 3)", "(3, 2)"]);
}

#[test]
fn dtype_mismatch_is_an_error() {
    let ints = Tensor::from_vec(vec![1i32, 2, 3], [3]).unwrap();
    let floats = constant([1.0, 2.0, 3.0]);
    assert_mentions((&ints * &floats).unwrap_err(), &["mul", "int32", "float32", "(3,)"]);
    // A float literal cannot become an int32 tensor (TensorFlow refuses too).
    assert_mentions((&ints * 2.5).unwrap_err(), &["mul", "int32"]);
    // An integer literal adopts the float dtype.
    assert_eq!((&floats * 2).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
}

#[test]
fn matmul_shape_errors() {
    assert_mentions(matrix(2, 3).matmul(matrix(2, 3)).unwrap_err(), &["matmul", "(2, 3)", "float32"]);
    assert_mentions(constant([1.0, 2.0]).matmul(matrix(2, 2)).unwrap_err(), &["matmul", "(2,)", "(2, 2)"]);
    let batched = Tensor::zeros([3, 2, 2], DType::F32);
    let other = Tensor::zeros([4, 2, 2], DType::F32);
    assert_mentions(batched.matmul(&other).unwrap_err(), &["matmul", "(3, 2, 2)", "(4, 2, 2)"]);
}

#[test]
fn bad_axes_are_errors() {
    let x = matrix(2, 3);
    assert_mentions(x.sum(&[2], false).unwrap_err(), &["sum", "axis 2", "(2, 3)", "float32"]);
    assert_mentions(x.mean(&[-3], false).unwrap_err(), &["mean", "-3", "(2, 3)"]);
    assert_mentions(x.max(&[0, -2], true).unwrap_err(), &["max", "(2, 3)"]);
    assert_mentions(x.softmax(5).unwrap_err(), &["softmax", "(2, 3)"]);
    assert_mentions(concat(&[x.clone(), x.clone()], 2).unwrap_err(), &["concat", "(2, 3)"]);
}

#[test]
fn bad_permutations_and_shapes_are_errors() {
    let x = matrix(2, 3);
    assert_mentions(x.transpose(&[0, 0]).unwrap_err(), &["transpose", "[0, 0]", "(2, 3)", "float32"]);
    assert_mentions(x.transpose(&[1, 0, 2]).unwrap_err(), &["transpose", "(2, 3)"]);
    assert_mentions(x.reshape([4, 2]).unwrap_err(), &["reshape", "(2, 3)", "float32"]);
    assert_mentions(x.reshape([-1, -1]).unwrap_err(), &["reshape", "(2, 3)"]);
    assert_mentions(x.reshape([-1, 4]).unwrap_err(), &["reshape", "(2, 3)"]);
    assert_mentions(x.broadcast_to([3, 3]).unwrap_err(), &["broadcast_to", "(2, 3)"]);
    assert_mentions(x.broadcast_to([3]).unwrap_err(), &["broadcast_to", "(2, 3)"]);
    let other = matrix(3, 3);
    assert_mentions(concat(&[x, other], 1).unwrap_err(), &["concat", "(2, 3)", "(3, 3)"]);
}

#[test]
fn data_length_must_fill_the_shape() {
    assert_mentions(Tensor::from_vec(vec![1.0f32; 5], [2, 2]).unwrap_err(), &["from_vec", "5", "(2, 2)", "float32"]);
    assert_mentions(Tensor::from_vec(vec![1i32; 3], [0]).unwrap_err(), &["from_vec", "(0,)", "int32"]);
    assert!(Tensor::from_vec(Vec::<f32>::new(), [2, 0]).is_ok());
}

#[test]
fn integer_division_by_zero_is_an_error_not_a_crash() {
    let a = Tensor::from_vec(vec![6i32, i32::MIN], [2]).unwrap();
    let zero = Tensor::from_vec(vec![3i32, 0], [2]).unwrap();
    assert_mentions((&a / &zero).unwrap_err(), &["div", "division by zero", "(2,)", "int32"]);
    assert_mentions((&a / 0).unwrap_err(), &["div", "int32"]);
    // i32::MIN / -1 wraps, as TensorFlow on CPU.
    assert_eq!((&a / -1).unwrap().to_vec::<i32>().unwrap(), vec![-6, i32::MIN]);
    // Float division by zero is IEEE: inf, no error.
    assert_eq!((constant(1.0) / 0.0).unwrap().to_scalar::<f32>().unwrap(), f32::INFINITY);
}

#[test]
fn int32_unsupported_ops_and_values_are_errors() {
    let i = constant([1, 2, 3]);
    assert_mentions(i.exp().unwrap_err(), &["exp", "int32", "(3,)"]);
    assert_mentions(i.pow(-1).unwrap_err(), &["pow", "int32"]);
    assert_mentions(i.softmax(0).unwrap_err(), &["softmax", "int32"]);
    assert!(Tensor::full([2], f64::NAN, DType::I32).is_err());
    assert!(Variable::with_dtype(2.5, DType::I32).is_err());
}

#[test]
fn cross_entropy_labels_out_of_range_are_errors() {
    let logits = matrix(2, 3);
    assert_mentions(
        logits.sparse_softmax_cross_entropy(constant([0, 3])).unwrap_err(),
        &["sparse_softmax_cross_entropy", "label 3"],
    );
    assert!(logits.sparse_softmax_cross_entropy(constant([0, -1])).is_err());
    assert!(logits.sparse_softmax_cross_entropy(constant([0])).is_err());
    assert!(logits.sparse_softmax_cross_entropy(constant([0.0, 1.0])).is_err());
}

#[test]
fn accessors_refuse_the_wrong_dtype_or_size() {
    let v = constant([1.0, 2.0]);
    assert!(v.to_vec::<i32>().is_err());
    assert!(v.to_scalar::<f32>().is_err());
    assert!(constant(1).to_scalar::<f32>().is_err());
}

#[test]
fn a_failed_assign_leaves_the_variable_unchanged() {
    let v = Variable::new([1.0, 2.0]);
    assert_mentions(v.assign(constant([1.0, 2.0, 3.0])).unwrap_err(), &["assign", "(2,)", "(3,)", "float32"]);
    assert_mentions(v.assign(constant([1, 2])).unwrap_err(), &["assign", "float32", "int32"]);
    assert_mentions(v.assign_add(constant([1.0, 2.0, 3.0])).unwrap_err(), &["assign_add", "(2,)"]);
    // A delta that broadcasts *up* would change the variable's shape.
    assert_mentions(v.assign_sub(Tensor::zeros([3, 2], DType::F32)).unwrap_err(), &["assign_sub", "(2,)", "(3, 2)"]);
    assert!(v.assign_add(constant([1, 2])).is_err());
    let ints = Variable::new([4, 5]);
    assert!(ints.assign_add(0.5).is_err());
    assert_eq!(v.value().to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
    assert_eq!(ints.value().to_vec::<i32>().unwrap(), vec![4, 5]);
    // and the successful forms work
    v.assign_add(1.0).unwrap();
    v.assign_sub(constant([0.5, 0.5])).unwrap();
    assert_eq!(v.value().to_vec::<f32>().unwrap(), vec![1.5, 2.5]);
    v.assign(constant([7.0, 8.0])).unwrap();
    assert_eq!(v.value().to_vec::<f32>().unwrap(), vec![7.0, 8.0]);
}

#[test]
fn gradient_argument_errors() {
    let x = Variable::new([1.0, 2.0]);
    let tape = GradientTape::new().persistent(true);
    let y = tape.record(|| x.pow(2.0)).unwrap();
    // a seed of the wrong shape
    let opts = GradientOptions::default().output_gradients(vec![constant(1.0)]);
    assert_mentions(tape.gradient_with(&y, &x, opts).unwrap_err(), &["gradient", "(2,)", "()"]);
    // more seeds than targets
    let opts = GradientOptions::default().output_gradients(vec![constant([1.0, 1.0]), constant([1.0, 1.0])]);
    assert!(tape.gradient_with(&y, &x, opts).is_err());
    // batch_jacobian needs matching batch dimensions
    let s = tape.record(|| x.sum_all()).unwrap();
    assert_mentions(tape.batch_jacobian(&s, &x).unwrap_err(), &["batch_jacobian", "()", "(2,)"]);
    // the tape still works after those errors
    assert_eq!(tape.gradient(&y, &x).unwrap().unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0]);
}
