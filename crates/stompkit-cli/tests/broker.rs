//! `stompkit send` and `stompkit subscribe` against the real RabbitMQ that
//! `cargo xtask broker start` runs (see docs/testing.md).
//!
//! The addresses come from the `STOMPKIT_RABBITMQ_*` environment variables, or else from
//! `target/rabbitmq/env`. Without either the tests fail: they are never skipped.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_stompkit");

/// How long any one run of the binary may take before the test fails (and kills it).
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The broker's environment: the process's `STOMPKIT_RABBITMQ_*`, else `target/rabbitmq/env`.
fn broker_env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let from_process: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("STOMPKIT_RABBITMQ_"))
            .collect();
        if from_process.contains_key("STOMPKIT_RABBITMQ_TCP") {
            return from_process;
        }
        let file = workspace().join("target/rabbitmq/env");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "no RabbitMQ for the broker tests: STOMPKIT_RABBITMQ_TCP is not set and {} \
                 cannot be read ({e}). Start one with `cargo xtask broker start` (as root), \
                 or run `cargo xtask ci`.",
                file.display()
            )
        });
        text.lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    })
}

fn var(name: &str) -> &'static str {
    broker_env()
        .get(name)
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing from the broker environment; rerun `cargo xtask broker start`"
            )
        })
        .as_str()
}

fn tcp_url() -> &'static str {
    var("STOMPKIT_RABBITMQ_TCP")
}

/// A queue name no other test (or earlier run) uses.
fn unique_queue(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "/queue/stompkit-cli-{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn spawn(args: &[&str], stdin: Option<&[u8]>) -> Child {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("STOMP_PASSCODE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stompkit");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    child
}

/// Waits for `child` at most [`RUN_LIMIT`]; a run past it is killed and fails the test.
fn wait(mut child: Child, what: &str) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{what}: still running after {RUN_LIMIT:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &[&str]) -> Output {
    wait(spawn(args, None), &format!("{args:?}"))
}

fn stdout(output: &Output) -> &str {
    std::str::from_utf8(&output.stdout).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> &str {
    std::str::from_utf8(&output.stderr).expect("stderr is UTF-8")
}

fn succeeds(output: &Output) {
    assert!(
        output.status.success(),
        "status {:?}, stderr: {}",
        output.status,
        stderr(output)
    );
}

/// Asserts exit status 2 and returns the last stderr line, which must be the `error: ` line
/// (lines before it report reconnects).
fn fails(output: &Output) -> &str {
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {}, stderr: {}",
        stdout(output),
        stderr(output)
    );
    let last = stderr(output).lines().last().unwrap_or("");
    assert!(last.starts_with("error: "), "{}", stderr(output));
    last
}

fn header<'a>(frame: &'a Value, name: &str) -> Option<&'a str> {
    frame["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h[0] == name)
        .map(|h| h[1].as_str().expect("text value"))
}

#[test]
fn send_with_receipts_then_subscribe_json_gets_them_all_in_order() {
    let queue = unique_queue("roundtrip");
    let output = run(&[
        "send",
        tcp_url(),
        &queue,
        "offer {n} of 5",
        "--login",
        "guest",
        "--passcode",
        "guest",
        "--count",
        "5",
        "--receipt",
        "--content-type",
        "text/plain",
        "--header",
        "x-trace:a:b",
    ]);
    succeeds(&output);
    assert_eq!(stdout(&output), "");

    let output = run(&[
        "subscribe",
        tcp_url(),
        &queue,
        "--login",
        "guest",
        "--passcode",
        "guest",
        "--count",
        "5",
        "--json",
        "--ack",
        "client-individual",
        "--timeout",
        "30",
    ]);
    succeeds(&output);
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 5, "{}", stdout(&output));
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["command"], "MESSAGE");
        assert_eq!(line["body"], format!("offer {} of 5", i + 1));
        assert_eq!(header(line, "destination"), Some(queue.as_str()));
        assert_eq!(header(line, "content-type"), Some("text/plain"));
        assert_eq!(header(line, "x-trace"), Some("a:b"));
    }
}

#[test]
fn body_from_stdin_and_plain_output() {
    let queue = unique_queue("stdin");
    // Credentials from the URL and STOMP_PASSCODE this time.
    let url = tcp_url().replacen("stomp://", "stomp://guest@", 1);
    let mut child = Command::new(BIN)
        .args(["send", &url, &queue, "--receipt"])
        .env("STOMP_PASSCODE", "guest")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(b"from stdin").expect("write");
    drop(pipe);
    succeeds(&wait(child, "send from stdin"));

    let output = run(&[
        "subscribe",
        &url,
        &queue,
        "--passcode",
        "guest",
        "--count",
        "1",
        "--timeout",
        "30",
    ]);
    succeeds(&output);
    assert_eq!(stdout(&output), "from stdin\n");
}

