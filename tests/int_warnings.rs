//! int32 targets and sources: `None`, and TensorFlow's two warnings through `log`.
//! (Its own test binary: it installs the process-wide logger.)

use tapeflow::prelude::*;

#[path = "common/warnings.rs"]
mod warnings;

#[test]
fn int32_gradient_is_none_with_one_warning_for_target_and_one_for_source() -> Result<()> {
    warnings::capture();

    let x = Variable::new(30);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    assert!(tape.gradient(&y, &x)?.is_none());

    let lines = warnings::lines();
    assert_eq!(
        lines,
        vec![
            "The dtype of the target tensor must be floating (e.g. float32) when calling GradientTape::gradient, got int32",
            "The dtype of the source tensor must be floating (e.g. float32) when calling GradientTape::gradient, got int32",
        ]
    );
    Ok(())
}
