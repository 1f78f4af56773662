//! `stompkit bench` refuses bad arguments before it connects to anything (no broker needed).

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_stompkit");

/// A loopback port nothing is expected to answer on: none of these runs gets that far.
const URL: &str = "stomp://127.0.0.1:9";

fn bench(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .env_remove("STOMP_PASSCODE")
        .stdin(Stdio::null())
        .output()
        .expect("run stompkit")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The run failed with status 2, printed nothing on stdout, and said each of `words`.
fn refused(args: &[&str], words: &[&str]) {
    let output = bench(args);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
    assert!(output.stdout.is_empty(), "{args:?}: stdout not empty");
    for word in words {
        assert!(text.contains(word), "{args:?}: {word:?} not in {text}");
    }
}

#[test]
fn count_and_duration_exclude_each_other() {
    refused(
        &[URL, "--count", "10", "--duration", "5"],
        &["--count", "--duration"],
    );
}

#[test]
fn zero_counts_are_refused() {
    refused(&[URL, "--count", "0"], &["--count"]);
    refused(&[URL, "--duration", "0"], &["--duration"]);
    refused(
        &[URL, "--producers", "0"],
        &["--producers", "from 1 to 1000"],
    );
    refused(&[URL, "--in-flight", "0"], &["--in-flight", "at least 1"]);
    refused(&[URL, "--timeout", "0"], &["--timeout"]);
}

#[test]
fn too_many_connections_are_refused() {
    refused(
        &[URL, "--consumers", "1001"],
        &["--consumers", "from 0 to 1000"],
    );
}

#[test]
fn duration_must_leave_time_to_receive() {
    refused(
        &[URL, "--duration", "10", "--timeout", "10"],
        &["--duration 10", "--timeout 10"],
    );
}

#[test]
fn a_body_larger_than_a_frame_is_refused() {
    refused(
        &[URL, "--size", "5000", "--max-frame-bytes", "4096"],
        &["--size 5000", "--max-frame-bytes 4096"],
    );
}

#[test]
fn an_unknown_ack_mode_is_refused() {
    refused(
        &[URL, "--ack", "sometimes"],
        &["--ack", "client-individual"],
    );
}

#[test]
fn a_bad_url_is_refused_before_connecting() {
    refused(&["http://127.0.0.1:61613"], &["http"]);
}
