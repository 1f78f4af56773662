//! End-to-end tests of the `stompkit` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_stompkit");

fn capture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "examples",
        "captures",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rabbitmq() -> Vec<u8> {
    capture("rabbitmq-job-offers.stomp")
}

fn activemq() -> Vec<u8> {
    capture("activemq-job-offers.stomp")
}

/// Runs `stompkit args…` with `input` on stdin.
fn run(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stompkit");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // Written from a thread so a large output cannot deadlock against a full stdin pipe. The
    // program may exit before reading everything (on an error), so a write error is fine.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for stompkit");
    writer.join().expect("stdin writer");
    output
}

fn stdout(output: &Output) -> &str {
    std::str::from_utf8(&output.stdout).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> &str {
    std::str::from_utf8(&output.stderr).expect("stderr is UTF-8")
}

/// Asserts success with nothing on stderr and returns stdout.
fn ok_bytes(output: &Output) -> &[u8] {
    assert!(
        output.status.success(),
        "status {:?}, stderr: {}",
        output.status,
        stderr(output)
    );
    assert_eq!(stderr(output), "");
    &output.stdout
}

/// Like [`ok_bytes`], for text output.
fn ok(output: &Output) -> &str {
    std::str::from_utf8(ok_bytes(output)).expect("stdout is UTF-8")
}

/// Asserts exit status 2 and returns stderr, which must be a single `error: ` line.
fn fails(output: &Output) -> &str {
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {}, stderr: {}",
        stdout(output),
        stderr(output)
    );
    let err = stderr(output);
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn commands(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|line| line["command"].as_str().expect("command"))
        .collect()
}

/// The first value of header `name` in a decoded frame line (`[name, value]` form).
fn header<'a>(frame: &'a Value, name: &str) -> Option<&'a str> {
    frame["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h[0] == name)
        .map(|h| h[1].as_str().expect("text value"))
}

// ---------------------------------------------------------------------------------------------
// decode

