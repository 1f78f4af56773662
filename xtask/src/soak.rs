//! `cargo xtask soak`: the broker suite's `soak` binary (release build) against the local
//! RabbitMQ (started if needed). See `broker-suite/src/soak.rs` and `docs/reliability.md`.

use std::path::Path;
use std::process::Command;

use crate::{broker, run};

/// `soak [--minutes M] [--rate R] [--fault-every SECS] [--seed S] [--samples FILE]
/// [--json]`: the arguments go to the binary as they are.
pub(crate) fn soak(cargo: &Path, args: &[String]) -> Result<(), String> {
    let env = broker::start_for_ci()?;
    run(Command::new(cargo)
        .args([
            "run",
            "--release",
            "--locked",
            "-p",
            "stompkit-broker-suite",
            "--bin",
            "soak",
            "--",
        ])
        .args(args)
        .envs(env))
}
