//! The CNN example, shortened: two epochs on the digits lower the loss and beat chance.

use tapeflow::prelude::*;

#[path = "../examples/common/cnn.rs"]
mod cnn;
#[path = "../examples/common/digits.rs"]
mod digits;

#[test]
fn two_epochs_lower_the_loss() -> Result<()> {
    let (train, test) = digits::load(digits::default_path()).unwrap();
    let model = cnn::Cnn::new(0)?;
    let mut opt = Adam::new(0.002);
    let config = cnn::TrainConfig { batch: 64, dropout: 0.25, shift: true };
    let losses: Vec<f32> = (0..2)
        .map(|epoch| cnn::train_epoch(&model, &mut opt, &train, config, epoch).map(|s| s.loss))
        .collect::<Result<_>>()?;
    // Untrained, the loss is near ln 10 ≈ 2.30.
    assert!(losses[0] < 2.3 && losses[1] < losses[0], "{losses:?}");
    let accuracy = model.accuracy(&test)?;
    assert!(accuracy > 0.5, "test accuracy {accuracy} after two epochs; chance is 0.1");
    Ok(())
}

#[test]
fn shifts_move_each_image_by_at_most_one_pixel() -> Result<()> {
    use rand::SeedableRng;
    let pixels: Vec<f32> = (0..2 * 64).map(|i| (i % 64) as f32 + 1.0).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let x = cnn::shifted(&pixels, &mut rng)?;
    assert_eq!(x.dims(), &[2, 8, 8, 1]);
    for image in x.to_vec::<f32>()?.chunks(64) {
        // The centre 6 × 6 of the original is inside every one-pixel shift.
        let kept = image.iter().filter(|&&v| v > 0.0).count();
        assert!((49..=64).contains(&kept), "{kept} pixels kept");
        // Every kept pixel is the value of a neighbour within one pixel of its place.
        for (i, &v) in image.iter().enumerate().filter(|(_, v)| **v > 0.0) {
            let (y, x) = (i / 8, i % 8);
            let (sy, sx) = ((v as usize - 1) / 8, (v as usize - 1) % 8);
            assert!(y.abs_diff(sy) <= 1 && x.abs_diff(sx) <= 1, "pixel {i} holds {v}");
        }
    }
    Ok(())
}
