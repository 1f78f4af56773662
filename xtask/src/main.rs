//! Project automation, run as `cargo xtask <task>`.
//!
//! - `ci`: everything CI checks, in the order a failure is cheapest to find: formatting,
//!   clippy, tests (unit, integration, property, doc, fuzz-corpus replay), the stompkit-tokio
//!   examples against the local RabbitMQ, documentation
//!   with default and with all features, the library crates built with their MSRV toolchain,
//!   and the library crates' packaged copies tested on their own.
//! - `fuzz [--seconds N] [--merge]`: every cargo-fuzz target for N seconds each (nightly
//!   toolchain), in a work corpus under the target directory; `--merge` adds what it found to
//!   the committed corpus (`fuzz/corpus/`), minimised.
//! - `bench`: the criterion comparison with the other Rust STOMP codecs, the interleaved
//!   decode (a) comparison, and the report in `docs/performance.md`.
//! - `bench-e2e [--quick] [--only NAMES]`: stompkit and other STOMP clients end to end
//!   through the local RabbitMQ, tables in `docs/performance.md` (see `bench_e2e.rs`).
//! - `interop`: stomp.py and stompjs suites against `stompkit broker`, and the root README's
//!   first command (also a step of `ci`; see `interop.rs`).
//! - `chaos [...]`, `soak [...]`: faults under a receipted stream, and a long run's resource
//!   slopes (a short chaos run is a step of `ci`; see `chaos.rs`, `soak.rs`, `docs/reliability.md`).
//! - `broker start|stop|status`, `cluster start|stop|status`: the local RabbitMQ node and
//!   three-node cluster of the real-broker tests (see `broker.rs` and `docs/testing.md`).
//!
//! Each task prints the commands it runs and stops at the first failure with its exit code.

