//! `stompkit bench` against the real RabbitMQ that `cargo xtask broker start` runs (see
//! docs/testing.md): the JSON summary's counts, never its speeds.
//!
//! The address comes from `STOMPKIT_RABBITMQ_TCP`, or else from `target/rabbitmq/env`.
//! Without either the tests fail: they are never skipped.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_stompkit");

/// How long one run may take before the test kills it and fails (each run also has its
/// own `--timeout`, shorter).
const RUN_LIMIT: Duration = Duration::from_secs(90);

fn tcp_url() -> String {
    if let Ok(url) = std::env::var("STOMPKIT_RABBITMQ_TCP") {
        return url;
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/rabbitmq/env");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "no RabbitMQ for the broker tests: STOMPKIT_RABBITMQ_TCP is not set and {} \
             cannot be read ({e}). Start one with `cargo xtask broker start` (as root), or \
             run `cargo xtask ci`.",
            file.display()
        )
    });
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == "STOMPKIT_RABBITMQ_TCP")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| {
            panic!(
                "STOMPKIT_RABBITMQ_TCP is missing from {}; rerun `cargo xtask broker start`",
                file.display()
            )
        })
}

/// A destination name no other test (or earlier run) uses.
fn unique(kind: &str, tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "/{kind}/stompkit-cli-bench-{tag}-{}-{nanos}",
        std::process::id()
    )
}

/// Runs `stompkit bench URL args… --json` (bounded) and returns its summary.
fn bench(args: &[&str]) -> Value {
    let url = tcp_url().replacen("stomp://", "stomp://guest:guest@", 1);
    let child = Command::new(BIN)
        .arg("bench")
        .arg(&url)
        .args(args)
        .args(["--json", "--timeout", "60"])
        .env_remove("STOMP_PASSCODE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stompkit");
    let output = wait(child, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{args:?}: status {:?}, stderr: {stderr}",
        output.status
    );
    let stdout = std::str::from_utf8(&output.stdout).expect("stdout is UTF-8");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{args:?}: not one JSON object ({e}): {stdout}"))
}

fn wait(mut child: Child, args: &[&str]) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{args:?}: still running after {RUN_LIMIT:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {summary}"))
}

/// A latency object with its four percentiles, in order.
fn latency(summary: &Value, key: &str) {
    let l = &summary[key];
    let values: Vec<f64> = ["p50", "p90", "p99", "max"]
        .iter()
        .map(|p| {
            l[p].as_f64()
                .unwrap_or_else(|| panic!("{key}.{p} missing in {summary}"))
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "{key} not in order: {values:?}"
    );
}

#[test]
fn every_message_is_sent_receipted_and_received_once_with_acks() {
    let queue = unique("queue", "receipts");
    let summary = bench(&[
        "--destination",
        &queue,
        "--count",
        "500",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--size",
        "100",
        "--receipts",
        "--ack",
        "client-individual",
    ]);
    assert_eq!(count(&summary, "sent"), 500, "{summary}");
    assert_eq!(count(&summary, "receipted"), 500, "{summary}");
    assert_eq!(count(&summary, "expected"), 500, "{summary}");
    assert_eq!(count(&summary, "received"), 500, "{summary}");
    assert_eq!(summary["destination"], queue.as_str());
    assert_eq!(summary["ack"], "client-individual");
    latency(&summary, "receipt_latency_ms");
    latency(&summary, "delivery_latency_ms");
    assert!(count(&summary, "peak_rss_kib") > 0, "{summary}");
    assert!(summary["cpu_s_per_100k"].as_f64().is_some(), "{summary}");
}

#[test]
fn every_consumer_of_a_topic_receives_every_message() {
    let topic = unique("topic", "fanout");
    let summary = bench(&[
        "--destination",
        &topic,
        "--count",
        "200",
        "--consumers",
        "3",
    ]);
    assert_eq!(count(&summary, "sent"), 200, "{summary}");
    assert_eq!(count(&summary, "expected"), 600, "{summary}");
    assert_eq!(count(&summary, "received"), 600, "{summary}");
    assert!(summary["receipt_latency_ms"].is_null(), "{summary}");
    latency(&summary, "delivery_latency_ms");
}

#[test]
fn a_timed_run_receives_what_it_sent() {
    let queue = unique("queue", "duration");
    let summary = bench(&[
        "--destination",
        &queue,
        "--duration",
        "1",
        "--ack",
        "client",
    ]);
    let sent = count(&summary, "sent");
    assert!(sent > 0, "{summary}");
    assert_eq!(count(&summary, "received"), sent, "{summary}");
}

#[test]
fn producers_alone_only_send() {
    let queue = unique("queue", "send-only");
    let summary = bench(&[
        "--destination",
        &queue,
        "--count",
        "300",
        "--consumers",
        "0",
        "--receipts",
    ]);
    assert_eq!(count(&summary, "sent"), 300, "{summary}");
    assert_eq!(count(&summary, "receipted"), 300, "{summary}");
    assert_eq!(count(&summary, "received"), 0, "{summary}");
    assert!(summary["delivery_latency_ms"].is_null(), "{summary}");
}
