//! `stompkit bench --stats`: the status line summing every connection, printed as plain
//! lines (stderr is not a terminal here), against `stompkit broker` on a free loopback port
//! and against a port nothing listens on; and `stompkit bench` through `stompkit proxy`
//! cutting its connections.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

mod support;

use support::{BIN, BOUND, run, text};

/// A `stompkit broker` (or `proxy`) on a free loopback port, killed when dropped.
struct Broker {
    child: Child,
    url: String,
}

impl Broker {
    fn start() -> Self {
        Self::spawn(&["broker", "--listen", "127.0.0.1:0", "--no-ws"])
    }

    /// `stompkit proxy` in front of `upstream`.
    fn proxy(upstream: &Self, faults: &[&str]) -> Self {
        let mut args = vec!["proxy", "127.0.0.1:0", &upstream.url];
        args.extend_from_slice(faults);
        Self::spawn(&args)
    }

    /// Runs `stompkit args…` until it prints its `stomp://` address on stderr.
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stompkit broker");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // Read to the end so that the broker never blocks on a full pipe.
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut broker = Self {
            child,
            url: String::new(),
        };
        while broker.url.is_empty() {
            match rx.recv_timeout(BOUND) {
                Ok(line) => {
                    if let Some(at) = line.find("stomp://") {
                        let url = line[at..].split_whitespace().next().unwrap_or_default();
                        url.clone_into(&mut broker.url);
                    }
                }
                // Dropping `broker` kills it.
                Err(e) => panic!("stompkit {args:?} printed no URL: {e}"),
            }
        }
        broker
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status lines of `stderr`.
fn status_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("stompkit bench: up "))
        .collect()
}

#[test]
fn bench_stats_prints_a_line_for_all_connections_when_not_on_a_terminal() {
    let broker = Broker::start();
    // --duration 2: the run outlasts the first status line (due after 1 s).
    let out = run(&[
        "bench",
        &broker.url,
        "--producers",
        "2",
        "--consumers",
        "2",
        "--duration",
        "2",
        "--receipts",
        "--stats",
        "1",
        "--json",
        "--timeout",
        "50",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("the JSON summary on stdout");
    assert!(summary["sent"].as_u64().is_some_and(|n| n > 0), "{summary}");
    let lines = status_lines(stderr);
    assert!(!lines.is_empty(), "no status line in: {stderr}");
    for line in &lines {
        for field in [
            "4/4 connected, ",
            " sent (",
            " received (",
            "/s), 0 reconnects, ",
            " queued, ",
            " unconfirmed, ",
            " B buffered",
        ] {
            assert!(line.contains(field), "{field:?} missing in {line:?}");
        }
        assert!(!line.contains("last-failure"), "{line}");
    }
    assert!(
        !stderr.contains('\r'),
        "plain lines when stderr is not a terminal"
    );
}

#[test]
fn bench_stats_names_the_newest_failure_and_its_connection() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
        // Closed here: connecting to it is refused.
    };
    let url = format!("stomp://127.0.0.1:{port}");
    // Reconnects enough to last until --timeout, which ends the run: the status lines
    // (every second) come before it.
    let out = run(&[
        "bench",
        &url,
        "--producers",
        "1",
        "--consumers",
        "1",
        "--stats",
        "1",
        "--timeout",
        "3",
        "--max-reconnects",
        "1000000",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--timeout 3"), "{stderr}");
    let lines = status_lines(stderr);
    assert!(!lines.is_empty(), "no status line in: {stderr}");
    for line in &lines {
        assert!(line.contains(", 0/2 connected, "), "{line}");
        assert!(
            line.contains(" 0 sent (0.0/s), 0 received (0.0/s)"),
            "{line}"
        );
        assert!(line.contains(" last-failure=Network: "), "{line}");
        assert!(
            line.ends_with(" (connection 1)") || line.ends_with(" (connection 2)"),
            "{line}"
        );
    }
}

#[test]
fn bench_with_receipts_and_acks_counts_every_message_once_through_cut_connections() {
    let broker = Broker::start();
    // Every connection cut about every 3 s; the latency and the small receipt window make
    // the run last seconds. Sends are re-sent after lost receipts, and
    // deliveries whose ACK could not be written come again, some of them twice.
    let proxy = Broker::proxy(
        &broker,
        &["--cut-every", "3s", "--latency", "1ms", "--seed", "7"],
    );
    let out = run(&[
        "bench",
        &proxy.url,
        "--count",
        "8000",
        "--receipts",
        "--in-flight",
        "8",
        "--ack",
        "client-individual",
        "--max-reconnects",
        "1000",
        "--json",
        "--timeout",
        "50",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reconnected"),
        "the proxy cut no connection: {stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("the JSON summary on stdout");
    for key in ["sent", "receipted", "received", "expected"] {
        assert_eq!(summary[key].as_u64(), Some(8000), "{key}: {summary}");
    }
    assert!(summary["duplicates"].as_u64().is_some(), "{summary}");
    // getrusage: CPU time in microseconds (never 0 for this much work), RSS in KiB.
    assert!(
        summary["cpu_s"].as_f64().is_some_and(|s| s > 0.0),
        "{summary}"
    );
    assert!(
        summary["peak_rss_kib"]
            .as_u64()
            .is_some_and(|kib| (1024..4 * 1024 * 1024).contains(&kib)),
        "{summary}"
    );
}

#[test]
fn bench_settle_ends_a_run_whose_messages_went_elsewhere() {
    let broker = Broker::start();
    let destination = format!("/queue/settle-{}", std::process::id());
    // Another consumer of the same queue takes its share of the messages: the bench's
    // consumer never gets them all, and without --settle would wait for --timeout.
    let mut competitor = Command::new(BIN)
        .args(["subscribe", &broker.url, &destination])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stompkit subscribe");
    thread::sleep(Duration::from_secs(2));
    let out = run(&[
        "bench",
        &broker.url,
        "--count",
        "2000",
        "--destination",
        &destination,
        "--settle",
        "2",
        "--timeout",
        "50",
    ]);
    let _ = competitor.kill();
    let _ = competitor.wait();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--settle 2: no new message for 2 s after every one was sent"),
        "{stderr}"
    );
    assert!(stderr.contains(" of 2000 received"), "{stderr}");
    assert!(!stderr.contains("--timeout"), "{stderr}");
}
