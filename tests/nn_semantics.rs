//! `tapeflow::nn::dropout`'s semantics (TensorFlow's `tf.nn.dropout(x, rate, seed)`):
//! reproducible masks, kept values scaled by 1/(1 − rate), the kept fraction near 1 − rate,
//! the gradient equal to the scaled mask, rates outside [0, 1) refused.

use tapeflow::nn;
use tapeflow::prelude::*;

#[test]
fn dropout_keeps_about_one_minus_rate_scaled_and_reproducibly() -> Result<()> {
    let x = Tensor::ones([100_000], DType::F32);
    for rate in [0.1, 0.25, 0.5, 0.9] {
        let y = nn::dropout(&x, rate, 11)?.to_vec::<f32>()?;
        let scale = (1.0 / (1.0 - rate)) as f32;
        assert!(y.iter().all(|&v| v == 0.0 || v == scale), "rate {rate}: values other than 0 and {scale}");
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
        // 100 000 draws: the kept fraction's standard deviation is at most 0.0016.
        assert!((kept - (1.0 - rate)).abs() < 0.01, "rate {rate}: kept {kept}");
        assert_eq!(y, nn::dropout(&x, rate, 11)?.to_vec::<f32>()?, "the same seed gives the same mask");
        assert_ne!(y, nn::dropout(&x, rate, 12)?.to_vec::<f32>()?, "another seed gives another mask");
    }
    assert_eq!(nn::dropout(&x, 0.0, 3)?.to_vec::<f32>()?, x.to_vec::<f32>()?);
    Ok(())
}

#[test]
fn dropout_gradient_is_the_scaled_mask() -> Result<()> {
    let x = Variable::new(Tensor::from_vec((0..1000).map(|i| i as f32 * 0.01 + 0.5).collect::<Vec<f32>>(), [10, 100])?);
    let tape = GradientTape::new();
    let y = tape.record(|| nn::dropout(&x, 0.3, 5))?;
    let g = tape.gradient(&y, &x)?.expect("connected").to_vec::<f32>()?;
    let (y, xs) = (y.to_vec::<f32>()?, x.value().to_vec::<f32>()?);
    let scale = (1.0f64 / 0.7) as f32;
    for ((&yi, &xi), &gi) in y.iter().zip(&xs).zip(&g) {
        if yi == 0.0 {
            assert_eq!(gi, 0.0);
        } else {
            assert_eq!(gi, scale);
            assert_eq!(yi, xi * scale);
        }
    }
    Ok(())
}

#[test]
fn dropout_refuses_rates_outside_zero_to_one_and_non_floats() {
    let x = Tensor::ones([4], DType::F32);
    for rate in [1.0, 1.5, -0.1, f64::NAN, f64::INFINITY] {
        let err = nn::dropout(&x, rate, 0).expect_err("rate out of range").to_string();
        assert!(err.contains("dropout"), "{err}");
    }
    assert!(nn::dropout(Tensor::ones([4], DType::I32), 0.5, 0).is_err());
}
