//! tapeflow
