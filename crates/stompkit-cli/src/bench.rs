//! `stompkit bench`: producers and consumers through a broker, each with its own connection,
//! measured: throughput, latency from send to receipt and to delivery, the process's CPU
//! time and peak RSS.

use std::convert::Infallible;
use std::io::{self, IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::ValueEnum;
use futures::future::{join_all, select_all};
use serde::Serialize;
use stompkit_tokio::session::{Error as SessionError, SubscriptionEnd};
use stompkit_tokio::{AckMode, Client, Confirmation, Error, Message, Subscribe, Subscription};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::Failure;
use crate::connect::{ConnectArgs, NotesAbove, Run, note};
use crate::status::{Aggregator, Flow, Sample, per_second, status_line};

/// The header carrying the send time, in nanoseconds since the Unix epoch, so that a
/// consumer in another process (on the same machine) can measure the delivery latency.
pub(crate) const SENT_HEADER: &str = "bench-sent-ns";

/// The header naming each message: `<run>.<producer>.<n>` (`run` a random number per
/// `stompkit bench`, in hex), so that a consumer counts a message delivered twice (re-sent
/// after a lost receipt, or its ACK lost) once, and tells another run's messages apart.
const SEQ_HEADER: &str = "bench-seq";

/// Most producers or consumers: each is a connection of its own.
const MAX_CLIENTS: usize = 1000;

/// Messages sent when neither --count nor --duration is given.
const DEFAULT_COUNT: u64 = 10_000;

/// How often the plain progress line is printed when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Send messages through a broker and measure
///
/// Starts --consumers connections that subscribe to the destination, then --producers
/// connections that send --count messages in all (or send for --duration seconds), each
/// carrying its send time in a "bench-sent-ns" header. Prints the throughput, the latency
/// from send to receipt (--receipts) and from send to delivery (p50, p90, p99, max), this
/// process's CPU seconds per 100 000 messages and its peak RSS.
///
/// On a /queue/ the consumers share the messages; on a /topic/ (or /exchange/) every
/// consumer receives every message. The run fails if not every message arrived within
/// --timeout.
///
/// --stats adds a status line summing every connection: how many are connected (and in
/// which state the others are), messages sent and received and their rates, reconnects,
/// queued and unconfirmed sends, buffered bytes, and the newest failure, its class and
/// which connection had it.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// Broker URL, or several separated by commas (tried in turn): stomp://, stomp+ssl://,
    /// ws://, wss://, with optional login:passcode@ before the host
    #[arg(value_name = "URL")]
    url: String,

    /// Sending connections
    #[arg(long, value_name = "P", default_value_t = 1, value_parser = clients(1))]
    producers: usize,

    /// Subscribing connections (0: only send)
    #[arg(long, value_name = "C", default_value_t = 1, value_parser = clients(0))]
    consumers: usize,

    /// Body size in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 200)]
    size: usize,

    /// Messages to send in all, shared among the producers [default: 10000]
    #[arg(long, value_name = "N", conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,

    /// Send for this many seconds instead of a count
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    duration: Option<u64>,

    /// How the consumers acknowledge (every message, once received)
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    ack: Ack,

    /// Ask a receipt for every message; each producer keeps up to --in-flight waiting
    #[arg(long)]
    receipts: bool,

    /// Most messages per producer waiting for their receipt (with --receipts)
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = crate::connect::parse_positive)]
    in_flight: usize,

    /// Destination [default: /queue/stompkit-bench-PID, new each run]
    #[arg(long, value_name = "DEST")]
    destination: Option<String>,

    /// A prefetch-count header on each SUBSCRIBE (RabbitMQ: unacknowledged messages per
    /// consumer)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    prefetch: Option<u32>,

    /// Bound on the whole run in seconds, connecting included; longer than --duration
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,

    /// Once every message is sent, end the run (exit status 2, saying how many arrived) when
    /// no delivery has come for SECS seconds, instead of waiting for --timeout for messages
    /// that were lost
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    settle: Option<u64>,

    /// Print the summary as one JSON object
    #[arg(long)]
    json: bool,

    /// A status line on stderr every SECS seconds (default 1) summing all connections:
    /// how many are connected, messages sent and received and per second, reconnects,
    /// queue depth, unconfirmed sends, buffered bytes, the newest failure and its class.
    /// Under the progress bar on a terminal, one line each time otherwise
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1",
          value_parser = clap::value_parser!(u64).range(1..))]
    stats: Option<u64>,

    #[command(flatten)]
    connect: ConnectArgs,
}

