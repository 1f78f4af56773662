//! Project automation, run as `cargo xtask <task>`.
//!
//! - `ci`: everything CI checks, in the order a failure is cheapest to find: formatting,
//!   clippy, tests (unit, integration, property, doc, fuzz-corpus replay), documentation.
//! - `fuzz [--seconds N]`: every cargo-fuzz target for N seconds each (nightly toolchain).
//! - `bench`: the criterion comparison with the other Rust STOMP codecs, the interleaved
//!   decode (a) comparison, and the report in `docs/performance.md`.
//! - `broker start|stop|status`, `cluster start|stop|status`: the local RabbitMQ node and
//!   three-node cluster of the real-broker tests (see `broker.rs` and `docs/testing.md`).
//!
//! Each task prints the commands it runs and stops at the first failure with its exit code.

mod broker;
mod probe;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The fuzz targets, in the order `fuzz` runs them.
const FUZZ_TARGETS: [&str; 4] = ["decode", "decode_split", "round_trip", "session"];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("bench") => bench(),
        Some("broker") => broker::broker(&args[1..]),
        Some("cluster") => broker::cluster(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            eprintln!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> &'static str {
    "usage: cargo xtask <task>\n\n\
     tasks:\n  \
     ci                  fmt, clippy, all tests, docs (what CI runs)\n  \
     fuzz [--seconds N]  run every fuzz target for N seconds (default 60; needs nightly)\n  \
     bench               criterion benches against other codecs, report to docs/performance.md\n  \
     broker start|stop|status   local RabbitMQ (STOMP, TLS, Web-STOMP) for the tests (root)\n  \
     cluster start|stop|status  two more RabbitMQ nodes joined to it (root)"
}

fn ci() -> Result<(), String> {
    let started = Instant::now();
    let cargo = cargo();
    run(Command::new(&cargo).args(["fmt", "--all", "--check"]))?;
    run(Command::new(&cargo).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The real-broker tests' RabbitMQ node and cluster (left running afterwards; see
    // xtask/src/broker.rs), their addresses passed as STOMPKIT_RABBITMQ_* variables.
    let broker_env = broker::start_for_ci()?;
    run(Command::new(&cargo)
        .args([
            "test",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
        ])
        .envs(broker_env.clone()))?;
    // `--all-targets` leaves out doc tests; they run here.
    run(Command::new(&cargo)
        .args(["test", "--workspace", "--doc", "--all-features", "--locked"])
        .envs(broker_env))?;
    run(Command::new(&cargo)
        .args([
            "doc",
            "--workspace",
            "--no-deps",
            "--all-features",
            "--locked",
        ])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    eprintln!("xtask ci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

fn fuzz(args: &[String]) -> Result<(), String> {
    let seconds = match args {
        [] => 60,
        [flag, n] if flag == "--seconds" => n
            .parse::<u64>()
            .map_err(|_| format!("--seconds takes a whole number, not `{n}`"))?,
        _ => return Err(format!("fuzz takes only `--seconds N`\n\n{}", usage())),
    };
    let has_nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_nightly {
        return Err(
            "cargo-fuzz needs a nightly toolchain: `rustup toolchain install nightly`".into(),
        );
    }
    let has_cargo_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        eprintln!("xtask: cargo-fuzz is missing; installing it from crates.io");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let root = root();
    for target in FUZZ_TARGETS {
        run(Command::new("cargo")
            .current_dir(&root)
            .args(["+nightly", "fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}")))?;
    }
    Ok(())
}

fn bench() -> Result<(), String> {
    let cargo = cargo();
    let criterion = env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("criterion");
    std::fs::create_dir_all(&criterion)
        .map_err(|e| format!("creating {}: {e}", criterion.display()))?;
    // The revision measured, for perf-report (the results carry none).
    let code = Command::new("git")
        .current_dir(root())
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| out.stdout)
        .unwrap_or_default();
    let stamp = criterion.join("code.txt");
    std::fs::write(&stamp, code).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    run(Command::new(&cargo).args(CODEC_BENCH).args(CRITERION_TIMES))?;
    // The decode (a) comparison interleaved round by round (benches/benches/interleaved.rs),
    // left next to criterion's results for the report.
    run(Command::new(&cargo)
        .args([
            "bench",
            "-p",
            "stompkit-benches",
            "--bench",
            "interleaved",
            "--",
            "2000",
            "--out",
        ])
        .arg(criterion.join("interleaved.md")))?;
    run(Command::new(&cargo).args(["run", "-p", "stompkit-benches", "--bin", "perf-report"]))
}

/// `cargo` arguments that run the criterion codec bench.
const CODEC_BENCH: [&str; 6] = ["bench", "-p", "stompkit-benches", "--bench", "codec", "--"];
/// Criterion's warm-up and measurement time per bench, in seconds.
const CRITERION_TIMES: [&str; 4] = ["--warm-up-time", "1", "--measurement-time", "3"];

/// Runs a command from the workspace root, echoing it first.
fn run(command: &mut Command) -> Result<(), String> {
    if command.get_current_dir().is_none() {
        command.current_dir(root());
    }
    let shown = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("xtask: $ {shown}");
    let status = command
        .status()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// The cargo that runs xtask (so `cargo +toolchain xtask` keeps its toolchain).
fn cargo() -> PathBuf {
    env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}
