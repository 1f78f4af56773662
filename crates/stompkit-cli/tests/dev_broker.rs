//! `stompkit broker` and `stompkit demo`, and the root README's quickstart command.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;

mod support;

use support::{BIN, BOUND, run, text};

/// A running `stompkit broker` and the URLs it printed.
struct DevBroker {
    child: Child,
    stomp: String,
    ws: Option<String>,
    tls: Option<String>,
    stderr: mpsc::Receiver<String>,
}

impl DevBroker {
    /// Starts `stompkit broker` on free loopback ports with `extra` flags and reads its URLs.
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["broker", "--listen", "127.0.0.1:0"])
            .args(
                ["--ws", "127.0.0.1:0"]
                    .iter()
                    .filter(|_| !extra.contains(&"--no-ws")),
            )
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stompkit broker");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut stomp, mut ws, mut tls) = (None, None, None);
        loop {
            let line = match rx.recv_timeout(BOUND) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    panic!("stompkit broker printed no URLs: {e}");
                }
            };
            let url = line.trim();
            if url.starts_with("stomp://") {
                stomp = Some(url.to_owned());
            } else if url.starts_with("ws://") {
                ws = Some(url.to_owned());
            } else if url.starts_with("stomp+ssl://") {
                tls = Some(url.to_owned());
            } else if url.contains("Ctrl-C stops it") {
                break;
            }
        }
        Self {
            child,
            stomp: stomp.expect("a stomp:// URL"),
            ws,
            tls,
            stderr: rx,
        }
    }

    /// SIGTERM, then the exit status and what it printed after the URLs.
    fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(self.child.wait());
        });
        let status = match rx.recv_timeout(BOUND) {
            Ok(status) => status.expect("wait for the broker"),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("stompkit broker did not stop on SIGTERM");
            }
        };
        let rest: Vec<String> = self.stderr.try_iter().collect();
        (status, rest.join("\n"))
    }
}

#[test]
fn broker_serves_send_and_subscribe_over_tcp_and_websocket_and_stops_on_sigterm() {
    let broker = DevBroker::start(&[]);
    assert!(
        broker.stomp.starts_with("stomp://127.0.0.1:"),
        "{}",
        broker.stomp
    );
    let ws = broker.ws.clone().expect("a ws:// URL");
    assert!(
        ws.starts_with("ws://127.0.0.1:") && ws.ends_with("/ws"),
        "{ws}"
    );

    let sent = run(&[
        "send",
        &broker.stomp,
        "/queue/cli",
        "job {n}",
        "--count",
        "3",
        "--receipt",
    ]);
    assert!(sent.status.success(), "send: {}", text(&sent.stderr));
    // The queue kept them for a consumer that comes later, over the other transport.
    let got = run(&[
        "subscribe",
        &ws,
        "/queue/cli",
        "--count",
        "3",
        "--timeout",
        "30",
        "--ack",
        "client-individual",
    ]);
    assert!(got.status.success(), "subscribe: {}", text(&got.stderr));
    assert_eq!(text(&got.stdout), "job 1\njob 2\njob 3\n");

    let (status, rest) = broker.terminate();
    assert!(status.success(), "broker exit: {status:?}; stderr: {rest}");
    assert!(rest.contains("stopping"), "{rest}");
}

