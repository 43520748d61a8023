//! safetensors: round trips of every dtype, a fixture written by the Python reference
//! implementation, and hostile files (truncated, corrupted, absurd headers) that must give
//! `Err`, never a panic or a huge allocation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tapeflow::prelude::*;
use tapeflow::weights;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/safetensors").join(name)
}

/// A file path in the temp directory, unique to this process and `tag`.
fn temp_file(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tapeflow-{}-{tag}.safetensors", std::process::id()))
}

fn sample_tensors() -> Vec<(&'static str, Tensor)> {
    vec![
        ("f32", Tensor::from_vec(vec![1.5f32, -0.0, f32::MAX, f32::MIN_POSITIVE, 1e-45, 3.0], [2, 3]).unwrap()),
        ("f16", Tensor::from_vec(vec![f16::from_f32(0.1), f16::MAX, f16::NEG_INFINITY], [3]).unwrap()),
        ("i32", Tensor::from_vec(vec![i32::MIN, -1, 0, i32::MAX], [2, 1, 2]).unwrap()),
        ("scalar", constant(2.5)),
        ("int_scalar", constant(-7)),
        ("mask", Tensor::from_vec(vec![true, false, false, true, true, false], [3, 2]).unwrap()),
        ("bool_scalar", constant(true)),
        ("empty", Tensor::zeros([0, 3], DType::F16)),
        ("nested/name.with:punctuation", Tensor::ones([1], DType::I32)),
    ]
}

fn assert_same(a: &Tensor, b: &Tensor, name: &str) {
    assert_eq!((a.dims(), a.dtype()), (b.dims(), b.dtype()), "{name}");
    // compare bit patterns, so -0.0 and NaN payloads count too
    let bits = |t: &Tensor| -> Vec<u32> {
        match t.dtype() {
            DType::F32 => t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect(),
            DType::F16 => t.to_vec::<f16>().unwrap().iter().map(|v| u32::from(v.to_bits())).collect(),
            DType::I32 => t.to_vec::<i32>().unwrap().iter().map(|&v| v as u32).collect(),
            DType::Bool => t.to_vec::<bool>().unwrap().iter().map(|&v| u32::from(v)).collect(),
        }
    };
    assert_eq!(bits(a), bits(b), "{name}");
}

#[test]
fn every_dtype_scalars_and_empty_tensors_round_trip_through_bytes() -> Result<()> {
    let items = sample_tensors();
    let bytes = weights::to_safetensors_bytes(&items)?;
    let loaded = weights::from_safetensors_bytes(&bytes)?;
    assert_eq!(loaded.len(), items.len());
    for (name, tensor) in &items {
        assert_same(&loaded[*name], tensor, name);
    }
    Ok(())
}

#[test]
fn variables_round_trip_through_a_file_by_name() -> Result<()> {
    let w = Variable::new(Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2])?);
    let h = Variable::new(Tensor::from_vec(vec![f16::from_f32(0.5); 3], [3])?);
    let step = Variable::new(41);
    let path = temp_file("variables");
    tapeflow::save_safetensors(&path, &[("w", &w), ("h", &h), ("step", &step)])?;

    let loaded = tapeflow::load_safetensors(&path)?;
    assert_eq!(loaded.keys().collect::<Vec<_>>(), vec!["h", "step", "w"]);
    assert_same(&loaded["w"], &w.value(), "w");

    let (w2, h2, step2) = (
        Variable::new(Tensor::zeros([2, 2], DType::F32)),
        Variable::new(Tensor::zeros([3], DType::F16)),
        Variable::new(0),
    );
    tapeflow::load_variables(&path, &[("w", &w2), ("h", &h2), ("step", &step2)])?;
    std::fs::remove_file(&path).ok();
    assert_same(&w2.value(), &w.value(), "w");
    assert_same(&h2.value(), &h.value(), "h");
    assert_eq!(step2.value().to_scalar::<i32>()?, 41);
    Ok(())
}

#[test]
fn loading_into_variables_checks_everything_before_changing_anything() -> Result<()> {
    let mut tensors = BTreeMap::new();
    tensors.insert("a".to_string(), constant([1.0, 2.0]));
    tensors.insert("b".to_string(), constant([1, 2]));
    let a = Variable::new([0.0, 0.0]);
    let wrong_shape = Variable::new([0, 0, 0]);
    let wrong_dtype = Variable::new([0.0, 0.0]);

    let err = weights::assign_variables(&tensors, &[("a", &a), ("b", &wrong_shape)]).unwrap_err().to_string();
    assert!(err.contains("assign_variables") && err.contains("(2,)") && err.contains("(3,)"), "{err}");
    let err = weights::assign_variables(&tensors, &[("a", &a), ("b", &wrong_dtype)]).unwrap_err().to_string();
    assert!(err.contains("int32") && err.contains("float32"), "{err}");
    let err = weights::assign_variables(&tensors, &[("a", &a), ("missing", &wrong_dtype)]).unwrap_err().to_string();
    assert!(err.contains("no tensor named 'missing'"), "{err}");
    assert_eq!(a.value().to_vec::<f32>()?, vec![0.0, 0.0], "a must be untouched by the failed calls");

    weights::assign_variables(&tensors, &[("a", &a)])?;
    assert_eq!(a.value().to_vec::<f32>()?, vec![1.0, 2.0]);
    Ok(())
}

