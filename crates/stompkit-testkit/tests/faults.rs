//! The embedded broker's fault controls, with raw TCP clients on loopback.

use std::time::Duration;

use stompkit_testkit::{ConnectionId, EmbeddedBroker, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A guard against hangs, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

/// A raw STOMP-over-TCP client that collects what it reads.
struct Raw {
    stream: TcpStream,
    seen: Vec<u8>,
}

impl Raw {
    async fn connect_with(broker: &EmbeddedBroker, connect: &[u8]) -> Self {
        let stream = TcpStream::connect(broker.tcp_addr())
            .await
            .expect("connect");
        let mut raw = Self {
            stream,
            seen: Vec::new(),
        };
        raw.write(connect).await;
        raw.until("CONNECTED").await;
        raw
    }

    async fn connect(broker: &EmbeddedBroker) -> Self {
        Self::connect_with(broker, b"CONNECT\naccept-version:1.2\nhost:/\n\n\0").await
    }

    /// The broker's id for this client.
    async fn id(&self, broker: &EmbeddedBroker) -> ConnectionId {
        let local = self.stream.local_addr().expect("local address");
        broker
            .connection_from(local)
            .await
            .expect("broker running")
            .expect("registered once CONNECTED came back")
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads until `text` has been seen `n` times in all that was read, or the peer closes.
    async fn until_n(&mut self, text: &str, n: usize) -> bool {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(PATIENCE, async {
            loop {
                if self.text().matches(text).count() >= n {
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
            self.text()
        );
    }

    async fn until_closed(&mut self) {
        assert!(!self.until_n("\u{0}never\u{0}", 1).await);
    }

    /// Takes in whatever has arrived, without waiting.
    fn take_available(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(k) = self.stream.try_read(&mut buf) {
            if k == 0 {
                break;
            }
            self.seen.extend_from_slice(&buf[..k]);
        }
    }

    /// EOLs read so far: after `CONNECTED` (NUL and the dialect's EOL), heart-beats.
    fn beats(&self) -> usize {
        self.seen.iter().filter(|&&b| b == b'\n').count()
    }

    /// Reads until more than `base` EOLs were seen.
    async fn beats_beyond(&mut self, base: usize) {
        let mut buf = [0u8; 64];
        while self.beats() <= base {
            let k = self.stream.read(&mut buf).await.expect("read");
            assert!(k > 0, "the broker closed the connection");
            self.seen.extend_from_slice(&buf[..k]);
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

fn subscribe(id: &str, destination: &str, ack: &str) -> Vec<u8> {
    format!("SUBSCRIBE\nid:{id}\ndestination:{destination}\nack:{ack}\nreceipt:sub-{id}\n\n\0")
        .into_bytes()
}

#[tokio::test]
async fn a_stalled_connection_moves_nothing_until_resumed() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let mut client = Raw::connect(&broker).await;
    client.write(&subscribe("s", "/queue/stall", "auto")).await;
    client.until("receipt-id:sub-s").await;
    let id = client.id(&broker).await;

    broker.stall(id).await.unwrap();
    broker.publish("/queue/stall", "held back").await.unwrap();
    client
        .write(b"SEND\ndestination:/queue/other\nreceipt:sent\n\nwhile stalled\0")
        .await;
    // A bounded look for bytes that must not come (a broken stall fails it; it cannot
    // fail on a slow machine).
    let early =
        tokio::time::timeout(Duration::from_millis(300), client.until_n("MESSAGE", 1)).await;
    assert!(
        early.is_err(),
        "nothing passes a stall: {:?}",
        client.text()
    );
    let stats = broker.stats().await.unwrap();
    assert_eq!(stats.published, 1, "the client's SEND waits unread");
    assert_eq!(
        stats.delivered, 1,
        "the broker delivered into the held output"
    );

    broker.resume(id).await.unwrap();
    client.until("held back").await;
    client.until("receipt-id:sent").await;
    assert_eq!(broker.held("/queue/other").await.unwrap().len(), 1);
}

#[tokio::test]
async fn killing_connections_ends_a_stalled_one() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let mut client = Raw::connect(&broker).await;
    let id = client.id(&broker).await;
    broker.stall(id).await.unwrap();
    broker.kill_connections().await.unwrap();
    client.until_closed().await;
    assert!(matches!(
        broker.resume(id).await,
        Err(Error::UnknownConnection(gone)) if gone == id
    ));
}

#[tokio::test]
async fn muted_heart_beats_stop_for_one_connection_then_resume() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    // Both want a heart-beat from the broker every second; neither sends any.
    let connect = b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,1000\n\n\0";
    let mut muted = Raw::connect_with(&broker, connect).await;
    let mut beating = Raw::connect_with(&broker, connect).await;
    let base = muted.beats();
    let id = muted.id(&broker).await;
    broker.mute_heartbeats(Some(id), true).await.unwrap();

    // The other connection's second beat comes after the muted one's first would have.
    let beating_base = beating.beats();
    tokio::time::timeout(PATIENCE, beating.beats_beyond(beating_base + 1))
        .await
        .expect("heart-beats in time");
    muted.take_available();
    assert_eq!(muted.beats(), base, "no heart-beat while muted");

    broker.mute_heartbeats(Some(id), false).await.unwrap();
    tokio::time::timeout(PATIENCE, muted.beats_beyond(base))
        .await
        .expect("heart-beats resume");
}

#[tokio::test]
async fn muting_all_heart_beats_covers_later_connections() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    broker.mute_heartbeats(None, true).await.unwrap();
    let connect = b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,1000\n\n\0";
    let mut client = Raw::connect_with(&broker, connect).await;
    let base = client.beats();
    // A bounded look for a beat that must not come (due after one second).
    let early = tokio::time::timeout(Duration::from_millis(1500), client.beats_beyond(base)).await;
    assert!(early.is_err(), "no heart-beat while all are muted");
    broker.mute_heartbeats(None, false).await.unwrap();
    tokio::time::timeout(PATIENCE, client.beats_beyond(base))
        .await
        .expect("heart-beats resume");
}

#[tokio::test]
async fn a_pushed_error_reaches_the_client_and_closes_it() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let mut client = Raw::connect(&broker).await;
    let mut bystander = Raw::connect(&broker).await;
    let id = client.id(&broker).await;
    broker
        .push_error(id, "Injected failure", "the test asked for it\n")
        .await
        .unwrap();
    client.until("ERROR\n").await;
    client.until_closed().await;
    let text = client.text();
    assert!(text.contains("message:Injected failure\n"), "{text}");
    assert!(text.contains("the test asked for it"), "{text}");
    // Others are not affected.
    bystander
        .write(b"SEND\ndestination:/queue/x\nreceipt:ok\n\nhi\0")
        .await;
    bystander.until("receipt-id:ok").await;
    assert!(matches!(
        broker.push_error(id, "again", "").await,
        Err(Error::UnknownConnection(_))
    ));
}

#[tokio::test]
async fn dropped_client_frames_get_no_answer_and_take_no_effect() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let mut client = Raw::connect(&broker).await;
    let id = client.id(&broker).await;
    broker.drop_frames(Some(id), 1).await.unwrap();
    client
        .write(b"SEND\ndestination:/queue/lost\nreceipt:first\n\none\0")
        .await;
    client
        .write(b"SEND\ndestination:/queue/lost\nreceipt:second\n\ntwo\0")
        .await;
    // Receipts come in order: once the second is here, the first will never come.
    client.until("receipt-id:second").await;
    assert!(
        !client.text().contains("receipt-id:first"),
        "{}",
        client.text()
    );
    let held = broker.held("/queue/lost").await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(&held[0].body[..], b"two");
    assert_eq!(broker.stats().await.unwrap().discarded, 1);
}

#[tokio::test]
async fn a_dropped_delivery_is_lost_in_auto_mode_and_redelivered_in_client_mode() {
    let broker = EmbeddedBroker::builder().start().await.unwrap();
    let mut auto = Raw::connect(&broker).await;
    auto.write(&subscribe("a", "/queue/auto", "auto")).await;
    auto.until("receipt-id:sub-a").await;
    broker.drop_deliveries(None, 1).await.unwrap();
    broker.publish("/queue/auto", "first").await.unwrap();
    broker.publish("/queue/auto", "second").await.unwrap();
    auto.until("second").await;
    assert!(!auto.text().contains("first"), "{}", auto.text());
    assert!(broker.held("/queue/auto").await.unwrap().is_empty());

    let mut client = Raw::connect(&broker).await;
    client
        .write(&subscribe("c", "/queue/client", "client"))
        .await;
    client.until("receipt-id:sub-c").await;
    let id = client.id(&broker).await;
    broker.drop_deliveries(Some(id), 1).await.unwrap();
    broker.publish("/queue/client", "unseen").await.unwrap();
    broker.publish("/queue/client", "seen").await.unwrap();
    client.until("seen").await;
    assert!(!client.text().contains("unseen"), "{}", client.text());
    let held = broker.held("/queue/client").await.unwrap();
    assert_eq!(held.len(), 2, "both wait for an ACK: {held:?}");
    // The consumer goes away: what it never saw is delivered again to the next one.
    drop(client);
    let mut next = Raw::connect(&broker).await;
    next.write(&subscribe("n", "/queue/client", "auto")).await;
    next.until("unseen").await;
    assert!(next.text().contains("redelivered:true"), "{}", next.text());
    let stats = broker.stats().await.unwrap();
    assert_eq!(stats.discarded, 2);
}