#[test]
fn configured_users_are_the_only_logins_accepted() {
    let broker = DevBroker::start(&["--user", "app:s3cret", "--no-ws"]);
    assert_eq!(broker.ws, None);
    let port = broker.stomp.rsplit(':').next().expect("a port").to_owned();
    let good = format!("stomp://app:s3cret@127.0.0.1:{port}");
    let bad = format!("stomp://app:wrong@127.0.0.1:{port}");
    let ok = run(&["send", &good, "/queue/users", "x", "--receipt"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let refused = run(&[
        "send",
        &bad,
        "/queue/users",
        "x",
        "--receipt",
        "--max-reconnects",
        "0",
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let (status, _) = broker.terminate();
    assert!(status.success());
}

#[test]
fn broker_serves_tls_with_a_generated_ca_that_send_and_subscribe_trust() {
    let ca = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dev-broker-ca-{}.pem", std::process::id()));
    let ca_arg = ca.to_str().expect("a UTF-8 path");
    let broker = DevBroker::start(&["--no-ws", "--tls", "127.0.0.1:0", "--tls-ca-out", ca_arg]);
    let tls = broker.tls.clone().expect("a stomp+ssl:// URL");
    assert!(tls.starts_with("stomp+ssl://127.0.0.1:"), "{tls}");
    assert_ne!(tls.replace("stomp+ssl", "stomp"), broker.stomp);
    let pem = std::fs::read_to_string(&ca).expect("the CA file");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    let sent = run(&[
        "send",
        &tls,
        "/queue/tls",
        "job {n}",
        "--count",
        "2",
        "--receipt",
        "--ca",
        ca_arg,
    ]);
    assert!(sent.status.success(), "send: {}", text(&sent.stderr));
    // Over TLS in, over plain TCP out: one broker behind both listeners.
    let got = run(&[
        "subscribe",
        &broker.stomp,
        "/queue/tls",
        "--count",
        "2",
        "--timeout",
        "30",
    ]);
    assert!(got.status.success(), "subscribe: {}", text(&got.stderr));
    assert_eq!(text(&got.stdout), "job 1\njob 2\n");

    // The generated CA is in no system store: without --ca the certificate is refused.
    let refused = run(&[
        "send",
        &tls,
        "/queue/tls",
        "x",
        "--receipt",
        "--max-reconnects",
        "0",
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    // `send` names the certificate, except when the dropped message is reported before the
    // client's give-up reason (a race in `send`'s reporting, seen about one run in six).
    let err = text(&refused.stderr);
    assert!(
        err.contains("certificate") || err.contains("not confirmed"),
        "{err}"
    );
    let _ = std::fs::remove_file(&ca);
    let (status, _) = broker.terminate();
    assert!(status.success());
}

#[test]
fn a_taken_port_names_the_flag_to_change() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    for (flag, args) in [
        (
            "--listen",
            ["broker", "--listen", &addr, "--ws", "127.0.0.1:0"],
        ),
        ("--ws", ["broker", "--listen", "127.0.0.1:0", "--ws", &addr]),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(err.contains(&addr) && err.contains("in use"), "{err}");
        assert!(err.contains(&format!("with {flag} ADDR")), "{err}");
    }
    let out = run(&[
        "broker",
        "--listen",
        "127.0.0.1:0",
        "--no-ws",
        "--tls",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&addr) && err.contains("with --tls ADDR"),
        "{err}"
    );
}

#[test]
fn broker_rejects_bad_arguments() {
    for args in [
        ["broker", "--dialect", "activemq"],
        ["broker", "--user", "nopasscode"],
        ["broker", "--listen", "localhost"],
        // The CA file is only for a TLS listener.
        ["broker", "--tls-ca-out", "ca.pem"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn demo_sends_and_receives_with_a_broker_of_its_own() {
    let out = run(&["demo", "--count", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for n in 1..=5 {
        assert!(
            stdout.contains(&format!("received /queue/stompkit-demo \"hello {n}\"")),
            "{stdout}"
        );
    }
    assert!(stdout.ends_with("done: 5 sent, 5 received\n"), "{stdout}");
}

#[test]
fn demo_uses_the_broker_at_url() {
    let broker = DevBroker::start(&["--no-ws"]);
    let out = run(&[
        "demo",
        "--url",
        &broker.stomp,
        "--destination",
        "/queue/elsewhere",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("connected to {}\n", broker.stomp)),
        "{stdout}"
    );
    assert!(
        stdout.contains("received /queue/elsewhere \"hello 3\""),
        "{stdout}"
    );
    let (status, _) = broker.terminate();
    assert!(status.success());
}

/// The root README's first command, read from the README: it must be the demo through
/// `cargo run`, and the binary that `cargo run` would start must do the job.
#[test]
fn readme_quickstart_first_command_runs_the_demo() {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "..", "README.md"]
        .iter()
        .collect();
    let mut readme = String::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_string(&mut readme))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let first = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|block| block.lines().next())
        .expect("a sh block in the README");
    let args = first
        .strip_prefix("cargo run -q -p stompkit-cli -- ")
        .unwrap_or_else(|| panic!("the first command is not `cargo run` of the CLI: {first}"));
    assert_eq!(args, "demo", "the quickstart is the one-command demo");
    let out = run(&args.split(' ').collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("done: 3 sent, 3 received\n"));
}
