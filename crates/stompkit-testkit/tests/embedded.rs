//! The embedded broker over real loopback sockets, with raw TCP and WebSocket clients.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use stompkit_testkit::EmbeddedBroker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A guard against hangs, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

const CONNECT: &[u8] = b"CONNECT\naccept-version:1.2\nhost:/\n\n\0";

/// A raw STOMP-over-TCP client that collects what it reads.
struct Raw {
    stream: TcpStream,
    seen: Vec<u8>,
}

impl Raw {
    async fn connect(broker: &EmbeddedBroker) -> Self {
        let stream = TcpStream::connect(broker.tcp_addr())
            .await
            .expect("connect");
        let mut raw = Self {
            stream,
            seen: Vec::new(),
        };
        raw.write(CONNECT).await;
        raw.until("CONNECTED").await;
        raw
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads until `text` has been seen `n` times in all that was read, or the peer closes.
    async fn until_n(&mut self, text: &str, n: usize) -> bool {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(PATIENCE, async {
            loop {
                let seen = String::from_utf8_lossy(&self.seen);
                if seen.matches(text).count() >= n {
                    return true;
                }
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(k) => self.seen.extend_from_slice(&buf[..k]),
                }
            }
        })
        .await
        .expect("the broker answered in time")
    }

    async fn until(&mut self, text: &str) {
        assert!(
            self.until_n(text, 1).await,
            "closed before {text:?}: {:?}",
            String::from_utf8_lossy(&self.seen)
        );
    }

    /// Reads until the broker closes the connection.
    async fn until_closed(&mut self) {
        assert!(!self.until_n("\u{0}never\u{0}", 1).await);
    }
}

fn send(destination: &str, body: &str) -> Vec<u8> {
    format!("SEND\ndestination:{destination}\n\n{body}\0").into_bytes()
}

fn subscribe(id: &str, destination: &str, ack: &str) -> Vec<u8> {
    format!("SUBSCRIBE\nid:{id}\ndestination:{destination}\nack:{ack}\n\n\0").into_bytes()
}

#[tokio::test]
async fn tcp_clients_exchange_messages_through_a_queue() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    assert!(broker.stomp_url().starts_with("stomp://127.0.0.1:"));
    let mut consumer = Raw::connect(&broker).await;
    consumer.write(&subscribe("s", "/queue/a", "auto")).await;
    consumer
        .write(b"SUBSCRIBE\nid:t\ndestination:/queue/b\nreceipt:ready\n\n\0")
        .await;
    consumer.until("receipt-id:ready").await;
    let mut producer = Raw::connect(&broker).await;
    producer.write(&send("/queue/a", "over tcp")).await;
    consumer.until("over tcp").await;
    producer.write(b"DISCONNECT\nreceipt:bye\n\n\0").await;
    producer.until("receipt-id:bye").await;
    producer.until_closed().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_websocket_client_gets_the_stomp_subprotocol_and_messages() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let url = broker.ws_url().expect("WebSocket listener");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v10.stomp, v11.stomp, v12.stomp".parse().unwrap(),
    );
    let stream = TcpStream::connect(broker.ws_addr().unwrap()).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "v12.stomp");
    ws.send(Message::text(String::from_utf8_lossy(CONNECT).into_owned()))
        .await
        .unwrap();
    ws.send(Message::text(
        "SUBSCRIBE\nid:0\ndestination:/topic/ws\nreceipt:r\n\n\0",
    ))
    .await
    .unwrap();
    let mut seen = String::new();
    let mut tcp = None;
    tokio::time::timeout(PATIENCE, async {
        while let Some(message) = ws.next().await {
            if let Message::Text(text) = message.unwrap() {
                seen.push_str(text.as_str());
            }
            if seen.contains("receipt-id:r") && tcp.is_none() {
                let mut producer = Raw::connect(&broker).await;
                producer.write(&send("/topic/ws", "to the browser")).await;
                tcp = Some(producer);
            }
            if seen.contains("to the browser") {
                break;
            }
        }
    })
    .await
    .expect("message over WebSocket in time");
    assert!(seen.starts_with("CONNECTED\n"), "{seen}");
    assert!(seen.contains("\n\nto the browser\0"), "{seen}");
    broker.shutdown().await;
}

#[tokio::test]
async fn the_websocket_listener_serves_only_the_ws_path() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let addr = broker.ws_addr().unwrap();
    let request = format!("ws://{addr}/other").into_client_request().unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    assert!(
        tokio_tungstenite::client_async(request, stream)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections_each_get_their_message() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let mut clients = Vec::new();
    for i in 0..200 {
        let mut c = Raw::connect(&broker).await;
        c.write(&subscribe("s", &format!("/queue/c{i}"), "auto"))
            .await;
        clients.push(c);
    }
    for i in 0..200 {
        broker
            .publish(&format!("/queue/c{i}"), format!("for {i}."))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let got = c.until_n(&format!("for {i}."), 1).await;
                (got, c)
            })
        })
        .collect();
    let mut alive = Vec::new();
    for task in tasks {
        let (got, c) = task.await.unwrap();
        assert!(got);
        alive.push(c);
    }
    assert_eq!(broker.stats().await.unwrap().connections, 200);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_restart_drops_connections_and_keeps_queued_and_unacknowledged_messages() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let mut c = Raw::connect(&broker).await;
    c.write(&subscribe("s", "/queue/durable", "client-individual"))
        .await;
    c.write(&send("/queue/durable", "unacked")).await;
    c.until("unacked").await;
    broker.publish("/queue/other", "waiting").await.unwrap();
    broker.restart(Duration::from_millis(200)).await.unwrap();
    c.until_closed().await;
    let held = broker.held("/queue/durable").await.unwrap();
    assert_eq!(held.len(), 1);
    assert!(held[0].redelivered);
    assert_eq!(broker.held("/queue/other").await.unwrap().len(), 1);
    // Refused while down: accepted and closed at once.
    let mut refused = TcpStream::connect(broker.tcp_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(PATIENCE, refused.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    // Back up: the message comes again, marked redelivered. Bounded retries while down.
    let mut back = None;
    for _ in 0..200 {
        let mut stream = TcpStream::connect(broker.tcp_addr()).await.unwrap();
        stream.write_all(CONNECT).await.unwrap();
        let mut raw = Raw {
            stream,
            seen: Vec::new(),
        };
        if raw.until_n("CONNECTED", 1).await {
            back = Some(raw);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut back = back.expect("the broker came back");
    back.write(&subscribe("s", "/queue/durable", "auto")).await;
    back.until("redelivered:true").await;
    broker.shutdown().await;
}

#[tokio::test]
async fn kill_connections_closes_every_client() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let mut a = Raw::connect(&broker).await;
    let mut b = Raw::connect(&broker).await;
    broker.kill_connections().await.unwrap();
    a.until_closed().await;
    b.until_closed().await;
    // New connections are served right away.
    Raw::connect(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_malformed_frame_over_tcp_gets_an_error_then_a_close() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let mut c = Raw::connect(&broker).await;
    c.write(b"HELLO\n\n\0").await;
    c.until("ERROR\nmessage:Malformed frame").await;
    c.until_closed().await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_never_upgrades_is_dropped() {
    let broker = EmbeddedBroker::builder()
        .handshake_timeout(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut silent = TcpStream::connect(broker.ws_addr().unwrap()).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(PATIENCE, silent.read(&mut byte))
        .await
        .expect("the broker gives up on the upgrade within the bound");
    // Closed (or reset) without an answer: no HTTP request ever came.
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(broker.connections().await.unwrap().is_empty());
    broker.shutdown().await;
}
