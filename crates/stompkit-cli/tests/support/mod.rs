//! Running the `stompkit` binary from the CLI's integration tests, every run bounded.
#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_stompkit");
/// Bound on any one command (a hang fails the test instead of stalling it).
pub const BOUND: Duration = Duration::from_secs(60);

/// `stompkit args…` with no stdin and no `STOMP_URL`/`STOMP_PASSCODE` from the caller's
/// environment, killed if it outlives [`BOUND`].
pub fn run(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .env_remove("STOMP_URL")
        .env_remove("STOMP_PASSCODE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stompkit");
    wait_bounded(child, args)
}

/// Waits for `child` and its output; kills it and fails if it outlives [`BOUND`].
pub fn wait_bounded(child: Child, what: &[&str]) -> Output {
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(BOUND) {
        Ok(output) => output.expect("wait for stompkit"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("stompkit {what:?} still running after {BOUND:?}");
        }
    }
}

/// Output as text.
pub fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}
