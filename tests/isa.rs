//! `TAPEFLOW_ISA` chooses the kernels' instruction-set level once per process: each case runs
//! this test binary again as a child process with the variable set, and the child checks the
//! level it got, the one warning a value it cannot honour logs, and that ops still compute.

use std::process::Command;
use std::sync::Mutex;

use tapeflow::kernels::{Isa, isa};
use tapeflow::prelude::*;

/// Collects warnings (the child's logger).
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

const NAME: &str = "tapeflow_isa_chooses_the_level_once_per_process";

#[test]
fn tapeflow_isa_chooses_the_level_once_per_process() {
    if let Ok(expected) = std::env::var("TAPEFLOW_ISA_EXPECT") {
        // The child process.
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
        assert_eq!(isa().to_string(), expected);
        assert_eq!(isa().to_string(), expected, "read once, the same on every call");
        let y = Tensor::from_vec(vec![0.0f32, 1.0, 2.0], [3]).unwrap().exp().unwrap();
        let got = y.to_vec::<f32>().unwrap();
        assert_eq!(got[0], 1.0);
        assert!((got[2] - 2.0f32.exp()).abs() <= 2e-6 * 2.0f32.exp());
        let warnings = CAPTURE.0.lock().unwrap().clone();
        let expected_warnings: usize = std::env::var("TAPEFLOW_ISA_WARNINGS").unwrap().parse().unwrap();
        assert_eq!(warnings.len(), expected_warnings, "{warnings:?}");
        assert!(warnings.iter().all(|w| w.contains("TAPEFLOW_ISA")), "{warnings:?}");
        return;
    }
    let best = tapeflow::kernels::isa::detected();
    let cases = [
        ("baseline", Isa::Baseline, 0),
        ("avx2", Isa::Avx2, usize::from(best < Isa::Avx2)),
        ("AVX512", Isa::Avx512, usize::from(best < Isa::Avx512)),
        ("sse9", best, 1),
        ("", best, 0),
    ];
    let exe = std::env::current_exe().unwrap();
    for (value, wanted, warnings) in cases {
        let expected = wanted.min(best);
        let out = Command::new(&exe)
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("TAPEFLOW_ISA", value)
            .env("TAPEFLOW_ISA_EXPECT", expected.to_string())
            .env("TAPEFLOW_ISA_WARNINGS", warnings.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "TAPEFLOW_ISA={value:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