mod bench_e2e;
mod broker;
mod chaos;
mod interop;
mod probe;
mod soak;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The fuzz targets, in the order `fuzz` runs them.
const FUZZ_TARGETS: [&str; 6] = [
    "decode",
    "decode_split",
    "round_trip",
    "session",
    "broker",
    "client_input",
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("bench") => bench(),
        Some("bench-e2e") => bench_e2e::bench_e2e(&args[1..]),
        Some("broker") => broker::broker(&args[1..]),
        Some("cluster") => broker::cluster(&args[1..]),
        Some("interop") => interop::interop(&cargo()),
        Some("chaos") => chaos::chaos(&cargo(), &args[1..]),
        Some("soak") => soak::soak(&cargo(), &args[1..]),
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
     fuzz [--seconds N] [--merge]\n                         run every fuzz target for N seconds (default 60; needs nightly);\n                         --merge adds new coverage to fuzz/corpus, minimised\n  \
     bench               criterion benches against other codecs, report to docs/performance.md\n  \
     bench-e2e [--quick] [--only NAMES]\n                         clients end to end through RabbitMQ (root), to docs/performance.md\n  \
     broker start|stop|status   local RabbitMQ (STOMP, TLS, Web-STOMP) for the tests (root)\n  \
     cluster start|stop|status  two more RabbitMQ nodes joined to it (root)\n  \
     interop             stomp.py and stompjs suites against `stompkit broker`, the README quickstart\n  \
     chaos [--messages N] [--faults F] [--seed S] [--broker rabbitmq|embedded|both] [--cluster] [--json]\n                         faults injected under a receipted stream; fails on a lost message (root)\n  \
     soak [--minutes M] [--rate R] [--fault-every SECS] [--samples FILE] [--json]\n                         one client for M minutes with faults; memory, fd and task slopes (root)"
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
    // Every stompkit-tokio example against the local broker, job_offers through a restart of
    // its node. Each bounds its own waits; `timeout` (coreutils) bounds the rest.
    run(Command::new(&cargo).args([
        "build",
        "-p",
        "stompkit-tokio",
        "--examples",
        "--all-features",
        "--locked",
    ]))?;
    let broker_var = |key: &str| {
        broker_env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .ok_or(format!("{key} is not set by the broker start"))
    };
    let examples = [
        // No STOMP_URL: the example's embedded broker.
        ("quickstart", String::new(), vec![]),
        ("quickstart", broker_var("STOMPKIT_RABBITMQ_TCP")?, vec![]),
        (
            "request_reply",
            broker_var("STOMPKIT_RABBITMQ_TCP")?,
            vec![],
        ),
        (
            "prometheus",
            broker_var("STOMPKIT_RABBITMQ_TCP")?,
            vec!["--once".to_owned()],
        ),
        (
            "job_offers",
            broker_var("STOMPKIT_RABBITMQ_WS")?,
            vec![
                "--demo".to_owned(),
                "--restart-node".to_owned(),
                broker_var("STOMPKIT_RABBITMQ_NODE")?,
            ],
        ),
    ];
    for (example, url, args) in examples {
        let mut command = Command::new("timeout");
        command
            .args(["--kill-after=10", "180"])
            .arg(&cargo)
            .args(["run", "--locked", "-p", "stompkit-tokio", "--all-features"])
            .args(["--example", example, "--"])
            .args(args);
        if url.is_empty() {
            command.env_remove("STOMP_URL");
        } else {
            command.env("STOMP_URL", url);
        }
        run(&mut command)?;
    }
    // A short seeded chaos run against RabbitMQ and the embedded broker: a lost message fails.
    chaos::chaos_for_ci(&cargo, &broker_env)?;
    // Other people's clients against `stompkit broker`, and the README's first command.
    interop::interop(&cargo)?;
    // `--all-targets` leaves out doc tests; they run here.
    run(Command::new(&cargo)
        .args(["test", "--workspace", "--doc", "--all-features", "--locked"])
        .envs(broker_env))?;
    // Docs both ways: an intra-doc link to a feature-gated item breaks only without it.
    for features in [None, Some("--all-features")] {
        run(Command::new(&cargo)
            .args(["doc", "--workspace", "--no-deps", "--locked"])
            .args(features)
            .env("RUSTDOCFLAGS", "-D warnings"))?;
    }
    let libraries = library_crates()?;
    msrv_check(&libraries)?;
    package_check(&cargo, &libraries)?;
    eprintln!("xtask ci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = 60;
    let mut merge = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--seconds" => {
                let n = rest.next().ok_or("--seconds takes a number")?;
                seconds = n
                    .parse::<u64>()
                    .map_err(|_| format!("--seconds takes a whole number, not `{n}`"))?;
            }
            "--merge" => merge = true,
            _ => {
                return Err(format!(
                    "fuzz takes only `--seconds N` and `--merge`\n\n{}",
                    usage()
                ));
            }
        }
    }
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
        let committed = root.join("fuzz/corpus").join(target);
        let work = fuzz_work_corpus(target, &committed)?;
        // The first corpus directory is the one libFuzzer writes new inputs to.
        run(Command::new("cargo")
            .current_dir(&root)
            .args(["+nightly", "fuzz", "run", target])
            .arg(&work)
            .arg("--")
            .arg(format!("-max_total_time={seconds}")))?;
        if merge {
            // Copies into the first directory a smallest set of the work inputs that covers
            // the edges it lacks (hit counts ignored), so the committed corpus grows by a few
            // files, not by every input that bumped a counter.
            run(Command::new("cargo")
                .current_dir(&root)
                .args(["+nightly", "fuzz", "run", target])
                .arg(&committed)
                .arg(&work)
                .args(["--", "-set_cover_merge=1", "-use_counters=0"]))?;
        }
    }
    Ok(())
}

