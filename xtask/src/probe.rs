//! Real STOMP CONNECT probes for `cargo xtask broker status` and the start-up wait: over
//! plain TCP, over TLS (through the `openssl s_client` CLI, verifying the broker's certificate
//! against a CA file and a host name), and over a WebSocket (a minimal RFC 6455 client on a
//! std `TcpStream`).
//!
//! Every probe is bounded in time: sockets carry read and write timeouts, the TLS child
//! process is killed at its deadline, and every buffer has a fixed cap.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a probe may wait for a connection, and for each read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a probe reads of a broker's reply (RabbitMQ's CONNECTED is about 100 bytes).
const MAX_REPLY: usize = 64 * 1024;
/// The credentials the probes log in with: RabbitMQ's stock `guest` user, which the broker
/// accepts from loopback only. Never printed.
const LOGIN: &str = "guest";
const PASSCODE: &str = "guest";

/// The CONNECT frame every probe sends: STOMP 1.2, virtual host `/`, no heart-beats.
fn connect_frame() -> Vec<u8> {
    format!(
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:{LOGIN}\npasscode:{PASSCODE}\nheart-beat:0,0\n\n\0"
    )
    .into_bytes()
}

/// Checks a reply to CONNECT: `Ok` with the broker's `server` header (or `?`) when it is a
/// CONNECTED frame, else an error naming what came back.
fn judge_reply(reply: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(reply);
    // A STOMP peer may send EOLs (heart-beats) before a frame.
    let text = text.trim_start_matches(['\r', '\n']);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let command = lines.next().unwrap_or_default();
    let header = |name: &str| {
        text.split('\n')
            .skip(1)
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim_end_matches('\r').to_owned())
    };
    match command {
        "CONNECTED" => Ok(header("server").unwrap_or_else(|| "?".into())),
        "ERROR" => Err(format!(
            "broker answered ERROR: {}",
            header("message").unwrap_or_default()
        )),
        "" => Err("no reply to CONNECT before the connection closed".into()),
        other => Err(format!(
            "unexpected reply to CONNECT: `{}`",
            other.chars().take(80).collect::<String>()
        )),
    }
}

/// Reads until a NUL (the end of a STOMP frame), EOF, the cap or the timeout.
fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.contains(&0) && reply.len() < MAX_REPLY {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the reply: {e}")),
        }
    }
    Ok(reply)
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("setting timeouts on {addr}: {e}"))?;
    Ok(stream)
}

/// Whether anything accepts TCP connections on `127.0.0.1:port` (used for the Erlang
/// distribution port, which is open exactly while the node's VM runs).
pub(crate) fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// STOMP CONNECT -> CONNECTED over plain TCP to `127.0.0.1:port`. Returns the broker's
/// `server` header.
pub(crate) fn stomp_tcp(port: u16) -> Result<String, String> {
    let mut stream = connect(port)?;
    stream
        .write_all(&connect_frame())
        .map_err(|e| format!("writing CONNECT: {e}"))?;
    let reply = read_frame(&mut stream)?;
    let server = judge_reply(&reply)?;
    // Polite close, so the broker logs no abrupt disconnect; its failure changes nothing.
    let _ = stream.write_all(b"DISCONNECT\n\n\0");
    Ok(server)
}

/// STOMP CONNECT -> CONNECTED over TLS to `127.0.0.1:port`, verifying the certificate
/// chain against `ca` and the name `server_name`, through `openssl s_client`.
pub(crate) fn stomp_tls(port: u16, server_name: &str, ca: &Path) -> Result<String, String> {
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-nocommands", "-verify_return_error"])
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", server_name, "-verify_hostname", server_name])
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `openssl s_client`: {e}"))?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("openssl s_client: pipes missing".into());
    };
    // Readers on threads so that the deadline below holds whatever the child does.
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let out_reader = thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(chunk[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let err_reader = thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr
            .by_ref()
            .take(MAX_REPLY as u64)
            .read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    // s_client writes stdin to the connection once the handshake is done; the pipe stays open
    // (it is dropped below) so that s_client does not quit before the reply arrives.
    let wrote = stdin.write_all(&connect_frame());
    let deadline = Instant::now() + IO_TIMEOUT * 2;
    let mut reply = Vec::new();
    while !reply.contains(&0) && reply.len() < MAX_REPLY {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => reply.extend_from_slice(&chunk),
            Err(_) => break, // deadline, or s_client exited
        }
    }
    drop(stdin);
    let _ = child.kill();
    let status = child.wait();
    let _ = out_reader.join();
    let stderr_text = err_reader.join().unwrap_or_default();
    if reply.is_empty() {
        let why = stderr_text
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .to_owned();
        return Err(match wrote {
            Err(e) => format!("openssl s_client: {why} (writing CONNECT: {e})"),
            Ok(()) => format!(
                "openssl s_client: {why} ({})",
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            ),
        });
    }
    judge_reply(&reply)
}

