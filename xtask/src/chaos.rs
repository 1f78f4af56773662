//! `cargo xtask chaos`: the broker suite's `chaos` binary (release build) against the local
//! RabbitMQ (started if needed), the embedded broker and the cluster. See
//! `broker-suite/src/chaos.rs` and `docs/reliability.md`.

use std::path::Path;
use std::process::Command;

use crate::{broker, run, target_dir};

/// `chaos [--messages N] [--faults F] [--seed S] [--broker rabbitmq|embedded|both]
/// [--cluster] [--json]`: the arguments go to the binary as they are.
pub(crate) fn chaos(cargo: &Path, args: &[String]) -> Result<(), String> {
    let env = broker::start_for_ci()?;
    run(Command::new(cargo)
        .args([
            "run",
            "--release",
            "--locked",
            "-p",
            "stompkit-broker-suite",
            "--bin",
            "chaos",
            "--",
        ])
        .args(args)
        .envs(env))
}

/// For `cargo xtask ci`: a short seeded run against both brokers (a few thousand messages,
/// ten faults each, every kind); a lost message fails it. The debug build the test step made
/// already, and `timeout` (coreutils) bounds the run, not the build.
pub(crate) fn chaos_for_ci(cargo: &Path, env: &[(String, String)]) -> Result<(), String> {
    run(Command::new(cargo).args([
        "build",
        "--locked",
        "--all-features",
        "-p",
        "stompkit-broker-suite",
        "--bin",
        "chaos",
    ]))?;
    run(Command::new("timeout")
        .args(["--kill-after=10", "240"])
        .arg(target_dir().join("debug/chaos"))
        .args([
            "--messages",
            "3000",
            "--faults",
            "10",
            "--seed",
            "15",
            "--broker",
            "both",
        ])
        .envs(env.iter().cloned()))
}
