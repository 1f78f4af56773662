//! What the end-to-end bench programs (`src/bin/e2e-*.rs`) share: the command line every
//! client of `cargo xtask bench-e2e` takes (the scripts under `benches/e2e/` take the same),
//! the counters, the latency histogram and the JSON summary they print.
//!
//! ```text
//! e2e-<client> URL [--producers P] [--consumers C] [--size BYTES] [--count N]
//!              [--ack auto|client|client-individual] [--receipts] [--destination DEST]
//!              [--in-flight N] [--timeout SECS]
//! ```
//!
//! Every message carries its send time (nanoseconds since the Unix epoch) in the
//! `bench-sent-ns` header; on a `/topic/` every consumer receives every message. CPU time
//! and peak RSS are measured by the harness from outside the process.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The header carrying the send time.
pub(crate) const SENT_HEADER: &str = "bench-sent-ns";

/// `--ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    Auto,
    Client,
    ClientIndividual,
}

impl Ack {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Client => "client",
            Self::ClientIndividual => "client-individual",
        }
    }
}

/// The command line.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    /// As given: `stomp://[login:passcode@]host:port` (or `ws://…` for WebSocket clients).
    pub(crate) url: String,
    pub(crate) producers: usize,
    pub(crate) consumers: usize,
    pub(crate) size: usize,
    pub(crate) count: u64,
    pub(crate) ack: Ack,
    pub(crate) receipts: bool,
    pub(crate) destination: String,
    pub(crate) in_flight: usize,
    pub(crate) timeout: Duration,
}

impl Args {
    /// `host:port` of a `stomp://` URL.
    // Not every client parses the URL itself.
    #[allow(dead_code)]
    pub(crate) fn host_port(&self) -> String {
        let rest = self.url.split_once("://").map_or(&*self.url, |(_, r)| r);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        rest.split('/').next().unwrap_or(rest).to_owned()
    }

    /// Login and passcode of the URL, `guest`/`guest` when it has none.
    #[allow(dead_code)]
    pub(crate) fn credentials(&self) -> (String, String) {
        let rest = self.url.split_once("://").map_or(&*self.url, |(_, r)| r);
        rest.rsplit_once('@')
            .and_then(|(user, _)| user.split_once(':'))
            .map_or_else(
                || ("guest".to_owned(), "guest".to_owned()),
                |(l, p)| (l.to_owned(), p.to_owned()),
            )
    }

    /// Whether every consumer receives every message.
    pub(crate) fn fan_out(&self) -> bool {
        self.destination.starts_with("/topic/") || self.destination.starts_with("/exchange/")
    }

    /// Producer `i`'s part of the count.
    pub(crate) fn share(&self, i: usize) -> u64 {
        let producers = self.producers as u64;
        self.count / producers + u64::from((i as u64) < self.count % producers)
    }

    /// The body every message carries.
    pub(crate) fn body(&self) -> Vec<u8> {
        vec![b'x'; self.size]
    }
}

