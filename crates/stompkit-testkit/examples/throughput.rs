//! Throughput of the embedded broker, with raw STOMP clients over loopback TCP.
//!
//! `cargo run --release -p stompkit-testkit --example throughput -- [--messages N]
//! [--connections N] [--size BYTES]`
//!
//! Two runs: one producer and one consumer on one queue, then `--connections` connections
//! at once (half producers, half consumers, a queue per pair). Messages are `--size` bytes
//! (200), consumed in `auto` mode. Producers pipeline `SEND`s without receipts and keep at
//! most a window of messages in flight (sent and not yet consumed), so queues stay short and
//! the figure is the rate at which messages go all the way through.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stompkit_testkit::EmbeddedBroker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Messages in flight per producer (sent, not yet consumed).
const WINDOW: u64 = 20_000;
/// `SEND` frames written at once.
const BATCH: u64 = 256;
/// The whole measurement gives up after this long.
const DEADLINE: Duration = Duration::from_secs(300);

struct Options {
    messages: u64,
    connections: u64,
    size: usize,
}

fn options() -> Options {
    let mut o = Options {
        messages: 2_000_000,
        connections: 1000,
        size: 200,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse::<u64>().ok());
        match (pair[0].as_str(), value) {
            ("--messages", Some(v)) => o.messages = v.max(1),
            ("--connections", Some(v)) => o.connections = v.max(2),
            ("--size", Some(v)) => o.size = usize::try_from(v).unwrap_or(200),
            _ => {
                eprintln!("usage: throughput [--messages N] [--connections N] [--size BYTES]");
                std::process::exit(2);
            }
        }
    }
    o
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        tokio::time::timeout(DEADLINE, measure(&o))
            .await
            .expect("the measurement finished in time");
    });
}

async fn measure(o: &Options) {
    println!(
        "| run | connections | messages | size | seconds | msg/s | MB/s (bodies) |\n|---|---|---|---|---|---|---|"
    );
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .start()
        .await
        .expect("broker");
    // A short warm-up run, not reported.
    run(&broker, "warm-up", 1, o.messages / 20, o.size, false).await;
    run(
        &broker,
        "1 producer, 1 consumer",
        1,
        o.messages,
        o.size,
        true,
    )
    .await;
    let pairs = o.connections / 2;
    run(
        &broker,
        "many pairs",
        pairs,
        o.messages / pairs * pairs,
        o.size,
        true,
    )
    .await;
    broker.shutdown().await;
}

/// `pairs` producer/consumer pairs, each on its own queue, sending `total` messages in all.
async fn run(
    broker: &EmbeddedBroker,
    name: &str,
    pairs: u64,
    total: u64,
    size: usize,
    report: bool,
) {
    let per_pair = total / pairs;
    let mut consumers = Vec::new();
    let mut producers = Vec::new();
    let mut pending = Vec::new();
    for p in 0..pairs {
        let queue = format!("/queue/tp-{name}-{p}").replace([' ', ','], "_");
        let received = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(Notify::new());
        let consumer = subscribe(broker, &queue).await;
        let producer = connect(broker).await;
        consumers.push((consumer, received.clone(), progress.clone()));
        producers.push((producer, queue, received, progress));
    }
    let before = broker.stats().await.expect("stats");
    let start = Instant::now();
    for (stream, received, progress) in consumers {
        pending.push(tokio::spawn(consume(stream, per_pair, received, progress)));
    }
    for (stream, queue, received, progress) in producers {
        pending.push(tokio::spawn(produce(
            stream, queue, per_pair, size, received, progress,
        )));
    }
    for task in pending {
        task.await.expect("client task");
    }
    let seconds = start.elapsed().as_secs_f64();
    // The broker's own counters agree: every message was taken and written once.
    let after = broker.stats().await.expect("stats");
    assert_eq!(after.published - before.published, per_pair * pairs);
    assert_eq!(after.delivered - before.delivered, per_pair * pairs);
    if report {
        let total = per_pair * pairs;
        let rate = total as f64 / seconds;
        println!(
            "| {name} | {} | {total} | {size} B | {seconds:.2} | {rate:.0} | {:.1} |",
            pairs * 2,
            rate * size as f64 / 1e6
        );
    }
}

async fn connect(broker: &EmbeddedBroker) -> TcpStream {
    let mut stream = TcpStream::connect(broker.tcp_addr())
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .write_all(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        .await
        .expect("write");
    read_frames(&mut stream, 1).await;
    stream
}

async fn subscribe(broker: &EmbeddedBroker, queue: &str) -> TcpStream {
    let mut stream = connect(broker).await;
    let frame = format!("SUBSCRIBE\nid:0\ndestination:{queue}\nack:auto\nreceipt:sub\n\n\0");
    stream.write_all(frame.as_bytes()).await.expect("write");
    read_frames(&mut stream, 1).await;
    stream
}

/// Reads until `n` frames (NULs) have gone by; frames here carry no NUL in their bodies.
async fn read_frames(stream: &mut TcpStream, n: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = 0;
    while seen < n {
        let k = stream.read(&mut buf).await.expect("read");
        assert!(k > 0, "the broker closed the connection");
        seen += count_nuls(&buf[..k]);
    }
}

fn count_nuls(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == 0).count() as u64
}

async fn consume(mut stream: TcpStream, n: u64, received: Arc<AtomicU64>, progress: Arc<Notify>) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut seen = 0;
    while seen < n {
        let k = stream.read(&mut buf).await.expect("read");
        assert!(k > 0, "the broker closed the consumer");
        seen += count_nuls(&buf[..k]);
        received.store(seen, Ordering::Release);
        progress.notify_one();
    }
}

async fn produce(
    mut stream: TcpStream,
    queue: String,
    n: u64,
    size: usize,
    received: Arc<AtomicU64>,
    progress: Arc<Notify>,
) {
    let mut frame = format!("SEND\ndestination:{queue}\ncontent-length:{size}\n\n").into_bytes();
    frame.extend(std::iter::repeat_n(b'x', size));
    frame.push(0);
    let mut batch = Vec::with_capacity(frame.len() * BATCH as usize);
    let mut sent = 0;
    while sent < n {
        let count = BATCH.min(n - sent);
        while sent + count - received.load(Ordering::Acquire) > WINDOW {
            progress.notified().await;
        }
        batch.clear();
        for _ in 0..count {
            batch.extend_from_slice(&frame);
        }
        stream.write_all(&batch).await.expect("write");
        sent += count;
    }
    // Stay connected until the consumer has everything: closing could race the last SENDs.
    while received.load(Ordering::Acquire) < n {
        progress.notified().await;
    }
}
