//! int32 targets and sources: `None`, and TensorFlow's two warnings through `log`.
//! (Its own test binary: it installs the process-wide logger.)

use std::sync::Mutex;

use tapeflow::prelude::*;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LINES.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

#[test]
fn int32_gradient_is_none_with_one_warning_for_target_and_one_for_source() -> Result<()> {
    log::set_logger(&Capture).expect("no other logger in this binary");
    log::set_max_level(log::LevelFilter::Warn);

    let x = Variable::new(30);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    assert!(tape.gradient(&y, &x)?.is_none());

    let lines = LINES.lock().unwrap().clone();
    assert_eq!(
        lines,
        vec![
            "The dtype of the target tensor must be floating (e.g. float32) when calling GradientTape::gradient, got int32",
            "The dtype of the source tensor must be floating (e.g. float32) when calling GradientTape::gradient, got int32",
        ]
    );
    Ok(())
}