/// The RFC 6455 example handshake key and the accept value a conforming server derives
/// from it. A probe may reuse one key; checking the fixed answer avoids SHA-1 in xtask.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The STOMP subprotocol the WebSocket probe asks for.
const WS_PROTOCOL: &str = "v12.stomp";

/// A WebSocket upgrade to `ws://127.0.0.1:port{path}` with subprotocol `v12.stomp`, then a
/// CONNECT in one masked text message and a CONNECTED expected back. Returns the broker's
/// `server` header.
pub(crate) fn stomp_ws(port: u16, path: &str) -> Result<String, String> {
    let mut stream = connect(port)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {WS_PROTOCOL}\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("writing the upgrade request: {e}"))?;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err("upgrade response headers over 16 KiB".into());
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => return Err("connection closed during the upgrade".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the upgrade response: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("upgrade refused: `{status}`"));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if header("sec-websocket-accept").as_deref() != Some(WS_ACCEPT) {
        return Err("upgrade response has a wrong Sec-WebSocket-Accept".into());
    }
    let protocol = header("sec-websocket-protocol");
    if protocol.as_deref() != Some(WS_PROTOCOL) {
        return Err(format!(
            "server chose subprotocol {protocol:?}, not {WS_PROTOCOL}"
        ));
    }
    let mut rest = buf[head_end..].to_vec();
    stream
        .write_all(&ws_client_frame(0x1, &connect_frame()))
        .map_err(|e| format!("writing CONNECT: {e}"))?;
    // The broker may send pings before its reply; a few frames at most.
    for _ in 0..8 {
        let (opcode, payload) = ws_read_frame(&mut stream, &mut rest)?;
        match opcode {
            0x1 | 0x2 => {
                let server = judge_reply(&payload)?;
                let _ = stream.write_all(&ws_client_frame(0x8, &[]));
                return Ok(server);
            }
            0x8 => return Err("server closed the WebSocket before CONNECTED".into()),
            _ => {} // ping, pong, continuation of nothing: skip
        }
    }
    Err("no STOMP frame in the first 8 WebSocket frames".into())
}

/// One final client frame: clients must mask (RFC 6455 §5.3); the key needs no secrecy here.
fn ws_client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x8e];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// Reads one server frame, first from `rest` (bytes read past the handshake), then from the
/// stream. Returns its opcode and payload; payloads over [`MAX_REPLY`] are an error.
fn ws_read_frame(stream: &mut TcpStream, rest: &mut Vec<u8>) -> Result<(u8, Vec<u8>), String> {
    let mut take = |n: usize| -> Result<Vec<u8>, String> {
        while rest.len() < n {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) => return Err("connection closed mid-frame".into()),
                Ok(k) => rest.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading a WebSocket frame: {e}")),
            }
        }
        Ok(rest.drain(..n).collect())
    };
    let head = take(2)?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => {
            let b = take(2)?;
            u64::from(u16::from_be_bytes([b[0], b[1]]))
        }
        127 => {
            let b = take(8)?;
            u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        }
        n => u64::from(n),
    };
    if len > MAX_REPLY as u64 {
        return Err(format!(
            "WebSocket frame of {len} bytes, over the probe's cap"
        ));
    }
    let mask = if masked { Some(take(4)?) } else { None };
    let mut payload = take(len as usize)?;
    if let Some(mask) = mask {
        for (b, m) in payload.iter_mut().zip(mask.iter().cycle()) {
            *b ^= m;
        }
    }
    Ok((opcode, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_connected_and_error() {
        assert_eq!(
            judge_reply(b"\nCONNECTED\nserver:RabbitMQ/3.10.8\nversion:1.2\n\n\0"),
            Ok("RabbitMQ/3.10.8".into())
        );
        assert_eq!(
            judge_reply(b"ERROR\nmessage:Access refused\n\nbody\0"),
            Err("broker answered ERROR: Access refused".into())
        );
        assert!(judge_reply(b"").is_err());
    }

    #[test]
    fn masks_client_frames() {
        let frame = ws_client_frame(0x1, b"ab");
        assert_eq!(&frame[..2], &[0x81, 0x82]);
        assert_eq!(frame[6] ^ frame[2], b'a');
        assert_eq!(frame[7] ^ frame[3], b'b');
        let long = ws_client_frame(0x2, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x82, 0x80 | 126, 0x01, 0x2c]);
    }
}
