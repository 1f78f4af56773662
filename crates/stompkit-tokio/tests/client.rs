//! The client against scripted peers on loopback: what a real broker will not do on demand
//! (refuse at will, hang, flood). The real-broker suite is `broker-suite/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use stompkit_tokio::session::codec::{Command, Decoder, Frame, Item, Version};
use stompkit_tokio::session::{BackoffConfig, GiveUpReason};
use stompkit_tokio::{AckMode, Client, ClientEvent, Credentials, Error, Message, State, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

/// Reads frames from a client connection.
struct Peer {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl Peer {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            decoder: Decoder::new(Version::V1_2),
            buf: BytesMut::new(),
        }
    }

    /// The next frame (heart-beats skipped); `None` at the end of the stream.
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            while let Some(item) = self.decoder.decode(&mut self.buf).expect("valid STOMP") {
                if let Item::Frame(frame) = item {
                    return Some(frame);
                }
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    async fn say(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Answers CONNECT with CONNECTED and every receipt asked.
    async fn handshake(&mut self) -> Frame {
        let connect = self.frame().await.expect("CONNECT");
        assert_eq!(connect.command(), Command::Connect);
        self.say(b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0")
            .await;
        connect
    }

    async fn receipt_for(&mut self, frame: &Frame) {
        if let Some(r) = frame.header_str("receipt") {
            let answer = format!("RECEIPT\nreceipt-id:{r}\n\n\0");
            self.say(answer.as_bytes()).await;
        }
    }
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "stomp://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    (listener, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_events_reports_an_attempt_refused_at_once() {
    // A port that was just free: each attempt is refused before `start` returns, often.
    let (listener, url) = listener().await;
    drop(listener);
    let (client, mut events) = Client::builder(&url)
        .unwrap()
        .session_with(|c| {
            c.with_backoff(BackoffConfig::constant(Duration::from_millis(1)).max_attempts(Some(1)))
        })
        .start_with_events()
        .expect("valid configuration");
    let mut seen = Vec::new();
    timeout(LIMIT, async {
        loop {
            match events
                .recv()
                .await
                .expect("events until the client is dropped")
            {
                ClientEvent::AttemptFailed { attempt, .. } => seen.push(attempt.number()),
                ClientEvent::GaveUp { .. } => break,
                _ => {}
            }
        }
    })
    .await
    .expect("bounded");
    // The first attempt and the one retry, none missed.
    assert_eq!(seen, [1, 2]);
    assert!(matches!(
        client.wait_connected().await,
        Err(Error::GaveUp { .. })
    ));
}

#[tokio::test]
async fn refused_credentials_give_up_with_the_brokers_message_and_no_retry_storm() {
    let (listener, url) = listener().await;
    let connects = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&connects);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut peer = Peer::new(stream);
            let _ = peer.frame().await;
            peer.say(b"ERROR\nmessage:Access refused for user 'guest'\n\n\0")
                .await;
        }
    });
    let result = timeout(
        LIMIT,
        Client::builder(&url)
            .unwrap()
            .credentials(Credentials::login("guest", "wrong"))
            .connect(),
    )
    .await
    .expect("bounded");
    match result {
        Err(Error::GaveUp { reason, last, .. }) => {
            assert!(
                matches!(reason, GiveUpReason::NonRetryable(_)),
                "{reason:?}"
            );
            let detail = last.expect("the failure").detail;
            assert!(detail.contains("Access refused"), "{detail}");
            assert!(!detail.contains("wrong"), "no passcode in errors");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert_eq!(connects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_broker_that_never_answers_is_left_for_the_next_endpoint() {
    // The first endpoint accepts TCP and says nothing; the second is a working broker.
    let (silent, silent_url) = listener().await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (good, good_url) = listener().await;
    tokio::spawn(async move {
        let (stream, _) = good.accept().await.unwrap();
        let mut peer = Peer::new(stream);
        peer.handshake().await;
        while let Some(frame) = peer.frame().await {
            peer.receipt_for(&frame).await;
        }
    });
    let client = Client::builder(&format!("{silent_url},{good_url}"))
        .unwrap()
        .session_with(|c| {
            c.with_connect_timeout(Duration::from_millis(300))
                .with_backoff(BackoffConfig::constant(Duration::from_millis(50)))
        })
        .start()
        .unwrap();
    let mut events = client.events();
    timeout(LIMIT, client.wait_connected())
        .await
        .expect("bounded")
        .unwrap();
    let mut connected_to = None;
    while let Ok(event) = events.try_recv() {
        if let ClientEvent::Connected { endpoint, .. } = event {
            connected_to = Some(endpoint);
        }
    }
    assert_eq!(connected_to.as_deref(), Some(good_url.as_str()));
    let stats = client.stats().await.unwrap();
    assert_eq!((stats.attempts, stats.connections), (2, 1));
}

#[tokio::test]
async fn a_slow_subscriber_bounds_what_is_read_and_loses_nothing() {
    const MESSAGES: usize = 2000;
    let (listener, url) = listener().await;
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = Peer::new(stream);
        peer.handshake().await;
        let subscribe = peer.frame().await.expect("SUBSCRIBE");
        peer.receipt_for(&subscribe).await;
        let id = subscribe.header_str("id").unwrap().to_owned();
        let body = "x".repeat(1000);
        let (mut reader, mut writer) = peer.stream.into_split();
        // Keep reading (acks, heart-beats) so the client never blocks on us.
        tokio::spawn(async move {
            let mut sink = vec![0; 4096];
            while reader.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        for n in 0..MESSAGES {
            let frame = format!(
                "MESSAGE\nsubscription:{id}\ndestination:/queue/a\nmessage-id:{n}\nack:{n}\n\n{n}:{body}\0"
            );
            if writer.write_all(frame.as_bytes()).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    let client = Client::builder(&url)
        .unwrap()
        .max_buffered_bytes(64 * 1024)
        .connect()
        .await
        .unwrap();
    let mut subscription = client
        .subscribe(Subscribe::new("/queue/a").ack(AckMode::ClientIndividual))
        .await
        .unwrap();
    // Nobody reads: what the client took from the socket must level off near the bound.
    let mut read_so_far = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = client.stats().await.unwrap().bytes_in;
        if now == read_so_far {
            break;
        }
        read_so_far = now;
    }
    assert!(
        read_so_far < 256 * 1024,
        "read {read_so_far} bytes with a 64 KiB bound"
    );
    // Then every message arrives, in order.
    for n in 0..MESSAGES {
        let delivery = timeout(LIMIT, subscription.next())
            .await
            .expect("bounded")
            .expect("delivery");
        let body = String::from_utf8_lossy(delivery.body()).into_owned();
        assert!(
            body.starts_with(&format!("{n}:")),
            "message {n}: {body:.20}"
        );
        delivery.ack().await.unwrap();
    }
}

#[tokio::test]
async fn a_refused_send_is_reported_with_the_brokers_error() {
    let (listener, url) = listener().await;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mut peer = Peer::new(stream);
            peer.handshake().await;
            while let Some(frame) = peer.frame().await {
                if frame.command() == Command::Send {
                    let r = frame.header_str("receipt").unwrap_or_default().to_owned();
                    let error = format!("ERROR\nreceipt-id:{r}\nmessage:no such exchange\n\n\0");
                    peer.say(error.as_bytes()).await;
                    break;
                }
                peer.receipt_for(&frame).await;
            }
        }
    });
    let client = Client::builder(&url)
        .unwrap()
        .session_with(|c| c.with_backoff(BackoffConfig::constant(Duration::from_millis(50))))
        .connect()
        .await
        .unwrap();
    let result = timeout(
        LIMIT,
        client.send_confirmed(Message::new("/exchange/missing", "x")),
    )
    .await
    .expect("bounded");
    match result {
        Err(Error::Broker(frame)) => {
            assert_eq!(frame.header_str("message"), Some("no such exchange"))
        }
        other => panic!("{other:?}"),
    }
    // The client reconnects and carries on.
    timeout(LIMIT, client.wait_connected())
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(*client.state().borrow(), State::Connected);
}

#[tokio::test]
async fn dropping_every_handle_disconnects() {
    let (listener, url) = listener().await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = Peer::new(stream);
        peer.handshake().await;
        let mut commands = Vec::new();
        while let Some(frame) = peer.frame().await {
            commands.push(frame.command());
            peer.receipt_for(&frame).await;
        }
        let _ = done_tx.send(commands);
    });
    let client = Client::connect(&url).await.unwrap();
    drop(client);
    let commands = timeout(LIMIT, done_rx).await.expect("bounded").unwrap();
    assert_eq!(commands, [Command::Disconnect]);
}

