//! The digits example, shortened: the data loads with the documented split, and a few
//! epochs of training lower the loss and beat chance by far.

use tapeflow::prelude::*;

#[path = "../examples/common/digits.rs"]
mod digits;

#[test]
fn the_data_set_loads_with_a_fixed_80_20_split() {
    let (train, test) = digits::load(digits::default_path()).unwrap();
    assert_eq!((train.len(), test.len()), (1437, 360));
    assert_eq!(train.pixels.len(), 1437 * 64);
    assert!(train.pixels.iter().chain(&test.pixels).all(|&p| (0.0..=1.0).contains(&p)));
    // every class appears in both parts
    for class in 0..10 {
        assert!(train.labels.contains(&class) && test.labels.contains(&class), "class {class}");
    }
    // the first row of the file (a zero) starts the training set
    assert_eq!(train.labels[0], 0);
    assert_eq!(&train.pixels[..4], &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0]);
}

#[test]
fn a_short_training_lowers_the_loss_and_beats_chance() -> Result<()> {
    let (train, test) = digits::load(digits::default_path()).unwrap();
    let model = digits::Mlp::new(0)?;
    let before = model.accuracy(&test)?;
    let mut opt = Adam::new(0.005);
    let config = digits::TrainConfig { batch: 32, dropout: 0.2, noise: 0.3 };
    let losses: Vec<f32> = (0..3)
        .map(|epoch| digits::train_epoch(&model, &mut opt, &train, config, epoch).map(|s| s.loss))
        .collect::<Result<_>>()?;
    // An untrained 10-class model has a loss near ln 10 ≈ 2.30; the first epoch averages
    // over the descent, and each later epoch must be lower still.
    assert!(losses[0] < 2.3, "{losses:?}");
    assert!(losses[1] < losses[0] && losses[2] < losses[1], "{losses:?}");
    let after = model.accuracy(&test)?;
    assert!(after > 0.8 && after > before, "test accuracy {before} → {after}; chance is 0.1");
    Ok(())
}