#[test]
fn subscribe_timeout_without_enough_messages_exits_non_zero() {
    let queue = unique_queue("timeout");
    let output = run(&[
        "subscribe",
        tcp_url(),
        &queue,
        "--login",
        "guest",
        "--passcode",
        "guest",
        "--count",
        "1",
        "--timeout",
        "2",
    ]);
    let error = fails(&output);
    assert!(error.contains("--timeout 2"), "{error}");
    assert!(error.contains("0 of --count 1"), "{error}");
    assert_eq!(stdout(&output), "");
}

#[test]
fn subscribe_stats_prints_status_lines_when_not_on_a_terminal() {
    let queue = unique_queue("stats");
    let output = run(&[
        "subscribe",
        tcp_url(),
        &queue,
        "--login",
        "guest",
        "--passcode",
        "guest",
        "--timeout",
        "3",
        "--stats",
        "1",
    ]);
    succeeds(&output);
    let err = stderr(&output);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("stompkit: connected up "))
        .collect();
    assert!(!lines.is_empty(), "{err}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("0 messages") && l.contains("0 reconnects")),
        "{err}"
    );
    assert!(
        !err.contains('\r'),
        "plain lines when stderr is not a terminal"
    );
}

#[test]
fn bad_passcode_exits_2_with_the_brokers_message() {
    let queue = unique_queue("auth");
    let output = run(&[
        "send",
        tcp_url(),
        &queue,
        "x",
        "--login",
        "guest",
        "--passcode",
        "not-the-passcode",
    ]);
    let error = fails(&output);
    // Refused credentials are not retried: the error is the only line.
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(error.contains("refused"), "{error}");
    assert!(error.contains("--passcode"), "{error}");
    // RabbitMQ's own words, e.g. "Access refused for user 'guest'".
    assert!(error.to_lowercase().contains("access refused"), "{error}");
    assert!(!error.contains("not-the-passcode"), "{error}");
}

#[test]
fn a_receipted_send_to_a_missing_exchange_ends_with_the_brokers_message() {
    // `run` fails the test if this takes longer than RUN_LIMIT: no retry loop.
    let output = run(&[
        "send",
        tcp_url(),
        "/exchange/stompkit-cli-missing",
        "x",
        "--login",
        "guest",
        "--passcode",
        "guest",
        "--receipt",
    ]);
    let error = fails(&output);
    // The ERROR ends the command at once: no reconnect was reported before it.
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(error.contains("the broker refused"), "{error}");
    // RabbitMQ's message header and body.
    assert!(error.contains("not_found"), "{error}");
    assert!(error.contains("stompkit-cli-missing"), "{error}");
}

#[test]
fn unknown_scheme_exits_2() {
    let output = run(&["send", "amqp://127.0.0.1:5672", "/queue/a", "x"]);
    let error = fails(&output);
    assert!(error.contains("unknown scheme `amqp`"), "{error}");
    assert_eq!(stderr(&output).lines().count(), 1);
}