fn clients(min: usize) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s| match s.parse::<usize>() {
        Ok(n) if (min..=MAX_CLIENTS).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be from {min} to {MAX_CLIENTS}")),
        Err(e) => Err(e.to_string()),
    }
}

/// `--ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Ack {
    Auto,
    Client,
    ClientIndividual,
}

impl From<Ack> for AckMode {
    fn from(ack: Ack) -> Self {
        match ack {
            Ack::Auto => Self::Auto,
            Ack::Client => Self::Client,
            Ack::ClientIndividual => Self::ClientIndividual,
        }
    }
}

/// How much the producers send.
#[derive(Debug, Clone, Copy)]
enum Amount {
    Count(u64),
    For(Duration),
}

/// Runs `stompkit bench`.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let amount = match (args.count, args.duration) {
        (_, Some(secs)) if secs >= args.timeout => {
            return Err(Failure::Input(format!(
                "--duration {secs} leaves no time to receive within --timeout {}",
                args.timeout
            )));
        }
        (_, Some(secs)) => Amount::For(Duration::from_secs(secs)),
        (Some(count), None) => Amount::Count(count),
        (None, None) => Amount::Count(DEFAULT_COUNT),
    };
    // The body plus the headers must fit in a frame; 1 KiB is ample for the headers.
    let frame_room = args.connect.max_frame_bytes().saturating_sub(1024);
    if args.size > frame_room {
        return Err(Failure::Input(format!(
            "--size {} does not fit in a frame of --max-frame-bytes {} (headers need up to \
             1024 bytes)",
            args.size,
            args.connect.max_frame_bytes()
        )));
    }
    let summary = crate::runtime()?.block_on(bench(args, amount))?;
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &summary).map_err(io::Error::from)?;
        writeln!(out)?;
    } else {
        summary.print(&mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// The counters the producers, consumers and progress display share.
#[derive(Debug)]
struct Shared {
    sent: AtomicU64,
    receipted: AtomicU64,
    received: AtomicU64,
    /// Deliveries of a message already received (not counted in `received`).
    duplicates: AtomicU64,
    /// Which messages were received, by `bench-seq`: one set for all consumers of a queue,
    /// one per consumer of a topic.
    seen: Mutex<Vec<Seen>>,
    /// This run's part of `bench-seq`.
    run: u64,
    /// Deliveries that complete the run; `u64::MAX` until the producers are done.
    expected: AtomicU64,
    /// Nanoseconds from the start to the last delivery.
    last_delivery: AtomicU64,
    /// Set once every expected delivery arrived.
    done: watch::Sender<bool>,
    started: Instant,
}

impl Shared {
    fn check_done(&self) {
        if self.received.load(Ordering::SeqCst) >= self.expected.load(Ordering::SeqCst) {
            self.done.send_replace(true);
        }
    }
}

/// Aborts the tasks it holds when dropped, so that a failed run leaves none behind.
#[derive(Debug)]
struct Tasks<T>(Vec<JoinHandle<T>>);

impl<T> Drop for Tasks<T> {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn bench(args: &Args, amount: Amount) -> Result<Summary, Failure> {
    let limit = Duration::from_secs(args.timeout);
    let destination = args
        .destination
        .clone()
        .unwrap_or_else(|| format!("/queue/stompkit-bench-{}", std::process::id()));
    let fan_out = destination.starts_with("/topic/") || destination.starts_with("/exchange/");
    let connecting = Instant::now();
    let mut runs = Vec::with_capacity(args.consumers + args.producers);
    for _ in 0..args.consumers + args.producers {
        runs.push(args.connect.start(&args.url, true)?);
    }
    let failed = async {
        let (failure, _, _) = select_all(runs.iter().map(|run| Box::pin(run.failed()))).await;
        failure
    };
    // The progress bar and the status line share the terminal, one line each.
    let screen = io::stderr()
        .is_terminal()
        .then(indicatif::MultiProgress::new);
    let _notes = NotesAbove::new(screen.as_ref());
    // Set once sending starts; the status line reads its counters.
    let counters = OnceLock::new();
    let stats = report_status(
        args.stats,
        &runs,
        &counters,
        args.consumers > 0,
        screen.as_ref(),
    );
    let measured = measure(
        args,
        amount,
        &destination,
        fan_out,
        &runs,
        connecting,
        Screen {
            multi: screen.as_ref(),
            counters: &counters,
        },
    );
    let result = tokio::select! {
        biased;
        failure = failed => Err(failure),
        result = tokio::time::timeout(limit, measured) => {
            result.unwrap_or_else(|_| Err(Failure::Input(timed_out(args, fan_out, counters.get()))))
        }
        never = stats => match never {},
    };
    let late = join_all(runs.into_iter().map(Run::finish)).await;
    let summary = result?;
    // An ERROR in answer to the last frames still fails the run.
    late.into_iter().flatten().next().map_or(Ok(summary), Err)
}

/// `--settle`: resolves once no delivery has come for `secs` seconds (never without it).
async fn settle(secs: Option<u64>, shared: &Shared) -> Failure {
    let Some(secs) = secs else {
        return std::future::pending().await;
    };
    let quiet = Duration::from_secs(secs);
    let mut seen = shared.received.load(Ordering::SeqCst);
    let mut since = Instant::now();
    loop {
        tokio::time::sleep((quiet / 10).max(Duration::from_millis(10))).await;
        let now = shared.received.load(Ordering::SeqCst);
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet {
            return Failure::Input(format!(
                "--settle {secs}: no new message for {secs} s after every one was sent: \
                 {now} of {} received",
                shared.expected.load(Ordering::SeqCst)
            ));
        }
    }
}

/// Why the run did not end within `--timeout`, with what got through.
fn timed_out(args: &Args, fan_out: bool, counters: Option<&Arc<Shared>>) -> String {
    let mut text = format!("--timeout {}: the run did not end in time", args.timeout);
    let Some(shared) = counters else {
        return text + " (still connecting)";
    };
    let sent = shared.sent.load(Ordering::SeqCst);
    let received = shared.received.load(Ordering::SeqCst);
    text += &format!(" ({sent} sent, {received} received");
    match shared.expected.load(Ordering::SeqCst) {
        u64::MAX => text += ", still sending)",
        expected => {
            text += &format!(" of {expected} expected)");
            if received < expected && (!args.receipts || args.ack == Ack::Auto) {
                text += "; a message in flight when a connection drops is lost without \
                         --receipts or with --ack auto, and the run waits for it until --timeout";
            } else if received < expected && fan_out {
                text += "; a topic's subscriber misses what is published while it reconnects, \
                         and the run waits for it until --timeout";
            }
        }
    }
    text
}

/// What `measure` shares with the status line.
#[derive(Debug, Clone, Copy)]
struct Screen<'a> {
    /// The terminal's bars; `None` when stderr is not a terminal.
    multi: Option<&'a indicatif::MultiProgress>,
    /// Where the counters go once sending starts.
    counters: &'a OnceLock<Arc<Shared>>,
}

async fn measure(
    args: &Args,
    amount: Amount,
    destination: &str,
    fan_out: bool,
    runs: &[Run],
    connecting: Instant,
    screen: Screen<'_>,
) -> Result<Summary, Failure> {
    let fail = |e: &Error| Failure::Input(runs[0].error_message(e));
    for run in runs {
        run.client.wait_connected().await.map_err(|e| fail(&e))?;
    }
    let connect_time = connecting.elapsed();
    let (consumer_runs, producer_runs) = runs.split_at(args.consumers);
    let mut subscriptions = Vec::with_capacity(consumer_runs.len());
    for run in consumer_runs {
        let mut request = Subscribe::new(destination.to_owned())
            .ack(args.ack.into())
            .receipt();
        if let Some(prefetch) = args.prefetch {
            request = request.header("prefetch-count", prefetch.to_string());
        }
        subscriptions.push(run.client.subscribe(request).await.map_err(|e| fail(&e))?);
    }
    let cpu_before = cpu_seconds();
    let (done, done_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        receipted: AtomicU64::new(0),
        received: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        run: run_id(),
        seen: Mutex::new(
            std::iter::repeat_with(Seen::default)
                .take(if fan_out { args.consumers } else { 1 })
                .collect(),
        ),
        expected: AtomicU64::new(u64::MAX),
        last_delivery: AtomicU64::new(0),
        done,
        started: Instant::now(),
    });
    let _ = screen.counters.set(Arc::clone(&shared));
    let mut consumers = Tasks(Vec::new());
    for (i, subscription) in subscriptions.into_iter().enumerate() {
        consumers.0.push(tokio::spawn(consume(
            subscription,
            args.ack,
            fan_out,
            if fan_out { i } else { 0 },
            Arc::clone(&shared),
            done_rx.clone(),
        )));
    }
    let body = Bytes::from(vec![b'x'; args.size]);
    let mut producers = Tasks(Vec::new());
    let total = match amount {
        Amount::Count(n) => Some(n),
        Amount::For(_) => None,
    };
    let deadline = match amount {
        Amount::Count(_) => None,
        Amount::For(duration) => Some(shared.started + duration),
    };
    for (i, run) in producer_runs.iter().enumerate() {
        let share = total.map(|n| share(n, producer_runs.len(), i));
        producers.0.push(tokio::spawn(produce(
            run.client.clone(),
            Producer {
                index: i,
                destination: destination.to_owned(),
                body: body.clone(),
                count: share,
                deadline,
                receipts: args.receipts.then_some(args.in_flight),
            },
            Arc::clone(&shared),
        )));
    }
    let progress = Progress::new(
        total.map(|n| {
            if fan_out {
                n * args.consumers as u64
            } else {
                n
            }
        }),
        args.consumers > 0,
        screen.multi,
    );
    let work = async {
        let mut receipt_latency = Histogram::default();
        for task in &mut producers.0 {
            receipt_latency.merge(&joined(task.await).map_err(|e| fail(&e))?);
        }
        let producers_done = shared.started.elapsed();
        let sent = shared.sent.load(Ordering::SeqCst);
        let fan = if fan_out { args.consumers as u64 } else { 1 };
        shared.expected.store(
            if args.consumers == 0 { 0 } else { sent * fan },
            Ordering::SeqCst,
        );
        shared.check_done();
        let mut delivery_latency = Histogram::default();
        let joined_all = async {
            for task in &mut consumers.0 {
                delivery_latency.merge(&joined(task.await).map_err(|e| fail(&e))?);
            }
            Ok::<_, Failure>(())
        };
        tokio::select! {
            result = joined_all => result?,
            silent = settle(args.settle, &shared) => return Err(silent),
        }
        Ok::<_, Failure>((receipt_latency, delivery_latency, producers_done))
    };
    let (receipt_latency, delivery_latency, producers_done) = tokio::select! {
        result = work => result?,
        never = progress.run(&shared) => match never {},
    };
    progress.finish();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let elapsed = if args.consumers == 0 {
        producers_done
    } else {
        Duration::from_nanos(shared.last_delivery.load(Ordering::SeqCst))
    };
    let sent = shared.sent.load(Ordering::SeqCst);
    let received = shared.received.load(Ordering::SeqCst);
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let moved = if args.consumers == 0 { sent } else { received };
    Ok(Summary {
        client: "stompkit",
        destination: destination.to_owned(),
        producers: args.producers,
        consumers: args.consumers,
        size: args.size,
        ack: args.ack,
        receipts: args.receipts,
        sent,
        receipted: shared.receipted.load(Ordering::SeqCst),
        received,
        duplicates: shared.duplicates.load(Ordering::SeqCst),
        expected: shared.expected.load(Ordering::SeqCst),
        elapsed_s: round(secs, 3),
        msgs_per_s: round(sent as f64 / secs, 1),
        deliveries_per_s: round(received as f64 / secs, 1),
        mib_per_s: round(moved as f64 * args.size as f64 / secs / MIB, 3),
        receipt_latency_ms: args.receipts.then(|| receipt_latency.summary()),
        delivery_latency_ms: (args.consumers > 0).then(|| delivery_latency.summary()),
        connect_ms: round(connect_time.as_secs_f64() * 1000.0, 1),
        cpu_s: cpu.map(|s| round(s, 3)),
        cpu_s_per_100k: cpu.map(|s| round(s * 100_000.0 / sent.max(1) as f64, 3)),
        peak_rss_kib: peak_rss_kib(),
    })
}

/// The result of a task, a panic in it re-raised.
fn joined<T>(result: Result<Result<T, Error>, tokio::task::JoinError>) -> Result<T, Error> {
    match result {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::Closed),
    }
}

