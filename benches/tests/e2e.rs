//! The end-to-end programs of `cargo xtask bench-e2e` against the real RabbitMQ that
//! `cargo xtask broker start` runs, with small counts: each one sends, receives, waits for
//! receipts and acknowledges as the harness expects, and prints the summary it reads. The
//! counts are checked, never the speeds.
//!
//! The address comes from `STOMPKIT_RABBITMQ_TCP` (set by `cargo xtask ci`); without it the
//! tests fail, they are never skipped.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The programs, by the name the harness gives them.
const PROGRAMS: [(&str, &str); 4] = [
    ("stompkit-tokio loop", env!("CARGO_BIN_EXE_e2e-stompkit")),
    ("iridium-stomp", env!("CARGO_BIN_EXE_e2e-iridium")),
    ("async-stomp", env!("CARGO_BIN_EXE_e2e-async-stomp")),
    ("floor", env!("CARGO_BIN_EXE_e2e-floor")),
];

/// Bound on one run; each also gets a shorter `--timeout` of its own.
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn url() -> String {
    let url = std::env::var("STOMPKIT_RABBITMQ_TCP").unwrap_or_else(|_| {
        panic!(
            "STOMPKIT_RABBITMQ_TCP is not set: start RabbitMQ with `cargo xtask broker start` \
             (as root) and source target/rabbitmq/env, or run `cargo xtask ci`"
        )
    });
    url.replacen("stomp://", "stomp://guest:guest@", 1)
}

fn destination(kind: &str, tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "/{kind}/stompkit-e2e-test-{tag}-{}-{nanos}",
        std::process::id()
    )
}

/// Runs `program URL args… --timeout 90` (bounded) and returns its JSON summary.
fn run(name: &str, program: &str, args: &[&str]) -> Value {
    let child = Command::new(program)
        .arg(url())
        .args(args)
        .args(["--timeout", "90"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(RUN_LIMIT) {
        Ok(output) => output.expect("wait for the program"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("{name} {args:?} still running after {RUN_LIMIT:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} {args:?}: {stderr}");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{name} {args:?}: no JSON summary ({e}): {stdout}{stderr}"))
}

fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {summary}"))
}

#[test]
fn every_program_delivers_every_message_with_auto_acks() {
    for (name, program) in PROGRAMS {
        let dest = destination("queue", "auto");
        let summary = run(name, program, &["--count", "500", "--destination", &dest]);
        assert_eq!(count(&summary, "sent"), 500, "{name}: {summary}");
        assert_eq!(count(&summary, "received"), 500, "{name}: {summary}");
        assert!(
            summary["delivery_latency_ms"]["p99"].is_number(),
            "{name}: {summary}"
        );
        assert!(summary["receipt_latency_ms"].is_null(), "{name}: {summary}");
    }
}

#[test]
fn every_program_has_every_send_receipted_and_every_delivery_acknowledged() {
    for (name, program) in PROGRAMS {
        let dest = destination("queue", "receipts");
        let args = [
            "--count",
            "500",
            "--receipts",
            "--in-flight",
            "64",
            "--ack",
            "client-individual",
            "--destination",
            &dest,
        ];
        let summary = run(name, program, &args);
        for key in ["sent", "receipted", "received"] {
            assert_eq!(count(&summary, key), 500, "{name} {key}: {summary}");
        }
        assert!(
            summary["receipt_latency_ms"]["p99"].is_number(),
            "{name}: {summary}"
        );
    }
}

#[test]
fn every_program_fans_a_topic_out_to_every_consumer() {
    for (name, program) in PROGRAMS {
        let dest = destination("topic", "fan-out");
        let args = ["--count", "100", "--consumers", "3", "--destination", &dest];
        let summary = run(name, program, &args);
        assert_eq!(count(&summary, "sent"), 100, "{name}: {summary}");
        assert_eq!(count(&summary, "received"), 300, "{name}: {summary}");
    }
}