#[test]
fn header_without_colon_exits_2() {
    let output = run(&["subscribe", tcp_url(), "/queue/a", "--header", "nocolon"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error: invalid value 'nocolon' for '--header"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_ca_that_did_not_sign_the_brokers_certificate_exits_2_naming_the_certificate() {
    let tls = var("STOMPKIT_RABBITMQ_TLS");
    let wrong =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generate a CA");
    let dir = std::env::temp_dir().join(format!("stompkit-cli-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = dir.join("wrong-ca.pem");
    std::fs::write(&ca, wrong.cert.pem()).expect("write CA");

    let output = run(&[
        "send",
        tls,
        "/queue/stompkit-cli-tls",
        "x",
        "--login",
        "guest",
        "--passcode",
        "guest",
        "--ca",
        ca.to_str().expect("UTF-8 path"),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let error = fails(&output);
    assert!(error.contains("certificate"), "{error}");
    assert!(error.contains("--ca"), "{error}");

    // The right CA connects.
    let output = run(&[
        "send",
        tls,
        &unique_queue("tls"),
        "x",
        "--login",
        "guest",
        "--passcode",
        "guest",
        "--receipt",
        "--ca",
        var("STOMPKIT_RABBITMQ_CA"),
    ]);
    succeeds(&output);
}

#[test]
fn websocket_and_failover_list() {
    // The first endpoint refuses connections (nothing listens on port 1): the client
    // reports it and moves on to the broker.
    let queue = unique_queue("failover");
    let urls = format!("stomp://127.0.0.1:1,{}", var("STOMPKIT_RABBITMQ_WS"));
    let output = run(&[
        "send",
        &urls,
        &queue,
        "over ws",
        "--login",
        "guest",
        "--passcode",
        "guest",
        "--receipt",
    ]);
    succeeds(&output);
    let err = stderr(&output);
    // One line per event, the login shown, never the passcode.
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("stompkit: attempt 1 to stomp://guest@127.0.0.1:1 failed: "),
        "{err}"
    );
    assert!(
        lines[1].starts_with("stompkit: reconnected to ws://guest@127.0.0.1:"),
        "{err}"
    );
    assert!(!err.contains("guest:guest"), "{err}");

    let output = run(&[
        "subscribe",
        tcp_url(),
        &queue,
        "--login",
        "guest",
        "--passcode",
        "guest",
        "--count",
        "1",
        "--timeout",
        "30",
    ]);
    succeeds(&output);
    assert_eq!(stdout(&output), "over ws\n");
}

/// A TCP relay on loopback to the broker whose connections the test can cut, to stand in
/// for a network failure without stopping the broker other tests use.
struct Relay {
    port: u16,
    sockets: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn start(broker: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let sockets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = std::sync::Arc::clone(&sockets);
        // Ends with the test process; each relayed connection ends when it is cut.
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = std::net::TcpStream::connect(&broker) else {
                    continue;
                };
                let mut list = kept.lock().expect("lock");
                for (from, to) in [(&client, &upstream), (&upstream, &client)] {
                    let (mut from, mut to) = (
                        from.try_clone().expect("clone"),
                        to.try_clone().expect("clone"),
                    );
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                list.push(client);
                list.push(upstream);
            }
        });
        Self { port, sockets }
    }

    /// Cuts every connection relayed so far.
    fn cut(&self) {
        for socket in self.sockets.lock().expect("lock").drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn subscribe_rides_through_a_lost_connection() {
    use std::io::BufRead as _;

    let queue = unique_queue("ride");
    let broker = tcp_url()
        .strip_prefix("stomp://")
        .expect("a stomp:// URL")
        .to_owned();
    let relay = Relay::start(broker);
    let send = |body: &str| {
        succeeds(&run(&[
            "send",
            tcp_url(),
            &queue,
            body,
            "--login",
            "guest",
            "--passcode",
            "guest",
            "--receipt",
        ]));
    };

    let mut subscriber = spawn(
        &[
            "subscribe",
            &format!("stomp://guest:guest@127.0.0.1:{}", relay.port),
            &queue,
            "--ack",
            "client-individual",
            "--timeout",
            "50",
        ],
        None,
    );
    let mut lines = std::io::BufReader::new(subscriber.stdout.take().expect("stdout")).lines();
    send("m1");
    send("m2");
    // Blocking reads, bounded by the subscriber's --timeout (its stdout closes then).
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(
            lines
                .next()
                .expect("a line before the subscriber ended")
                .expect("read"),
        );
    }
    relay.cut();
    send("m3");
    send("m4");
    // No --count: a message printed but not yet acknowledged at the cut comes again (at
    // least once), so the lines are read until each message was seen.
    let all = ["m1", "m2", "m3", "m4"].map(str::to_owned);
    while !all.iter().all(|m| seen.contains(m)) {
        seen.push(
            lines
                .next()
                .expect("a line before the subscriber ended")
                .expect("read"),
        );
    }
    assert!(seen.len() <= 6, "{seen:?}");
    // The reconnect was reported: read stderr up to that line (bounded like stdout).
    let mut errors = std::io::BufReader::new(subscriber.stderr.take().expect("stderr")).lines();
    let mut reported = Vec::new();
    while !reported
        .iter()
        .any(|l: &String| l.starts_with("stompkit: reconnected to stomp://guest@127.0.0.1:"))
    {
        reported.push(
            errors
                .next()
                .unwrap_or_else(|| panic!("no reconnect line in {reported:?}"))
                .expect("read"),
        );
    }
    assert!(
        reported.iter().all(|l| l.starts_with("stompkit: ")),
        "{reported:?}"
    );
    let _ = subscriber.kill();
    let _ = subscriber.wait();
}
