//! Why a gradient is `None`: one `log::debug!` line per `None` source, in TensorFlow's
//! terms (captured by a logger of this test binary).

#[path = "common/warnings.rs"]
mod warnings;

use tapeflow::prelude::*;

/// Serializes the tests of this binary: the logger and its lines are process-wide.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The "gradient is None" debug lines `f` logs.
fn logged(f: impl FnOnce() -> Result<Vec<Option<Tensor>>>) -> Vec<String> {
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    warnings::capture_debug();
    let before = warnings::debug_lines().len();
    let grads = f().expect("gradients");
    assert!(grads.iter().all(Option::is_none), "every source in these cases is unconnected");
    warnings::debug_lines()[before..].iter().filter(|l| l.starts_with("gradient is None")).cloned().collect()
}

#[test]
fn each_reason_has_its_line() {
    let frozen = Variable::builder(1.0).trainable(false).name("frozen").build().unwrap();
    let lines = logged(|| {
        let tape = GradientTape::new();
        let y = tape.record(|| frozen.square())?;
        tape.gradients(&[&y], &[&frozen])
    });
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("variable 'frozen:0'") && lines[0].contains("not trainable"), "{}", lines[0]);

    let w = Variable::new(2.0);
    let lines = logged(|| {
        let tape = GradientTape::new().watch_accessed_variables(false);
        let y = tape.record(|| w.square())?;
        tape.gradients(&[&y], &[&w])
    });
    assert!(lines[0].contains("watch_accessed_variables(false)"), "{}", lines[0]);

    let lines = logged(|| {
        let tape = GradientTape::new();
        let y = tape.record(|| tape.stop_recording(|| w.square()))?;
        tape.gradients(&[&y], &[&w])
    });
    assert!(lines[0].contains("only under stop_recording"), "{}", lines[0]);

    let lines = logged(|| {
        let tape = GradientTape::new();
        let y = tape.record(|| stop_gradient(&w.square()?).exp())?;
        tape.gradients(&[&y], &[&w])
    });
    assert!(lines[0].contains("not connected to the target"), "{}", lines[0]);

    let lines = logged(|| {
        let tape = GradientTape::new();
        let y = tape.record(|| w.cast(DType::I32)?.cast(DType::F32)?.square())?;
        tape.gradients(&[&y], &[&w])
    });
    assert!(lines[0].contains("not connected to the target"), "{}", lines[0]);

    let ints = Variable::new(3);
    let lines = logged(|| {
        let tape = GradientTape::new();
        let y = tape.record(|| ints.cast(DType::F32)?.square())?;
        tape.gradients(&[&y], &[&ints])
    });
    assert!(lines[0].contains("its dtype is int32"), "{}", lines[0]);

    let x = constant(1.0);
    let lines = logged(|| {
        let tape = GradientTape::new();
        let y = tape.record(|| x.square())?;
        tape.gradients(&[&y], &[&x])
    });
    assert!(lines[0].contains("tensor () float32") && lines[0].contains("tape.watch"), "{}", lines[0]);
}

#[test]
fn connected_sources_log_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    warnings::capture_debug();
    let w = Variable::new(2.0);
    let tape = GradientTape::new();
    let y = tape.record(|| w.square()).unwrap();
    let before = warnings::debug_lines().len();
    assert!(tape.gradient(&y, &w).unwrap().is_some());
    let after = warnings::debug_lines();
    assert!(after[before..].iter().all(|l| !l.starts_with("gradient is None")), "{after:?}");
}
