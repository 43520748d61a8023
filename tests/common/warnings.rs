//! Captures the lines logged through `log` in a test binary (shared by the tests that
//! check TensorFlow's warning lines and tapeflow's debug explanations; each includes it
//! with `#[path]`).

#![allow(dead_code)] // each binary uses part of it

use std::sync::{Mutex, Once};

static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = (record.level(), record.args().to_string());
            LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line);
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger for warnings (once per binary: the logger is
/// process-wide).
pub fn capture() {
    INSTALL.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in this binary");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// Installs the capturing logger for debug lines too.
pub fn capture_debug() {
    INSTALL.call_once(|| log::set_logger(&Capture).expect("no other logger in this binary"));
    log::set_max_level(log::LevelFilter::Debug);
}

/// The warning (and error) lines logged so far.
pub fn lines() -> Vec<String> {
    let lines = LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    lines.iter().filter(|(level, _)| *level <= log::Level::Warn).map(|(_, line)| line.clone()).collect()
}

/// The debug lines logged so far.
pub fn debug_lines() -> Vec<String> {
    let lines = LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    lines.iter().filter(|(level, _)| *level == log::Level::Debug).map(|(_, line)| line.clone()).collect()
}