#[cfg(feature = "json")]
#[tokio::test]
async fn a_body_that_is_not_the_expected_json_names_its_destination() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)] // read only through Debug
    struct Offer {
        job_id: u64,
    }
    let (listener, url) = listener().await;
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = Peer::new(stream);
        peer.handshake().await;
        let subscribe = peer.frame().await.expect("SUBSCRIBE");
        peer.receipt_for(&subscribe).await;
        let id = subscribe.header_str("id").unwrap().to_owned();
        for body in [r#"{"job_id":7}"#, "not json"] {
            let frame = format!(
                "MESSAGE\nsubscription:{id}\ndestination:/queue/offers\nmessage-id:m\n\n{body}\0"
            );
            peer.say(frame.as_bytes()).await;
        }
        std::future::pending::<()>().await;
    });
    let client = Client::connect(&url).await.unwrap();
    let mut offers = client
        .subscribe(Subscribe::new("/queue/offers"))
        .await
        .unwrap();
    let good = timeout(LIMIT, offers.next())
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(good.json::<Offer>().unwrap().job_id, 7);
    let bad = timeout(LIMIT, offers.next())
        .await
        .expect("bounded")
        .unwrap();
    match bad.json::<Offer>() {
        Err(Error::Json { destination, .. }) => assert_eq!(destination, "/queue/offers"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_unwritten_bound_is_configurable_and_even_one_byte_lets_every_send_through() {
    const SENDS: usize = 2000;
    let (listener, url) = listener().await;
    let peer = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = Peer::new(stream);
        peer.handshake().await;
        let mut bodies = Vec::new();
        while bodies.len() < SENDS {
            let frame = peer.frame().await.expect("a SEND");
            assert_eq!(frame.command(), Command::Send);
            bodies.push(String::from_utf8_lossy(frame.body()).into_owned());
        }
        bodies
    });
    let builder = Client::builder(&url).unwrap().max_unwritten_bytes(1);
    assert_eq!(builder.config().max_unwritten_bytes, 1);
    let client = builder.connect().await.unwrap();
    // Each send waits until the one before it is written, and none waits forever.
    for n in 0..SENDS {
        let message = Message::new("/queue/a", format!("{n}:{}", "x".repeat(500)));
        timeout(LIMIT, client.send(message))
            .await
            .expect("bounded")
            .unwrap();
    }
    let bodies = timeout(LIMIT, peer).await.expect("bounded").unwrap();
    for (n, body) in bodies.iter().enumerate() {
        assert!(body.starts_with(&format!("{n}:")), "send {n}: {body:.20}");
    }
}

