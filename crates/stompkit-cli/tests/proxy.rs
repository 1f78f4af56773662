//! `stompkit proxy` in front of the testkit's embedded broker, with raw TCP clients.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use stompkit_testkit::EmbeddedBroker;

const BIN: &str = env!("CARGO_BIN_EXE_stompkit");

/// A guard against hangs, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(20);

/// The proxy process, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `stompkit proxy 127.0.0.1:0 UPSTREAM ARGS...` and returns it with its address,
/// read from the line it prints on stderr.
fn start_proxy(upstream: &str, args: &[&str]) -> (Running, String) {
    let mut child = Command::new(BIN)
        .args(["proxy", "127.0.0.1:0", upstream, "--duration", "60"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("piped");
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stderr)
        .read_line(&mut line)
        .expect("a first line");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("stomp://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    assert!(line.contains("seed"), "{line}");
    (running, addr)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Reads until `text` is in what was read (true) or the peer closes (false).
fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, text: &str) -> bool {
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(text) {
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(k) => seen.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => panic!("no answer in time"),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => panic!("no answer in time"),
            Err(_) => return false,
        }
    }
    true
}

#[test]
fn stomp_passes_through_the_proxy() {
    let rt = runtime();
    let broker = rt
        .block_on(EmbeddedBroker::builder().ws_addr(None).start())
        .unwrap();
    let (_proxy, addr) = start_proxy(&broker.stomp_url(), &["--latency", "10ms"]);
    let mut client = TcpStream::connect(&addr).expect("connect through the proxy");
    client
        .write_all(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0SEND\ndestination:/queue/cli-proxy\nreceipt:r\n\nvia the CLI\0")
        .unwrap();
    let mut seen = Vec::new();
    assert!(read_until(&mut client, &mut seen, "receipt-id:r"));
    let held = rt.block_on(broker.held("/queue/cli-proxy")).unwrap();
    assert_eq!(&held[0].body[..], b"via the CLI");
}

#[test]
fn cut_every_cuts_open_connections() {
    let rt = runtime();
    let broker = rt
        .block_on(EmbeddedBroker::builder().ws_addr(None).start())
        .unwrap();
    let (_proxy, addr) = start_proxy(
        &broker.stomp_url(),
        &["--cut-every", "200ms", "--seed", "7"],
    );
    let mut client = TcpStream::connect(&addr).expect("connect through the proxy");
    client
        .write_all(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        .unwrap();
    let mut seen = Vec::new();
    // The connection ends by a cut (the broker would keep it open for ever).
    assert!(!read_until(&mut client, &mut seen, "\u{0}never\u{0}"));
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        ["127.0.0.1:0", "127.0.0.1:1", "--bandwidth", "10GiB"],
        ["127.0.0.1:0", "127.0.0.1:1", "--cut-every", "soon"],
        ["127.0.0.1:0", "no port here", "--duration", "1"],
    ] {
        let out = Command::new(BIN)
            .arg("proxy")
            .args(args)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}