/// The corpus a fuzz run writes to: `<target dir>/fuzz-corpus/<target>`, kept between runs
/// and topped up with the committed seeds, so that `fuzz/corpus/` changes only on `--merge`.
fn fuzz_work_corpus(target: &str, committed: &Path) -> Result<PathBuf, String> {
    let work = target_dir().join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let entries = std::fs::read_dir(committed)
        .map_err(|e| format!("reading {}: {e}", committed.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", committed.display()))?
            .path();
        if path.is_file() {
            let to = work.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &to)
                .map_err(|e| format!("copying {} to {}: {e}", path.display(), to.display()))?;
        }
    }
    Ok(work)
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

/// The published library crates: every crate under `crates/` with a `src/lib.rs` (the CLI
/// is a binary only), by package name, which is the directory's name.
fn library_crates() -> Result<Vec<String>, String> {
    let crates = root().join("crates");
    let entries =
        std::fs::read_dir(&crates).map_err(|e| format!("reading {}: {e}", crates.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let dir = entry
            .map_err(|e| format!("reading {}: {e}", crates.display()))?
            .path();
        if dir.join("Cargo.toml").is_file() && dir.join("src/lib.rs").is_file() {
            names.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    names.sort();
    Ok(names)
}

/// A `key = "value"` string field of a manifest's `[section]` (enough for the fields read
/// here; not a TOML parser).
fn manifest_field(manifest: &Path, section: &str, key: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| format!("reading {}: {e}", manifest.display()))?;
    let header = format!("[{section}]");
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == header;
            continue;
        }
        let value = line
            .split_once('=')
            .filter(|(k, _)| in_section && k.trim() == key)
            .and_then(|(_, v)| v.trim().strip_prefix('"'))
            .and_then(|v| v.split('"').next());
        if let Some(value) = value {
            return Ok(value.to_owned());
        }
    }
    Err(format!(
        "{}: no `{key} = \"…\"` in {header}",
        manifest.display()
    ))
}

/// Builds the library crates with the workspace's `rust-version` toolchain and the committed
/// lock file, installing that toolchain (minimal profile) when rustup lacks it.
fn msrv_check(libraries: &[String]) -> Result<(), String> {
    let msrv = manifest_field(
        &root().join("Cargo.toml"),
        "workspace.package",
        "rust-version",
    )?;
    let installed = Command::new("rustup")
        .args(["run", &msrv, "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        run(Command::new("rustup").args(["toolchain", "install", &msrv, "--profile", "minimal"]))?;
    }
    let mut build = Command::new("rustup");
    build
        .args(["run", &msrv, "cargo", "build", "--locked", "--all-features"])
        // Set by the cargo running xtask; they would point the old cargo at today's compiler.
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO");
    for library in libraries {
        build.args(["-p", library]);
    }
    run(&mut build)
}

/// Packages the library crates together, unpacks them into `<target dir>/package-check` as a
/// workspace of their own (each crate's published dependencies on the others patched to the
/// unpacked copies), and runs their tests there with default and with all features, offline:
/// what a crate's tests need must be in its package.
fn package_check(cargo: &Path, libraries: &[String]) -> Result<(), String> {
    let target = target_dir();
    let mut package = Command::new(cargo);
    package.args([
        "package",
        "--no-verify",
        "--allow-dirty",
        "--locked",
        "--offline",
    ]);
    for library in libraries {
        package.args(["-p", library]);
    }
    run(&mut package)?;
    let check = target.join("package-check");
    if check.exists() {
        std::fs::remove_dir_all(&check)
            .map_err(|e| format!("removing {}: {e}", check.display()))?;
    }
    std::fs::create_dir_all(&check).map_err(|e| format!("creating {}: {e}", check.display()))?;
    let (mut members, mut patches) = (String::new(), String::new());
    for library in libraries {
        let manifest = root().join("crates").join(library).join("Cargo.toml");
        let version = manifest_field(&manifest, "package", "version")?;
        let unpacked = format!("{library}-{version}");
        // `-m`: the files get the time of unpacking, not the fixed time cargo stores in a
        // package, or cargo would take a previous check's build of them as up to date.
        run(Command::new("tar")
            .arg("-xzmf")
            .arg(target.join("package").join(format!("{unpacked}.crate")))
            .arg("-C")
            .arg(&check))?;
        members.push_str(&format!("\"{unpacked}\", "));
        patches.push_str(&format!("{library} = {{ path = \"{unpacked}\" }}\n"));
    }
    let manifest = format!(
        "[workspace]\nresolver = \"3\"\nmembers = [{members}]\n\n[patch.crates-io]\n{patches}"
    );
    let write = |name: &str, contents: &[u8]| {
        let path = check.join(name);
        std::fs::write(&path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    write("Cargo.toml", manifest.as_bytes())?;
    // The workspace's lock file pins the same dependency versions; cargo drops the rest.
    let lock = root().join("Cargo.lock");
    write(
        "Cargo.lock",
        &std::fs::read(&lock).map_err(|e| format!("reading {}: {e}", lock.display()))?,
    )?;
    for features in [None, Some("--all-features")] {
        run(Command::new(cargo)
            .current_dir(&check)
            .args(["test", "--workspace", "--offline"])
            .args(features)
            .env("CARGO_TARGET_DIR", &target))?;
    }
    Ok(())
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root) or `target`.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |dir| root().join(dir))
}

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