#[test]
fn decode_rabbitmq_capture() {
    let output = run(&["decode"], &rabbitmq());
    let lines = json_lines(ok(&output));
    assert_eq!(
        commands(&lines),
        ["CONNECTED", "RECEIPT", "MESSAGE", "RECEIPT", "RECEIPT"]
    );
    assert_eq!(header(&lines[0], "server"), Some("RabbitMQ/3.10.8"));
    assert_eq!(header(&lines[0], "version"), Some("1.2"));
    let message = &lines[2];
    assert_eq!(
        header(message, "destination"),
        Some("/queue/transcript-1795304747")
    );
    // Sent as `x-path:C\c\\jobs\\new`: printed unescaped.
    assert_eq!(header(message, "x-path"), Some(r"C:\jobs\new"));
    assert_eq!(header(message, "content-length"), Some("36"));
    assert_eq!(message["body"], r#"{"type":"NEW_JOB_OFFER","jobId":123}"#);
    assert_eq!(header(&lines[4], "receipt-id"), Some("r-ack"));
    assert_eq!(lines[1]["body"], "");
}

#[test]
fn decode_activemq_capture_unescapes_its_ids() {
    let output = run(&["decode"], &activemq());
    let lines = json_lines(ok(&output));
    assert_eq!(
        commands(&lines),
        ["CONNECTED", "RECEIPT", "RECEIPT", "MESSAGE", "RECEIPT"]
    );
    // CONNECTED is never escaped: its raw colons stay.
    assert_eq!(
        header(&lines[0], "session"),
        Some("ID:broker-host-1795301228868-3:9")
    );
    // MESSAGE is: `ack:ID\cbroker-host-1795301228868-4\c52`.
    assert_eq!(
        header(&lines[3], "ack"),
        Some("ID:broker-host-1795301228868-4:52")
    );
    assert_eq!(lines[3]["body"], r#"{"type":"NEW_JOB_OFFER","jobId":123}"#);
}

#[test]
fn decode_in_chunks_prints_the_same_as_whole() {
    for input in [rabbitmq(), activemq()] {
        for extra in [&[][..], &["--heartbeats"][..]] {
            let whole_output = run(&[&["decode"], extra].concat(), &input);
            let whole = ok(&whole_output);
            assert!(whole.lines().count() >= 5, "{whole}");
            for chunk in ["1", "7", "13", "100000"] {
                let output = run(&[&["decode", "--chunk", chunk], extra].concat(), &input);
                assert_eq!(ok(&output), whole, "--chunk {chunk} {extra:?}");
            }
        }
    }
}

#[test]
fn decode_prints_the_issue_example_exactly() {
    let output = run(
        &["decode"],
        b"MESSAGE\ndestination:/queue/a\nx:a\\cb\n\nhello\0",
    );
    assert_eq!(
        ok(&output),
        "{\"command\":\"MESSAGE\",\"headers\":[[\"destination\",\"/queue/a\"],[\"x\",\"a:b\"]],\"body\":\"hello\"}\n"
    );
}

#[test]
fn decode_binary_body_as_base64() {
    let output = run(
        &["decode"],
        b"MESSAGE\ndestination:/q\ncontent-length:4\n\n\xff\0\x01A\0",
    );
    assert_eq!(
        ok(&output),
        "{\"command\":\"MESSAGE\",\"headers\":[[\"destination\",\"/q\"],[\"content-length\",\"4\"]],\"body_base64\":\"/wABQQ==\"}\n"
    );
}

#[test]
fn decode_non_utf8_header_as_base64_object_and_encode_it_back() {
    let wire = b"MESSAGE\nx:\xff\xfe\n\xc3:ok\n\nhi\0";
    let output = run(&["decode"], wire);
    let line = ok(&output);
    assert_eq!(
        line,
        "{\"command\":\"MESSAGE\",\"headers\":[{\"name\":\"x\",\"value_base64\":\"//4=\"},{\"name_base64\":\"ww==\",\"value\":\"ok\"}],\"body\":\"hi\"}\n"
    );
    let back = run(&["encode"], line.as_bytes());
    assert_eq!(ok_bytes(&back), wire);
}

#[test]
fn decode_heartbeats_only_when_asked() {
    let input = b"\nRECEIPT\nreceipt-id:1\n\n\0\r\n\n";
    let frame = "{\"command\":\"RECEIPT\",\"headers\":[[\"receipt-id\",\"1\"]],\"body\":\"\"}\n";
    let heartbeat = "{\"heartbeat\":true}\n";

    let output = run(&["decode"], input);
    assert_eq!(ok(&output), frame);

    let output = run(&["decode", "--heartbeats"], input);
    assert_eq!(
        ok(&output),
        [heartbeat, frame, heartbeat, heartbeat].concat()
    );
}

#[test]
fn decode_truncated_input_prints_earlier_frames_then_fails() {
    let capture = rabbitmq();
    let message_at = capture
        .windows(8)
        .position(|w| w == b"MESSAGE\n")
        .expect("a MESSAGE frame");
    // Cut inside the MESSAGE body.
    let cut = &capture[..message_at + 300];
    for chunk in [None, Some("1")] {
        let mut args = vec!["decode"];
        if let Some(n) = chunk {
            args.extend(["--chunk", n]);
        }
        let output = run(&args, cut);
        let err = fails(&output);
        assert!(
            err.starts_with(&format!(
                "error: byte {message_at}: stream ended inside a frame"
            )),
            "{err}"
        );
        assert_eq!(
            commands(&json_lines(stdout(&output))),
            ["CONNECTED", "RECEIPT"]
        );
    }
}

#[test]
fn decode_protocol_error_names_its_offset() {
    let output = run(&["decode"], b"send\n\n\0");
    let err = fails(&output);
    assert!(
        err.starts_with("error: byte 0: unknown command \"send\""),
        "{err}"
    );
    assert_eq!(stdout(&output), "");

    // After a 23-byte frame, the offset counts from the start of the stream.
    let output = run(&["decode"], b"RECEIPT\nreceipt-id:1\n\n\0send\n\n\0");
    let err = fails(&output);
    assert!(
        err.starts_with("error: byte 23: unknown command \"send\""),
        "{err}"
    );
    assert_eq!(commands(&json_lines(stdout(&output))), ["RECEIPT"]);
}

#[test]
fn decode_limits_are_configurable() {
    let frame = b"MESSAGE\ndestination:/queue/a\n\nhello\0";
    ok(&run(&["decode"], frame));

    let output = run(&["decode", "--max-frame-bytes", "10"], frame);
    assert!(
        fails(&output).contains("exceeds --max-frame-bytes 10; raise --max-frame-bytes"),
        "{}",
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains("max_frame_bytes"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), "");

    let two_headers = b"MESSAGE\na:1\nb:2\n\n\0";
    ok(&run(&["decode", "--max-headers", "2"], two_headers));
    let output = run(&["decode", "--max-headers", "1"], two_headers);
    assert!(
        fails(&output).contains("exceeds --max-headers 1; raise --max-headers"),
        "{}",
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains("max_headers"),
        "{}",
        stderr(&output)
    );

    let output = run(&["decode", "--max-header-line-bytes", "8"], frame);
    assert!(
        fails(&output).contains("exceeds --max-header-line-bytes 8; raise --max-header-line-bytes"),
        "{}",
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains("max_header_line_bytes"),
        "{}",
        stderr(&output)
    );
    ok(&run(&["decode", "--max-header-line-bytes", "20"], frame));
}

#[test]
fn decode_version_selects_escaping_rules() {
    let frame = b"MESSAGE\nx:a\\cb\n\n\0";
    let value = |args: &[&str]| -> String {
        let output = run(args, frame);
        let lines = json_lines(ok(&output));
        header(&lines[0], "x").expect("x").to_owned()
    };
    assert_eq!(value(&["decode", "--stomp-version", "1.0"]), r"a\cb");
    assert_eq!(value(&["decode", "--stomp-version", "1.1"]), "a:b");
    assert_eq!(value(&["decode"]), "a:b");

    // `\r` is an escape in 1.2 only.
    let frame = b"MESSAGE\nx:a\\rb\n\n\0";
    ok(&run(&["decode", "--stomp-version", "1.2"], frame));
    let output = run(&["decode", "--stomp-version", "1.1"], frame);
    assert!(
        fails(&output).starts_with("error: byte 11: undefined escape sequence \\r"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn decode_streams_frames_before_input_ends() {
    let mut child = Command::new(BIN)
        .arg("decode")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stompkit");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    stdin
        .write_all(b"RECEIPT\nreceipt-id:1\n\n\0")
        .expect("write");
    stdin.flush().expect("flush");
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read line");
        tx.send(line).expect("send");
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).expect("read rest");
        rest
    });
    // stdin is still open: the frame must come out anyway.
    let first = rx.recv_timeout(Duration::from_secs(30));
    drop(stdin);
    let rest = reader.join().expect("reader");
    assert!(child.wait().expect("wait").success());
    assert_eq!(
        first.expect("no output while stdin was open"),
        "{\"command\":\"RECEIPT\",\"headers\":[[\"receipt-id\",\"1\"]],\"body\":\"\"}\n"
    );
    assert_eq!(rest, "");
}

#[test]
fn decode_rejects_a_zero_chunk_and_unknown_versions() {
    for args in [
        &["decode", "--chunk", "0"][..],
        &["decode", "--stomp-version", "2.0"],
        &["encode", "--stomp-version", "1"],
    ] {
        let output = run(args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).starts_with("error: invalid value"),
            "{args:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// encode

fn roundtrip_file() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/roundtrip.jsonl");
    std::fs::read_to_string(path).expect("roundtrip.jsonl")
}

#[test]
fn encode_then_decode_round_trips() {
    let json = roundtrip_file();
    // The file holds what this test is about; keep it from losing it.
    for needle in [
        r"C:\\jobs\\new",
        r"\r\n",
        "na:me",
        r"\\c is",
        "\"body_base64\":\"AAEC/wAK\"",
    ] {
        assert!(json.contains(needle), "{needle}");
    }
    for version in ["1.2", "1.1"] {
        let encoded = run(&["encode", "--stomp-version", version], json.as_bytes());
        let wire = ok_bytes(&encoded);
        assert!(
            wire.windows(3).any(|w| w == b"\x02\xff\0"),
            "the NUL body is in"
        );
        let decoded = run(&["decode", "--stomp-version", version], wire);
        assert_eq!(ok(&decoded), json, "STOMP {version}");
    }
}

#[test]
fn encode_escapes_and_refuses_per_frame() {
    let json = roundtrip_file();
    let output = run(&["encode"], json.as_bytes());
    let wire = String::from_utf8_lossy(ok_bytes(&output)).into_owned();
    assert!(
        wire.starts_with(
            "SEND\ndestination:/queue/jobs\nx-path:C\\c\\\\jobs\\\\new\nmulti:line1\\r\\nline2\\nend\\r\nna\\cme:va\\clue\n"
        ),
        "{wire}"
    );
    // CONNECTED headers are written raw.
    assert!(
        wire.contains("CONNECTED\nversion:1.2\nsession:ID:broker-host-1:9\n\n\0"),
        "{wire}"
    );
}

#[test]
fn decode_then_encode_reproduces_the_captures() {
    for capture in [rabbitmq(), activemq()] {
        let decoded = run(&["decode", "--heartbeats"], &capture);
        let encoded = run(&["encode"], ok(&decoded).as_bytes());
        assert_eq!(ok_bytes(&encoded), capture);
    }
}

#[test]
fn encode_adds_content_length_for_nul_bodies_or_when_asked() {
    let nul =
        b"{\"command\":\"SEND\",\"headers\":[[\"destination\",\"/q\"]],\"body\":\"a\\u0000b\"}\n";
    let output = run(&["encode"], nul);
    assert_eq!(
        ok_bytes(&output),
        b"SEND\ndestination:/q\ncontent-length:3\n\na\0b\0"
    );
    // The NUL body is valid UTF-8: it decodes back to a string, with the added header.
    let decoded = run(&["decode"], &output.stdout);
    assert_eq!(
        ok(&decoded),
        "{\"command\":\"SEND\",\"headers\":[[\"destination\",\"/q\"],[\"content-length\",\"3\"]],\"body\":\"a\\u0000b\"}\n"
    );

    let text = b"{\"command\":\"SEND\",\"headers\":[[\"destination\",\"/q\"]],\"body\":\"hi\"}\n";
    let output = run(&["encode"], text);
    assert_eq!(ok_bytes(&output), b"SEND\ndestination:/q\n\nhi\0");
    let output = run(&["encode", "--content-length"], text);
    assert_eq!(
        ok_bytes(&output),
        b"SEND\ndestination:/q\ncontent-length:2\n\nhi\0"
    );
}

#[test]
fn encode_refuses_a_line_feed_in_a_connect_header() {
    let input = concat!(
        "{\"command\":\"SEND\",\"headers\":[[\"destination\",\"/q\"]],\"body\":\"first\"}\n",
        "{\"command\":\"CONNECT\",\"headers\":[[\"accept-version\",\"1.2\"],[\"login\",\"guest\\npasscode:x\"]]}\n",
        "{\"command\":\"DISCONNECT\"}\n",
    );
    let output = run(&["encode"], input.as_bytes());
    let err = fails(&output);
    assert!(
        err.starts_with("error: line 2: cannot encode header \"login\" of a CONNECT frame"),
        "{err}"
    );
    assert!(err.contains("line feed"), "{err}");
    // The frame before it was written; nothing of the refused one or after it.
    assert_eq!(output.stdout, b"SEND\ndestination:/q\n\nfirst\0");
}

#[test]
fn encode_invalid_json_names_the_line() {
    let input = b"{\"heartbeat\":true}\n{\"command\":\"SEND\",\"body\":}\n";
    let output = run(&["encode"], input);
    let err = fails(&output);
    assert!(
        err.starts_with("error: line 2, column 26: invalid JSON: "),
        "{err}"
    );
    assert_eq!(output.stdout, b"\n");

    let output = run(&["encode"], b"{\"command\":\"SEND\",\"colour\":\"red\"}\n");
    assert!(
        fails(&output).contains("unknown field `colour`"),
        "{}",
        stderr(&output)
    );

    let output = run(
        &["encode"],
        b"{\"command\":\"SEND\"}\n{\"command\":\"Send\"}\n",
    );
    assert!(
        fails(&output).starts_with("error: line 2: unknown command \"Send\""),
        "{}",
        stderr(&output)
    );
    assert_eq!(output.stdout, b"SEND\n\n\0");
}

// ---------------------------------------------------------------------------------------------
// help and version

#[test]
fn version_and_help() {
    let output = run(&["--version"], b"");
    assert_eq!(
        ok(&output),
        format!("stompkit {}\n", env!("CARGO_PKG_VERSION"))
    );

    let output = run(&["--help"], b"");
    let help = ok(&output);
    for needle in ["decode", "encode", "Exit status"] {
        assert!(help.contains(needle), "{needle}: {help}");
    }

    let output = run(&["decode", "--help"], b"");
    let help = ok(&output);
    for flag in [
        "--stomp-version",
        "--chunk",
        "--max-frame-bytes",
        "--max-headers",
        "--max-header-line-bytes",
        "--heartbeats",
        "body_base64",
        "[default: 8388608]",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }

    let output = run(&["encode", "--help"], b"");
    let help = ok(&output);
    for flag in ["--stomp-version", "--content-length", "heartbeat"] {
        assert!(help.contains(flag), "{flag}: {help}");
    }

    // No subcommand: usage on stderr, status 2.
    let output = run(&[], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("Usage: stompkit <COMMAND>"));
}

// ---------------------------------------------------------------------------------------------
// send and subscribe: errors found before or without a broker (tests/broker.rs has the rest)

#[test]
fn send_and_subscribe_refuse_bad_arguments() {
    for args in [
        &[
            "send",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "x",
            "--header",
            "nocolon",
        ][..],
        &[
            "send",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "x",
            "--header",
            ":v",
        ],
        &[
            "send",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "x",
            "--count",
            "0",
        ],
        &[
            "subscribe",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "--ack",
            "sometimes",
        ],
        &[
            "subscribe",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "--heart-beat",
            "10",
        ],
        &[
            "subscribe",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "--timeout",
            "0",
        ],
        &[
            "subscribe",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "--max-frame-bytes",
            "0",
        ],
    ] {
        let output = run(args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).starts_with("error: invalid value"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = run(&["send", "stomp://127.0.0.1:1"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("<DEST>"), "{}", stderr(&output));
}

#[test]
fn send_refuses_unknown_schemes_and_bad_urls_in_one_line() {
    let output = run(&["send", "amqp://127.0.0.1", "/queue/a", "x"], b"");
    let err = fails(&output);
    assert!(err.contains("unknown scheme `amqp`"), "{err}");
    let output = run(
        &[
            "subscribe",
            "stomp://127.0.0.1:1,,stomp://127.0.0.1:2",
            "/queue/a",
        ],
        b"",
    );
    let err = fails(&output);
    assert!(err.contains("endpoint 2 of the list is empty"), "{err}");
    let output = run(
        &["send", "stomp://u:secret@127.0.0.1:99999", "/queue/a", "x"],
        b"",
    );
    let err = fails(&output);
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn send_checks_the_ca_file_before_connecting() {
    let output = run(
        &[
            "send",
            "stomp+ssl://127.0.0.1:1",
            "/queue/a",
            "x",
            "--ca",
            "/nonexistent/ca.pem",
        ],
        b"",
    );
    let err = fails(&output);
    assert!(
        err.contains("cannot read --ca /nonexistent/ca.pem"),
        "{err}"
    );

    let not_pem = std::env::temp_dir().join(format!("stompkit-cli-not-pem-{}", std::process::id()));
    std::fs::write(&not_pem, "not a certificate").expect("write");
    let output = run(
        &[
            "send",
            "stomp+ssl://127.0.0.1:1",
            "/queue/a",
            "x",
            "--ca",
            not_pem.to_str().expect("UTF-8 path"),
        ],
        b"",
    );
    let _ = std::fs::remove_file(&not_pem);
    let err = fails(&output);
    assert!(err.contains("holds no PEM certificate"), "{err}");
}

#[test]
fn an_unreachable_broker_fails_after_the_reconnect_budget() {
    // Nothing listens on port 1: each attempt is refused at once.
    let output = run(
        &[
            "send",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "x",
            "--max-reconnects",
            "1",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let lines: Vec<&str> = stderr(&output).lines().collect();
    // The first attempt failed and was retried once; the second ends the command.
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("stompkit: attempt 1 to stomp://127.0.0.1:1 failed: "),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("error: cannot connect: "), "{lines:?}");
    assert!(lines[1].contains("--max-reconnects 1"), "{lines:?}");

    let output = run(
        &[
            "subscribe",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "--max-reconnects",
            "0",
        ],
        b"",
    );
    let err = fails(&output);
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn send_reads_a_bounded_body_from_stdin() {
    let output = run(
        &[
            "send",
            "stomp://127.0.0.1:1",
            "/queue/a",
            "--max-frame-bytes",
            "10",
        ],
        &[b'x'; 11],
    );
    let err = fails(&output);
    assert!(err.contains("over --max-frame-bytes 10"), "{err}");
}

#[test]
fn send_and_subscribe_help_lists_their_flags() {
    let common = [
        "--login",
        "--passcode",
        "STOMP_PASSCODE",
        "--host",
        "--heart-beat",
        "--ca",
        "--max-reconnects",
        "--receipt-timeout",
        "--max-frame-bytes",
        "--header",
    ];
    let output = run(&["send", "--help"], b"");
    let help = ok(&output);
    for flag in common
        .iter()
        .chain(&["--count", "--receipt", "--content-type", "{ n }"])
    {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    let output = run(&["subscribe", "--help"], b"");
    let help = ok(&output);
    for flag in common.iter().chain(&[
        "--ack",
        "client-individual",
        "--count",
        "--timeout",
        "--json",
    ]) {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    // The passcode from the environment is not shown in the help.
    let output = Command::new(BIN)
        .args(["send", "--help"])
        .env("STOMP_PASSCODE", "hunter2-secret")
        .output()
        .expect("run stompkit");
    assert!(!ok(&output).contains("hunter2-secret"));
}
