//! The fault proxy in front of the embedded broker, with raw TCP clients and one
//! stompkit-tokio client.

use std::time::Duration;

use stompkit_testkit::{Direction, EmbeddedBroker, Fault, FaultSchedule, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A guard against hangs, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(20);

const CONNECT: &[u8] = b"CONNECT\naccept-version:1.2\nhost:/\n\n\0";

async fn broker_and_proxy() -> (EmbeddedBroker, Proxy) {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .start()
        .await
        .unwrap();
    let proxy = Proxy::builder(broker.stomp_url()).start().await.unwrap();
    (broker, proxy)
}

/// A raw STOMP-over-TCP client that collects what it reads.
struct Raw {
    stream: TcpStream,
    seen: Vec<u8>,
}

impl Raw {
    async fn open(proxy: &Proxy) -> Self {
        let stream = TcpStream::connect(proxy.local_addr())
            .await
            .expect("connect");
        Self {
            stream,
            seen: Vec::new(),
        }
    }

    async fn connect(proxy: &Proxy) -> Self {
        let mut raw = Self::open(proxy).await;
        raw.write(CONNECT).await;
        raw.until("CONNECTED").await;
        raw
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads until `text` is in all that was read (true) or the peer closes (false).
    async fn read_until(&mut self, text: &str) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            if String::from_utf8_lossy(&self.seen).contains(text) {
                return true;
            }
            match self.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => self.seen.extend_from_slice(&buf[..k]),
            }
        }
    }

    async fn until(&mut self, text: &str) {
        let found = tokio::time::timeout(PATIENCE, self.read_until(text))
            .await
            .expect("an answer in time");
        assert!(found, "closed before {text:?}: {:?}", self.text());
    }

    async fn until_closed(&mut self) {
        let found = tokio::time::timeout(PATIENCE, self.read_until("\u{0}never\u{0}"))
            .await
            .expect("closed in time");
        assert!(!found);
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

#[tokio::test]
async fn bytes_pass_both_ways_and_are_counted() {
    let (broker, proxy) = broker_and_proxy().await;
    assert!(proxy.url().starts_with("stomp://127.0.0.1:"));
    let mut client = Raw::connect(&proxy).await;
    client
        .write(b"SEND\ndestination:/queue/p\nreceipt:r\n\nthrough the proxy\0")
        .await;
    client.until("receipt-id:r").await;
    assert_eq!(
        &broker.held("/queue/p").await.unwrap()[0].body[..],
        b"through the proxy"
    );
    let stats = proxy.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.active, 1);
    assert!(stats.to_upstream >= CONNECT.len() as u64);
    // Counted as handed to the socket: at least what the client read.
    assert!(stats.to_client as usize >= client.seen.len());
}

#[tokio::test]
async fn cut_all_ends_open_connections_and_lets_new_ones_in() {
    let (_broker, proxy) = broker_and_proxy().await;
    let mut first = Raw::connect(&proxy).await;
    let mut second = Raw::connect(&proxy).await;
    proxy.cut_all();
    first.until_closed().await;
    second.until_closed().await;
    let mut again = Raw::connect(&proxy).await;
    again
        .write(b"SEND\ndestination:/queue/c\nreceipt:r\n\nx\0")
        .await;
    again.until("receipt-id:r").await;
    assert_eq!(proxy.stats().cut, 2);
}