/// Producer `i`'s part of `n` messages among `producers`.
fn share(n: u64, producers: usize, i: usize) -> u64 {
    let producers = producers as u64;
    n / producers + u64::from((i as u64) < n % producers)
}

/// What one producer sends.
#[derive(Debug)]
struct Producer {
    /// Its place among the producers, the first part of `bench-seq`.
    index: usize,
    destination: String,
    body: Bytes,
    count: Option<u64>,
    deadline: Option<Instant>,
    /// With receipts: most waiting at once.
    receipts: Option<usize>,
}

async fn produce(
    client: Client,
    producer: Producer,
    shared: Arc<Shared>,
) -> Result<Histogram, Error> {
    let (confirming, mut to_confirm) =
        mpsc::channel::<(Instant, Confirmation)>(producer.receipts.unwrap_or(1));
    let collector = {
        let shared = Arc::clone(&shared);
        // Receipts come in the order the messages were sent: waiting for them in turn
        // times each one when it arrives (or just after one that came before it).
        tokio::spawn(async move {
            let mut latency = Histogram::default();
            while let Some((sent_at, confirmation)) = to_confirm.recv().await {
                confirmation.confirmed().await?;
                latency.record(sent_at.elapsed());
                shared.receipted.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, Error>(latency)
        })
    };
    let collector = Tasks(vec![collector]);
    let mut sent = 0;
    while producer.count.is_none_or(|n| sent < n)
        && producer.deadline.is_none_or(|at| Instant::now() < at)
    {
        let message = Message::new(producer.destination.clone(), producer.body.clone())
            .header(SENT_HEADER, unix_nanos().to_string())
            .header(
                SEQ_HEADER,
                format!("{:016x}.{}.{sent}", shared.run, producer.index),
            );
        if producer.receipts.is_some() {
            let sent_at = Instant::now();
            let confirmation = with_room(&client, message, |m| client.send_with_receipt(m)).await?;
            if confirming.send((sent_at, confirmation)).await.is_err() {
                // The collector stopped at a failed receipt; its error says why.
                break;
            }
        } else {
            // Taken on this task; waits only while the socket is behind.
            with_room(&client, message, |m| client.send(m)).await?;
        }
        sent += 1;
        shared.sent.fetch_add(1, Ordering::Relaxed);
    }
    drop(confirming);
    let mut collector = collector;
    let task = collector.0.pop().expect("the collector task");
    joined(task.await)
}

/// A random number naming this run in `bench-seq`.
fn run_id() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(unix_nanos());
    hasher.finish()
}

