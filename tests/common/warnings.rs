//! Captures the warnings logged through `log` in a test binary (shared by the tests that
//! check TensorFlow's warning lines; each includes it with `#[path]`).

use std::sync::{Mutex, Once};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger (once per binary: the logger is process-wide).
pub fn capture() {
    INSTALL.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in this binary");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// The warning lines logged so far.
pub fn lines() -> Vec<String> {
    LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}