#[test]
fn saving_refuses_duplicate_and_reserved_names_and_reports_io_errors() {
    let x = constant(1.0);
    let err = weights::to_safetensors_bytes(&[("x", &x), ("x", &x)]).unwrap_err().to_string();
    assert!(err.contains("'x' is given twice"), "{err}");
    let err = weights::to_safetensors_bytes(&[("__metadata__", &x)]).unwrap_err().to_string();
    assert!(err.contains("reserved"), "{err}");
    let missing = fixture("no_such_file.safetensors");
    let err = tapeflow::load_safetensors(&missing).unwrap_err().to_string();
    assert!(err.contains("load_safetensors") && err.contains("no_such_file"), "{err}");
}

#[test]
fn the_python_reference_fixture_loads_with_its_values() -> Result<()> {
    // written by tests/data/safetensors/make_fixture.py (safetensors 0.8, numpy)
    let loaded = tapeflow::load_safetensors(fixture("fixture.safetensors"))?;
    assert_eq!(loaded.keys().collect::<Vec<_>>(), vec!["dense/kernel", "empty", "half", "scale", "step"]);

    let kernel = &loaded["dense/kernel"];
    assert_eq!((kernel.dims(), kernel.dtype()), (&[2usize, 3][..], DType::F32));
    assert_eq!(kernel.to_vec::<f32>()?, vec![-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]);

    let half = &loaded["half"];
    assert_eq!(half.dtype(), DType::F16);
    let expected: Vec<f16> = [1.0f32, -2.5, 65504.0, 0.0009765625].iter().map(|&v| f16::from_f32(v)).collect();
    assert_eq!(half.to_vec::<f16>()?, expected);

    assert_eq!(loaded["step"].to_vec::<i32>()?, vec![0, -1, i32::MAX, i32::MIN, 7]);
    assert_eq!((loaded["scale"].rank(), loaded["scale"].to_scalar::<f32>()?), (0, 3.25));
    assert_eq!(loaded["empty"].dims(), &[0, 4]);
    Ok(())
}

#[test]
fn bool_tensors_are_one_byte_each_and_other_bytes_are_refused() -> Result<()> {
    let mask = Tensor::from_vec(vec![true, false, true], [3])?;
    let mut bytes = weights::to_safetensors_bytes(&[("mask", &mask)])?;
    let header = std::str::from_utf8(&bytes[8..bytes.len() - 3]).unwrap_or_default().to_string();
    assert!(header.contains("\"BOOL\""), "{header}");
    assert_eq!(&bytes[bytes.len() - 3..], &[1, 0, 1]);
    let last = bytes.len() - 1;
    bytes[last] = 2;
    let err = weights::from_safetensors_bytes(&bytes).unwrap_err().to_string();
    assert!(err.contains("mask") && err.contains("bool") && err.contains("byte 2"), "{err}");
    Ok(())
}

#[test]
fn unsupported_dtypes_are_errors_naming_tensor_and_dtype() {
    let err = tapeflow::load_safetensors(fixture("unsupported_f64.safetensors")).unwrap_err().to_string();
    assert!(err.contains("'double'") && err.contains("F64"), "{err}");

    // A bfloat16 tensor, header written by hand.
    let header = br#"{"brain":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0, 0x3f, 0, 0x40]);
    let err = weights::from_safetensors_bytes(&bytes).unwrap_err().to_string();
    assert!(err.contains("'brain'") && err.contains("BF16"), "{err}");
}

#[test]
fn every_truncation_of_a_file_is_an_error() {
    let bytes = std::fs::read(fixture("fixture.safetensors")).unwrap();
    for len in 0..bytes.len() {
        assert!(weights::from_safetensors_bytes(&bytes[..len]).is_err(), "truncated to {len} bytes");
    }
    assert!(weights::from_safetensors_bytes(&bytes).is_ok());
    // and one byte too many
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(weights::from_safetensors_bytes(&longer).is_err());
}

#[test]
fn corrupted_bytes_never_panic() {
    let bytes = std::fs::read(fixture("fixture.safetensors")).unwrap();
    let mut errors = 0;
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= flip;
            // Ok is fine (a flipped data byte is still a valid file); a panic fails the test.
            if let Ok(loaded) = weights::from_safetensors_bytes(&corrupt) {
                assert!(loaded.values().all(|t| t.num_elements() <= 6));
            } else {
                errors += 1;
            }
        }
    }
    // every flip in the 8 length bytes or the JSON structure must have been refused
    assert!(errors >= 3 * 8, "{errors}");
}

#[test]
fn absurd_headers_are_errors_without_allocating_what_they_claim() {
    // a header length of 2^64 - 1, of 1 TB, and of just over the 100 MB limit
    for claimed in [u64::MAX, 1 << 40, 100_000_001] {
        let mut bytes = claimed.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        assert!(weights::from_safetensors_bytes(&bytes).is_err(), "header length {claimed}");
    }
    // a tensor claiming 2^80 elements backed by 4 bytes
    let header = br#"{"huge":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 4]);
    assert!(weights::from_safetensors_bytes(&bytes).is_err());
    // offsets that overlap or leave a gap
    let header = br#"{"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[2,6]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 6]);
    assert!(weights::from_safetensors_bytes(&bytes).is_err());
}