#[tokio::test]
async fn a_stall_holds_bytes_until_resumed() {
    let (broker, proxy) = broker_and_proxy().await;
    let mut client = Raw::connect(&proxy).await;
    proxy.stall(None);
    client
        .write(b"SEND\ndestination:/queue/s\nreceipt:r\n\nstalled\0")
        .await;
    // A bounded look for an answer that must not come (a broken stall fails it; a slow
    // machine cannot).
    let early =
        tokio::time::timeout(Duration::from_millis(300), client.read_until("RECEIPT")).await;
    assert!(
        early.is_err(),
        "nothing passes a stall: {:?}",
        client.text()
    );
    assert!(broker.held("/queue/s").await.unwrap().is_empty());
    proxy.resume();
    client.until("receipt-id:r").await;
    assert_eq!(broker.held("/queue/s").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_timed_stall_ends_by_itself() {
    let (_broker, proxy) = broker_and_proxy().await;
    let mut client = Raw::connect(&proxy).await;
    let stall = Duration::from_millis(200);
    let start = Instant::now();
    proxy.stall(Some(stall));
    client
        .write(b"SEND\ndestination:/queue/t\nreceipt:r\n\nx\0")
        .await;
    client.until("receipt-id:r").await;
    // A lower bound only: it cannot fail because the machine is slow.
    assert!(start.elapsed() >= stall);
}

#[tokio::test]
async fn latency_holds_each_direction_back() {
    let (_broker, proxy) = broker_and_proxy().await;
    let mut client = Raw::connect(&proxy).await;
    let latency = Duration::from_millis(150);
    proxy.latency(Direction::ToUpstream, latency);
    proxy.latency(Direction::ToClient, latency);
    let start = Instant::now();
    client
        .write(b"SEND\ndestination:/queue/l\nreceipt:r\n\nx\0")
        .await;
    client.until("receipt-id:r").await;
    // A lower bound only: both ways, the receipt waited twice.
    assert!(start.elapsed() >= latency * 2, "{:?}", start.elapsed());
}

#[tokio::test]
async fn a_bandwidth_limit_paces_the_bytes() {
    let (broker, proxy) = broker_and_proxy().await;
    let mut client = Raw::connect(&proxy).await;
    client
        .write(b"SUBSCRIBE\nid:0\ndestination:/queue/b\nreceipt:s\n\n\0")
        .await;
    client.until("receipt-id:s").await;
    let rate = 20_000u64;
    proxy.bandwidth(Direction::ToClient, Some(rate));
    let body = "b".repeat(10_000) + "END";
    let start = Instant::now();
    broker.publish("/queue/b", body).await.unwrap();
    client.until("END").await;
    // About 10 KB at 20 KB/s: half a second, less the first slice; a lower bound only.
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    proxy.bandwidth(Direction::ToClient, None);
}

#[tokio::test]
async fn cut_after_n_bytes_cuts_in_the_middle_of_a_frame() {
    let (_broker, proxy) = broker_and_proxy().await;
    proxy.cut_after(Direction::ToClient, 7);
    let mut client = Raw::open(&proxy).await;
    client.write(CONNECT).await;
    client.until_closed().await;
    assert_eq!(
        client.seen, b"CONNECT",
        "the first 7 bytes of CONNECTED, then the cut"
    );
    assert_eq!(proxy.stats().cut, 1);
    // Once only: the next connection is whole.
    let mut next = Raw::connect(&proxy).await;
    next.write(b"DISCONNECT\nreceipt:bye\n\n\0").await;
    next.until("receipt-id:bye").await;
}

#[tokio::test]
async fn cut_after_n_bytes_towards_the_broker_leaves_a_partial_frame() {
    let (broker, proxy) = broker_and_proxy().await;
    let mut client = Raw::connect(&proxy).await;
    let frame = b"SEND\ndestination:/queue/half\n\nnever whole\0";
    proxy.cut_after(Direction::ToUpstream, 20);
    client.write(frame).await;
    client.until_closed().await;
    assert!(broker.held("/queue/half").await.unwrap().is_empty());
    assert_eq!(proxy.stats().to_upstream as usize, CONNECT.len() + 20);
}

#[tokio::test]
async fn refusing_closes_new_connections_and_keeps_open_ones() {
    let (_broker, proxy) = broker_and_proxy().await;
    let mut open = Raw::connect(&proxy).await;
    proxy.refuse(None);
    let mut refused = Raw::open(&proxy).await;
    refused.until_closed().await;
    assert!(refused.seen.is_empty());
    assert_eq!(proxy.stats().refused, 1);
    open.write(b"SEND\ndestination:/queue/r\nreceipt:r\n\nx\0")
        .await;
    open.until("receipt-id:r").await;
    proxy.accept();
    Raw::connect(&proxy).await;
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::builder(port.to_string()).start().await.unwrap();
    let mut client = Raw::open(&proxy).await;
    client.until_closed().await;
    assert_eq!(proxy.stats().refused, 1);
    assert!(Proxy::builder("not an address").start().await.is_err());
}

#[test]
fn a_seeded_schedule_is_the_same_from_the_same_seed() {
    let make = |seed| {
        FaultSchedule::seeded(seed)
            .every(Duration::from_secs(3), Fault::CutAll)
            .every(
                Duration::from_secs(5),
                Fault::Stall(Some(Duration::from_millis(400))),
            )
            .every(
                Duration::from_secs(7),
                Fault::CutAfter(Direction::ToClient, 100),
            )
            .at(Duration::from_secs(2), Fault::Refuse(None))
            .at(Duration::from_secs(1), Fault::Accept)
            .until(Duration::from_secs(600))
    };
    let a: Vec<_> = make(42).iter().collect();
    let b: Vec<_> = make(42).iter().collect();
    let c: Vec<_> = make(43).iter().collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
    assert!(a.iter().all(|(at, _)| *at <= Duration::from_secs(600)));
    assert_eq!(a[0], (Duration::from_secs(1), Fault::Accept));
    let cuts = a.iter().filter(|(_, f)| *f == Fault::CutAll).count();
    // 600 s with gaps of 1.5 to 4.5 s.
    assert!((133..=400).contains(&cuts), "{cuts}");
    for (_, fault) in &a {
        match fault {
            Fault::CutAfter(Direction::ToClient, n) => assert!((1..=100).contains(n)),
            Fault::Stall(Some(d)) => {
                assert!(*d >= Duration::from_millis(200) && *d <= Duration::from_millis(600));
            }
            _ => {}
        }
    }
    // Without an end it goes on, lazily.
    let endless = FaultSchedule::seeded(1).every(Duration::from_millis(1), Fault::CutAll);
    assert_eq!(endless.iter().take(10_000).count(), 10_000);
}

#[tokio::test]
async fn the_proxy_runs_its_schedule_by_itself() {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .start()
        .await
        .unwrap();
    let schedule = FaultSchedule::new().at(Duration::from_millis(50), Fault::Refuse(None));
    let proxy = Proxy::builder(broker.stomp_url())
        .schedule(schedule)
        .start()
        .await
        .unwrap();
    // Connections get through until the refusal is in force, then are closed at once.
    tokio::time::timeout(PATIENCE, async {
        while proxy.stats().refused == 0 {
            let mut client = Raw::open(&proxy).await;
            client.write(CONNECT).await;
            let _ = client.read_until("CONNECTED").await;
        }
    })
    .await
    .expect("the scheduled refusal came");
}