/// Parses the command line; prints the problem and exits with status 2 when it is wrong.
pub(crate) fn args() -> Args {
    match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    }
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let url = argv.next().ok_or("usage: URL [--producers P] [--consumers C] [--size BYTES] [--count N] [--ack MODE] [--receipts] [--destination DEST] [--in-flight N] [--timeout SECS]")?;
    let mut args = Args {
        url,
        producers: 1,
        consumers: 1,
        size: 200,
        count: 10_000,
        ack: Ack::Auto,
        receipts: false,
        destination: format!("/queue/stompkit-e2e-{}", std::process::id()),
        in_flight: 1024,
        timeout: Duration::from_secs(300),
    };
    while let Some(flag) = argv.next() {
        if flag == "--receipts" {
            args.receipts = true;
            continue;
        }
        let value = argv.next().ok_or(format!("{flag} takes a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--producers" => args.producers = number()?.max(1) as usize,
            "--consumers" => args.consumers = number()? as usize,
            "--size" => args.size = number()? as usize,
            "--count" => args.count = number()?.max(1),
            "--in-flight" => args.in_flight = number()?.max(1) as usize,
            "--timeout" => args.timeout = Duration::from_secs(number()?.max(1)),
            "--destination" => args.destination = value,
            "--ack" => {
                args.ack = match value.as_str() {
                    "auto" => Ack::Auto,
                    "client" => Ack::Client,
                    "client-individual" => Ack::ClientIndividual,
                    _ => return Err(format!("--ack {value}: auto, client or client-individual")),
                }
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What the producers and consumers count together.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) sent: AtomicU64,
    pub(crate) receipted: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Deliveries that complete the run; `u64::MAX` until the producers are done.
    expected: AtomicU64,
    /// Nanoseconds from the start to the last delivery.
    last_delivery: AtomicU64,
    done: watch::Sender<bool>,
    started: Instant,
}

impl Shared {
    /// Starts the clock: call it once every consumer is subscribed.
    pub(crate) fn start() -> Arc<Self> {
        Arc::new(Self {
            sent: AtomicU64::new(0),
            receipted: AtomicU64::new(0),
            received: AtomicU64::new(0),
            expected: AtomicU64::new(u64::MAX),
            last_delivery: AtomicU64::new(0),
            done: watch::channel(false).0,
            started: Instant::now(),
        })
    }

    /// Resolves once every expected delivery arrived.
    // The blocking floor client polls [`is_done`](Self::is_done) instead.
    #[allow(dead_code)]
    pub(crate) fn done(&self) -> watch::Receiver<bool> {
        self.done.subscribe()
    }

    /// Whether every expected delivery arrived (for consumers that cannot await [`done`]).
    ///
    /// [`done`]: Self::done
    // Only the blocking floor client polls.
    #[allow(dead_code)]
    pub(crate) fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// A message arrived with this `bench-sent-ns` value: records its latency in `latency`.
    pub(crate) fn delivered(&self, latency: &mut Histogram, sent_ns: Option<&str>) {
        if let Some(sent) = sent_ns.and_then(|v| v.trim().parse::<u64>().ok()) {
            latency.record(Duration::from_nanos(unix_nanos().saturating_sub(sent)));
        }
        let at = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_delivery.fetch_max(at, Ordering::SeqCst);
        self.received.fetch_add(1, Ordering::SeqCst);
        self.check_done();
    }

    fn check_done(&self) {
        if self.received.load(Ordering::SeqCst) >= self.expected.load(Ordering::SeqCst) {
            self.done.send_replace(true);
        }
    }
}

/// A task's result: its latencies, or why it failed.
pub(crate) type Task = JoinHandle<Result<Histogram, String>>;

/// Waits for the producers, then for the consumers to receive everything (bounded by
/// `--timeout` from the start), and prints the summary as one JSON line.
pub(crate) async fn finish(
    args: &Args,
    client: &str,
    shared: Arc<Shared>,
    producers: Vec<Task>,
    consumers: Vec<Task>,
) -> ExitCode {
    let all = async {
        let mut receipt = Histogram::default();
        for task in producers {
            receipt.merge(&task.await.map_err(|e| e.to_string())??);
        }
        let producers_done = shared.started.elapsed();
        let sent = shared.sent.load(Ordering::SeqCst);
        let fan = if args.fan_out() {
            args.consumers as u64
        } else {
            1
        };
        shared.expected.store(
            if args.consumers == 0 { 0 } else { sent * fan },
            Ordering::SeqCst,
        );
        shared.check_done();
        let mut delivery = Histogram::default();
        for task in consumers {
            delivery.merge(&task.await.map_err(|e| e.to_string())??);
        }
        Ok::<_, String>((receipt, delivery, producers_done))
    };
    let (receipt, delivery, producers_done) = match tokio::time::timeout(args.timeout, all).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(_) => {
            eprintln!(
                "error: --timeout {}: {} sent, {} received",
                args.timeout.as_secs(),
                shared.sent.load(Ordering::SeqCst),
                shared.received.load(Ordering::SeqCst)
            );
            return ExitCode::from(2);
        }
    };
    let elapsed = if args.consumers == 0 {
        producers_done
    } else {
        Duration::from_nanos(shared.last_delivery.load(Ordering::SeqCst))
    };
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let sent = shared.sent.load(Ordering::SeqCst);
    let received = shared.received.load(Ordering::SeqCst);
    let summary = serde_json::json!({
        "client": client,
        "destination": args.destination,
        "producers": args.producers,
        "consumers": args.consumers,
        "size": args.size,
        "ack": args.ack.as_str(),
        "receipts": args.receipts,
        "sent": sent,
        "receipted": shared.receipted.load(Ordering::SeqCst),
        "received": received,
        "expected": shared.expected.load(Ordering::SeqCst),
        "elapsed_s": secs,
        "msgs_per_s": sent as f64 / secs,
        "deliveries_per_s": received as f64 / secs,
        "receipt_latency_ms": args.receipts.then(|| receipt.summary()),
        "delivery_latency_ms": (args.consumers > 0).then(|| delivery.summary()),
    });
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{summary}")
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Sub-buckets per power of two: values are kept within 1/32 (about 3 %).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below this many nanoseconds have a bucket each.
const EXACT: u64 = 2 * SUB as u64;
const BUCKETS: usize = EXACT as usize + (64 - SUB_BITS as usize - 1) * SUB;

/// Latencies in nanoseconds in fixed log-linear buckets (the same scheme as `stompkit
/// bench`'s), the maximum kept exactly.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(value: u64) -> usize {
        if value < EXACT {
            return value as usize;
        }
        let exponent = 63 - value.leading_zeros();
        let mantissa = (value >> (exponent - SUB_BITS)) as usize & (SUB - 1);
        EXACT as usize + (exponent - SUB_BITS - 1) as usize * SUB + mantissa
    }

    fn value(index: usize) -> u64 {
        if index < EXACT as usize {
            return index as u64;
        }
        let exponent = (index - EXACT as usize) / SUB + SUB_BITS as usize + 1;
        let mantissa = ((index - EXACT as usize) % SUB) as u64;
        let width = 1u64 << (exponent - SUB_BITS as usize);
        (1u64 << exponent) + mantissa * width + width / 2
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    fn quantile(&self, q: f64) -> u64 {
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total.max(1));
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(index).min(self.max);
            }
        }
        self.max
    }

    fn summary(&self) -> serde_json::Value {
        let ms = |nanos: u64| nanos as f64 / 1e6;
        if self.total == 0 {
            return serde_json::Value::Null;
        }
        serde_json::json!({
            "p50": ms(self.quantile(0.50)),
            "p90": ms(self.quantile(0.90)),
            "p99": ms(self.quantile(0.99)),
            "max": ms(self.max),
        })
    }
}
