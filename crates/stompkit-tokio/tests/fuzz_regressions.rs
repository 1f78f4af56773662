//! Reproducers of bugs the `client_input` fuzz target found (`fuzz/drive/client_input.rs`),
//! each against a scripted broker on loopback. A test stays `#[ignore]`d, with the reason,
//! until its bug is fixed; then it runs with the others.

use std::time::Duration;

use stompkit_tokio::{Client, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Bound on what should take milliseconds: only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(30);

/// Reads until `needle` has been received; false if the client left first.
async fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &[u8]) -> bool {
    let mut buf = [0u8; 1024];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Fuzz input `crash-4acf81e9…` (WebSocket, RabbitMQ 1.0 dialect), reduced to TCP: a broker
/// that answers `DISCONNECT` with bytes that do not decode. The decode error arrives while
/// the session is `Disconnecting`; `Session::handle_input` hands it to `connection_failed`,
/// which (unlike `transport_closed`) does not check for `Disconnecting` and schedules a
/// reconnect. The client connected again, the task's `ending` flag waited for a `Closed`
/// that never came, and `disconnect()` never returned. Fixed: a failure while
/// `Disconnecting` ends the session.
#[tokio::test]
async fn a_decode_error_while_disconnecting_still_ends_the_disconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "stomp://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                if !read_until(&mut stream, &mut seen, b"\0").await {
                    return;
                }
                let _ = stream.write_all(b"CONNECTED\nversion:1.2\n\n\0").await;
                if read_until(&mut stream, &mut seen, b"DISCONNECT").await {
                    // A header line without a colon instead of the RECEIPT.
                    let _ = stream.write_all(b"MESSAGE\nno colon here\n\n\0").await;
                }
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    let client = Client::connect(&url).await.unwrap();
    let disconnected = timeout(LIMIT, client.disconnect()).await;
    assert!(disconnected.is_ok(), "disconnect() did not return");
    assert_eq!(*client.state().borrow(), State::Closed);
}