/// The producer and number of a `bench-seq` value written by the run `run`.
fn parse_seq(value: &str, run: u64) -> Option<(usize, u64)> {
    let mut parts = value.split('.');
    let ours = u64::from_str_radix(parts.next()?, 16).ok()? == run;
    let producer = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    (ours && parts.next().is_none()).then_some((producer, n))
}

/// The messages of each producer received so far: a bit per message, so a few hundred KiB
/// for millions of messages.
#[derive(Debug, Default)]
struct Seen {
    by_producer: Vec<Vec<u64>>,
}

impl Seen {
    /// Marks message `n` of `producer`; whether it was new. A `bench-seq` no producer of
    /// this run could have written (another program's message) counts, and is not kept.
    fn insert(&mut self, producer: usize, n: u64) -> bool {
        if producer >= MAX_CLIENTS {
            return true;
        }
        if self.by_producer.len() <= producer {
            self.by_producer.resize_with(producer + 1, Vec::new);
        }
        let bits = &mut self.by_producer[producer];
        let Ok(word) = usize::try_from(n / 64) else {
            return true;
        };
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let bit = 1u64 << (n % 64);
        let new = bits[word] & bit == 0;
        bits[word] |= bit;
        new
    }
}

/// How long a producer whose outbound queue is full waits before it tries again, once
/// connected.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(10);