#[tokio::test]
async fn a_send_waiting_for_write_room_ends_when_the_client_gives_up() {
    let (listener, url) = listener().await;
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        // No second connection: the client's one attempt after the loss is refused.
        drop(listener);
        let mut peer = Peer::new(stream);
        let connect = peer.frame().await.expect("CONNECT");
        assert_eq!(connect.command(), Command::Connect);
        // Promises a heart-beat every 500 ms, then neither sends one nor reads: the client
        // ends the connection while its writing task is stuck on the full socket.
        peer.say(b"CONNECTED\nversion:1.2\nheart-beat:500,0\n\n\0")
            .await;
        std::future::pending::<()>().await;
    });
    let client = Client::builder(&url)
        .unwrap()
        .heart_beat(Duration::ZERO, Duration::from_millis(500))
        .max_unwritten_bytes(1024)
        .session_with(|s| s.with_backoff(BackoffConfig::default().max_attempts(Some(0))))
        .connect()
        .await
        .unwrap();
    let body = "x".repeat(64 * 1024);
    // Sends go through until the socket's buffers are full; then one waits for room.
    let mut parked = None;
    for _ in 0..10_000 {
        let mut send = Box::pin(client.send(Message::new("/queue/a", body.clone())));
        match timeout(Duration::from_millis(50), &mut send).await {
            Ok(Ok(_)) => {}
            // The heart-beat deadline may pass first: then there is nothing to wait for.
            Ok(Err(e)) => panic!("a send failed before one waited: {e}"),
            Err(_) => {
                parked = Some(send);
                break;
            }
        }
    }
    let parked = parked.expect("a send waits for write room");
    // The silent broker is dropped and the client gives up: the waiting send must end with
    // it (no write of the stuck connection will ever wake it).
    let result = timeout(LIMIT, parked).await.expect("the waiting send ends");
    // Queued after the loss (and reported dropped when the client closes), or refused.
    assert!(matches!(result, Ok(_) | Err(Error::Closed)), "{result:?}");
}
