//! Shared pieces of the stompkit codec benchmarks.
//!
//! - [`corpus`]: the frames measured and the exact bytes a STOMP 1.2 broker sends for them,
//!   written by hand here (not by the encoder under test).
//! - [`ids`]: criterion group and bench names, and which corpus each group measures, so that
//!   the benches (`benches/codec.rs`) and the report generator (`src/bin/perf-report.rs`)
//!   agree on them.
//!
//! - [`stompkit`]: the stompkit-codec decoder driver and the counts every decoder driver
//!   reports, shared with the `decode-profile` bin.
//!
//! The decode and encode drivers for each library live in `shared/drivers.rs`, included by
//! both the benches and `tests/corpus.rs`, so the test checks the very code that is timed.
//! See `docs/performance.md` for how to run everything.

pub mod corpus;
pub mod ids;
pub mod stompkit;