/// Sends with `send`. While the outbound queue is full (the connection dropped and the
/// queue filled up while the client reconnects, or receipted sends beyond the session's
/// send window filled it), waits for the client to be connected and tries again every
/// [`QUEUE_FULL_RETRY`]: a producer held back, not a failed run. Other errors end the run.
async fn with_room<T, F>(
    client: &Client,
    mut message: Message,
    send: impl Fn(Message) -> F,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    loop {
        match send(message).await {
            Err(Error::Send(failed)) if matches!(failed.error(), SessionError::QueueFull) => {
                message = failed.into_parts().1;
                client.wait_connected().await?;
                // Connected again, the queue drains as the socket and the window allow.
                tokio::time::sleep(QUEUE_FULL_RETRY).await;
            }
            other => return other,
        }
    }
}

async fn consume(
    mut subscription: Subscription,
    ack: Ack,
    fan_out: bool,
    seen_by: usize,
    shared: Arc<Shared>,
    mut done: watch::Receiver<bool>,
) -> Result<Histogram, Error> {
    let mut latency = Histogram::default();
    loop {
        let delivery = tokio::select! {
            biased;
            _ = done.wait_for(|done| *done) => break,
            delivery = subscription.next_delivery() => delivery,
        };
        let Some(delivery) = delivery else {
            return Err(match subscription.end_reason() {
                Some(SubscriptionEnd::Refused(frame)) => Error::Broker(frame),
                _ => Error::Closed,
            });
        };
        let took = delivery
            .header(SENT_HEADER)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|sent| Duration::from_nanos(unix_nanos().saturating_sub(sent)));
        if ack != Ack::Auto {
            match delivery.ack().await {
                Ok(()) => {}
                // It came on a connection that is gone. A queue delivers it again, and that
                // delivery counts; a topic's subscription went with the connection, so this
                // one counts.
                Err(Error::Session(SessionError::NotConnected | SessionError::StaleHandle))
                    if !fan_out =>
                {
                    continue;
                }
                Err(Error::Session(SessionError::NotConnected | SessionError::StaleHandle)) => {}
                Err(e) => return Err(e),
            }
        }
        // Another program's message, or another run's, counts as it always did.
        let first = delivery
            .header(SEQ_HEADER)
            .and_then(|v| parse_seq(v, shared.run))
            .is_none_or(|(producer, n)| {
                let mut seen = shared.seen.lock().unwrap_or_else(PoisonError::into_inner);
                seen[seen_by].insert(producer, n)
            });
        if !first {
            shared.duplicates.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if let Some(took) = took {
            latency.record(took);
        }
        let at = u64::try_from(shared.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        shared.last_delivery.fetch_max(at, Ordering::SeqCst);
        shared.received.fetch_add(1, Ordering::SeqCst);
        shared.check_done();
    }
    Ok(latency)
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------------
// Progress.

/// A bar on a terminal, a line every few seconds otherwise.
#[derive(Debug)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// Whether deliveries (rather than sends) are counted.
    deliveries: bool,
}

impl Progress {
    /// A bar in `screen` (above the status line) if there is one.
    fn new(
        total: Option<u64>,
        deliveries: bool,
        screen: Option<&indicatif::MultiProgress>,
    ) -> Self {
        let bar = screen.map(|screen| {
            let bar = match total {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = if total.is_some() {
                "{elapsed_precise} [{bar:40}] {pos}/{len} {msg}"
            } else {
                "{elapsed_precise} {spinner} {pos} {msg}"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            screen.insert(0, bar)
        });
        Self { bar, deliveries }
    }

    /// Updates the display until dropped (runs as long as the work does).
    async fn run(&self, shared: &Shared) -> Infallible {
        let every = if self.bar.is_some() {
            Duration::from_millis(200)
        } else {
            PLAIN_PROGRESS_EVERY
        };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let sent = shared.sent.load(Ordering::Relaxed);
            let received = shared.received.load(Ordering::Relaxed);
            let secs = shared.started.elapsed().as_secs_f64();
            let counted = if self.deliveries { received } else { sent };
            let rate = counted as f64 / secs.max(f64::EPSILON);
            match &self.bar {
                Some(bar) => {
                    bar.set_position(counted);
                    bar.set_message(format!("{rate:.0} msg/s, {sent} sent"));
                }
                None => note(&format!(
                    "stompkit bench: {secs:.0} s: {sent} sent, {} receipted, {received} received",
                    shared.receipted.load(Ordering::Relaxed)
                )),
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `--stats`: every `secs` seconds one line summing the status of every connection, in
/// `screen` under the progress bar or else a line of its own on stderr. Never returns.
async fn report_status(
    secs: Option<u64>,
    runs: &[Run],
    counters: &OnceLock<Arc<Shared>>,
    deliveries: bool,
    screen: Option<&indicatif::MultiProgress>,
) -> Infallible {
    let Some(secs) = secs else {
        return std::future::pending().await;
    };
    let line = screen.map(|screen| {
        // Cleared at the end like the bar: the summary follows. Not cut to the terminal's
        // width (the failure comes last); indicatif redraws wrapped lines whole.
        let line = screen.add(
            indicatif::ProgressBar::new_spinner().with_finish(indicatif::ProgressFinish::AndClear),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg}") {
            line.set_style(style);
        }
        line
    });
    let every = Duration::from_secs(secs);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let started = Instant::now();
    let mut aggregator = Aggregator::default();
    let (mut sent_before, mut received_before, mut before) = (0, 0, Instant::now());
    loop {
        ticks.tick().await;
        let statuses = join_all(runs.iter().map(|run| run.client.status())).await;
        let samples: Vec<Option<Sample>> = statuses
            .iter()
            .map(|status| status.as_ref().ok().map(Sample::from))
            .collect();
        let connections = aggregator.collect(&samples);
        let (sent, received) = counters.get().map_or((0, 0), |shared| {
            (
                shared.sent.load(Ordering::Relaxed),
                shared.received.load(Ordering::Relaxed),
            )
        });
        // Measured, not nominal: asking many connections for their status takes a while.
        let over = before.elapsed();
        before = Instant::now();
        let mut flows = vec![Flow {
            count: sent,
            what: "sent",
            per_second: per_second(sent.saturating_sub(sent_before), over),
        }];
        if deliveries {
            flows.push(Flow {
                count: received,
                what: "received",
                per_second: per_second(received.saturating_sub(received_before), over),
            });
        }
        (sent_before, received_before) = (sent, received);
        let text = status_line("stompkit bench", &connections, started.elapsed(), &flows);
        match &line {
            Some(line) => line.set_message(text),
            None => note(&text),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements.

const MIB: f64 = 1024.0 * 1024.0;

/// Sub-buckets per power of two: values are kept within 1/32 (about 3 %).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below this many nanoseconds have a bucket each.
const EXACT: u64 = 2 * SUB as u64;
const BUCKETS: usize = EXACT as usize + (64 - SUB_BITS as usize - 1) * SUB;

/// Latencies in nanoseconds, in a fixed number of log-linear buckets (memory does not grow
/// with the count), the maximum kept exactly.
#[derive(Debug, Clone)]
struct Histogram {
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

    /// The middle of bucket `index`.
    fn value(index: usize) -> u64 {
        if index < EXACT as usize {
            return index as u64;
        }
        let exponent = (index - EXACT as usize) / SUB + SUB_BITS as usize + 1;
        let mantissa = ((index - EXACT as usize) % SUB) as u64;
        let width = 1u64 << (exponent - SUB_BITS as usize);
        (1u64 << exponent) + mantissa * width + width / 2
    }

    fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value below which a fraction `q` of the recorded ones are (nearest rank).
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

    fn summary(&self) -> Option<Latency> {
        let ms = |nanos: u64| round(nanos as f64 / 1e6, 3);
        (self.total > 0).then(|| Latency {
            p50: ms(self.quantile(0.50)),
            p90: ms(self.quantile(0.90)),
            p99: ms(self.quantile(0.99)),
            max: ms(self.max),
        })
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

/// CPU seconds (user and system) this process used so far (`getrusage`; `None` where there
/// is none).
fn cpu_seconds() -> Option<f64> {
    usage().map(|(cpu, _)| cpu)
}

/// The peak resident set size in KiB (`getrusage`; `None` where there is none).
fn peak_rss_kib() -> Option<u64> {
    usage().map(|(_, rss)| rss)
}

#[cfg(unix)]
fn usage() -> Option<(f64, u64)> {
    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::time::TimeValLike as _;
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let cpu = (usage.user_time().num_microseconds() + usage.system_time().num_microseconds())
        as f64
        / 1e6;
    let max_rss = u64::try_from(usage.max_rss()).ok()?;
    // `ru_maxrss` is in bytes on Apple systems, in KiB elsewhere.
    let rss_kib = if cfg!(target_vendor = "apple") {
        max_rss / 1024
    } else {
        max_rss
    };
    Some((cpu, rss_kib))
}

#[cfg(not(unix))]
fn usage() -> Option<(f64, u64)> {
    None
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

// ---------------------------------------------------------------------------------------------
// The summary.

/// What `--json` prints (the comparison harness reads the same keys from every client).
#[derive(Debug, Serialize)]
struct Summary {
    client: &'static str,
    destination: String,
    producers: usize,
    consumers: usize,
    size: usize,
    ack: Ack,
    receipts: bool,
    sent: u64,
    receipted: u64,
    received: u64,
    /// Deliveries of a message already received, not counted in `received`.
    duplicates: u64,
    expected: u64,
    elapsed_s: f64,
    msgs_per_s: f64,
    deliveries_per_s: f64,
    mib_per_s: f64,
    receipt_latency_ms: Option<Option<Latency>>,
    delivery_latency_ms: Option<Option<Latency>>,
    connect_ms: f64,
    cpu_s: Option<f64>,
    cpu_s_per_100k: Option<f64>,
    peak_rss_kib: Option<u64>,
}

impl Summary {
    fn print(&self, out: &mut impl io::Write) -> io::Result<()> {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        writeln!(
            out,
            "{} messages of {} B to {}: {}, {}, ack {}, {}",
            self.sent,
            self.size,
            self.destination,
            plural(self.producers, "producer"),
            plural(self.consumers, "consumer"),
            self.ack
                .to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_owned()),
            if self.receipts {
                "receipts"
            } else {
                "no receipts"
            }
        )?;
        writeln!(
            out,
            "throughput  {:.0} msg/s, {:.2} MiB/s over {:.2} s",
            self.msgs_per_s, self.mib_per_s, self.elapsed_s
        )?;
        if self.consumers > 0 {
            writeln!(
                out,
                "received    {} of {} ({:.0} deliveries/s){}",
                self.received,
                self.expected,
                self.deliveries_per_s,
                match self.duplicates {
                    0 => String::new(),
                    n => format!(", and {n} duplicate deliveries not counted"),
                }
            )?;
        }
        if self.receipts {
            writeln!(out, "receipted   {}", self.receipted)?;
        }
        let latency = |l: &Option<Option<Latency>>| match l {
            Some(Some(l)) => format!(
                "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.p50, l.p90, l.p99, l.max
            ),
            Some(None) => "no samples".to_owned(),
            None => "-".to_owned(),
        };
        writeln!(
            out,
            "latency     send to receipt:  {}",
            latency(&self.receipt_latency_ms)
        )?;
        writeln!(
            out,
            "            send to delivery: {}",
            latency(&self.delivery_latency_ms)
        )?;
        writeln!(
            out,
            "connect     {:.1} ms ({} connections)",
            self.connect_ms,
            self.producers + self.consumers
        )?;
        match (self.cpu_s, self.cpu_s_per_100k) {
            (Some(cpu), Some(per)) => writeln!(
                out,
                "client CPU  {cpu:.2} s ({per:.3} s per 100 000 messages)"
            )?,
            _ => writeln!(out, "client CPU  unknown (no getrusage here)")?,
        }
        match self.peak_rss_kib {
            Some(kib) => writeln!(out, "peak RSS    {:.1} MiB", kib as f64 / 1024.0),
            None => writeln!(out, "peak RSS    unknown (no getrusage here)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Histogram, MAX_CLIENTS, Seen, parse_seq, share};

    #[test]
    fn only_this_runs_sequence_numbers_are_read() {
        assert_eq!(parse_seq("00000000000000ff.2.17", 0xff), Some((2, 17)));
        assert_eq!(
            parse_seq("00000000000000fe.2.17", 0xff),
            None,
            "another run"
        );
        for bad in ["", "ff", "ff.2", "ff.x.1", "ff.2.-1", "ff.2.1.0", "zz.2.1"] {
            assert_eq!(parse_seq(bad, 0xff), None, "{bad:?}");
        }
    }

    #[test]
    fn seen_counts_each_message_of_each_producer_once() {
        let mut seen = Seen::default();
        assert!(seen.insert(0, 0));
        assert!(!seen.insert(0, 0));
        assert!(seen.insert(1, 0), "another producer's message 0");
        assert!(seen.insert(0, 64), "a message in the next word");
        assert!(!seen.insert(0, 64));
        assert!(seen.insert(0, 63));
        assert!(seen.insert(0, 1_000_000));
        assert!(!seen.insert(0, 1_000_000));
        // Not a producer of this run: counted every time, nothing kept for it.
        assert!(seen.insert(MAX_CLIENTS, 5));
        assert!(seen.insert(MAX_CLIENTS, 5));
        assert_eq!(seen.by_producer.len(), 2);
    }

    #[test]
    fn shares_add_up() {
        for (n, producers) in [(10, 3), (1, 4), (100_000, 1), (7, 7)] {
            let total: u64 = (0..producers).map(|i| share(n, producers, i)).sum();
            assert_eq!(total, n, "{n} among {producers}");
        }
        assert_eq!(share(10, 3, 0), 4);
        assert_eq!(share(10, 3, 2), 3);
    }

    #[test]
    fn histogram_quantiles_are_within_bucket_width() {
        let mut h = Histogram::default();
        for micros in 1..=1000u64 {
            h.record(Duration::from_micros(micros));
        }
        for (q, expected) in [(0.5, 500_000.0), (0.9, 900_000.0), (0.99, 990_000.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - expected).abs() / expected < 0.04,
                "q{q}: {got} vs {expected}"
            );
        }
        assert_eq!(h.max, 1_000_000);
        assert_eq!(h.quantile(1.0), 1_000_000);
    }

    #[test]
    fn histogram_buckets_round_trip() {
        for value in [
            0u64,
            1,
            63,
            64,
            65,
            1000,
            123_456_789,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let index = Histogram::index(value);
            assert!(index < super::BUCKETS, "{value}");
            let middle = Histogram::value(index);
            assert_eq!(Histogram::index(middle), index, "{value} -> {middle}");
        }
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(3));
        a.merge(&b);
        assert_eq!(a.total, 2);
        assert_eq!(a.max, 3_000_000);
        assert!(Histogram::default().summary().is_none());
    }
}
