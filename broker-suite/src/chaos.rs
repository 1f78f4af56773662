//! The chaos run: a producer sends numbered messages with receipts, a consumer with
//! client-individual acks takes them, both through the testkit's fault proxy, while a seeded
//! plan injects cuts, stalls, cuts in the middle of a frame, added latency and broker
//! restarts. It checks that nothing is lost, that repeats are marked, that first deliveries
//! keep the producer's order, that the clients come back quickly after each fault, and that
//! no task, socket or memory is left behind.

use std::time::Duration;

use stompkit_tokio::session::policy::OpenDuration;
use stompkit_tokio::session::{BackoffConfig, BreakerConfig};
use stompkit_tokio::{Client, ClientBuilder, Credentials};

/// Delay between reconnection attempts of the chaos and soak clients.
pub const BACKOFF: Duration = Duration::from_millis(250);
/// How long their circuit breaker stays open once it trips (5 failed attempts in a row).
pub const BREAKER_OPEN: Duration = Duration::from_secs(1);

/// A client of `urls` as the chaos and soak runs use it: guest login, virtual host `/`,
/// 1 s heart-beats (a stall is noticed), a constant [`BACKOFF`], a breaker open for
/// [`BREAKER_OPEN`].
///
/// # Errors
/// A bad URL.
pub fn chaos_client(urls: &str) -> Result<ClientBuilder, String> {
    Ok(Client::builder(urls)
        .map_err(|e| format!("bad URL {urls}: {e}"))?
        .credentials(Credentials::login("guest", "guest"))
        .host("/")
        .heart_beat(Duration::from_secs(1), Duration::from_secs(1))
        .session_with(|s| {
            s.with_backoff(BackoffConfig::constant(BACKOFF))
                .with_breaker(
                    BreakerConfig::default()
                        .consecutive_failures(5)
                        .open_for(OpenDuration::Fixed(BREAKER_OPEN)),
                )
                .with_healthy_after(Duration::from_millis(500))
        }))
}

/// A small seeded generator (SplitMix64): the same seed gives the same fault plan.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// From a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

// ------------------------------------------------------------------ the run

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use stompkit_testkit::{Direction, EmbeddedBroker, Proxy};
use stompkit_tokio::{AckMode, ClientEvent, Message, State, Subscribe};
use tokio::sync::{Mutex, watch};

use crate::resources::{Sample, settle};
use crate::{TestQueue, rabbitmqctl, try_broker, try_cluster};

/// Which broker a run is against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The local RabbitMQ node; a restart is `rabbitmqctl stop_app` then `start_app`.
    Rabbitmq,
    /// The testkit's embedded broker in this process; a restart is its `restart()`.
    Embedded,
    /// The three-node RabbitMQ cluster and a quorum queue; every fault stops the node a
    /// client is on and starts it again.
    Cluster,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rabbitmq => "rabbitmq",
            Self::Embedded => "embedded",
            Self::Cluster => "cluster",
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// The broker.
    pub target: Target,
    /// Messages the producer sends.
    pub messages: u64,
    /// Faults injected, spread evenly over the stream.
    pub faults: u32,
    /// Seed of the fault plan and its parameters.
    pub seed: u64,
    /// Receipted sends in flight at most.
    pub in_flight: usize,
    /// The consumer's `prefetch-count`.
    pub prefetch: u32,
    /// Bound on the whole run.
    pub bound: Duration,
}

impl ChaosConfig {
    /// A run of `messages` with `faults` against `target`, seed 1.
    pub fn new(target: Target, messages: u64, faults: u32) -> Self {
        Self {
            target,
            messages,
            faults,
            seed: 1,
            in_flight: 256,
            prefetch: 200,
            bound: Duration::from_secs(3600),
        }
    }
}

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Every proxied connection closed.
    Cut,
    /// The connection carrying the next 1..=2000 bytes one way is cut after them.
    MidFrameCut,
    /// Nothing passes for 0.5..4.5 s.
    Stall,
    /// 20..300 ms added each way for 1..4 s.
    Latency,
    /// The broker (or, in the cluster, the client's node) stopped and started.
    Restart,
}

/// Every kind, in the order a plan cycles through them.
pub const FAULT_KINDS: [FaultKind; 5] = [
    FaultKind::Cut,
    FaultKind::MidFrameCut,
    FaultKind::Stall,
    FaultKind::Latency,
    FaultKind::Restart,
];

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// Its kind.
    pub kind: FaultKind,
    /// Its parameters.
    pub detail: String,
    /// When it started, ms after the run's start.
    pub at_ms: u64,
    /// How long it lasted, ms.
    pub lasted_ms: u64,
    /// Connections lost because of it (both clients).
    pub disconnects: u32,
    /// The longest time a client took to be connected again, from the later of losing
    /// its connection and the fault's end (none when no client lost its connection).
    pub reconnect_ms: Option<u64>,
    /// The failures the clients reported during it (`producer`/`consumer`, ms after the
    /// fault's start, class and detail).
    pub failures: Vec<String>,
}

/// What a chaos run found.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// The broker.
    pub target: Target,
    /// The seed.
    pub seed: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages delivered at least once.
    pub delivered: u64,
    /// Messages never delivered (the first 20).
    pub lost: Vec<u64>,
    /// How many were never delivered.
    pub lost_count: u64,
    /// Deliveries in all.
    pub deliveries: u64,
    /// Deliveries of a message already delivered.
    pub duplicates: u64,
    /// Of those, flagged `possibly_duplicate`.
    pub duplicates_flagged: u64,
    /// Of those, not flagged but carrying a `stompkit-id` seen before.
    pub duplicates_by_id: u64,
    /// Of those, neither.
    pub duplicates_unmarked: u64,
    /// First deliveries that came after a later message's first delivery.
    pub order_violations: u64,
    /// Sends or receipts that failed (the first 20).
    pub send_errors: Vec<String>,
    /// How many failed.
    pub send_error_count: u64,
    /// ACKs the session refused (a delivery of a lost connection; the broker redelivers).
    pub refused_acks: u64,
    /// The faults.
    pub faults: Vec<FaultRecord>,
    /// Reconnections of the producer and the consumer.
    pub reconnections: (u64, u64),
    /// The longest reconnection after a fault, ms.
    pub max_reconnect_ms: u64,
    /// The bound each reconnection must meet: the backoff delay, the breaker's open time
    /// (it may trip during a restart) and 1 s.
    pub reconnect_bound_ms: u64,
    /// Resources before the run and after it (settled).
    pub before: Sample,
    /// After.
    pub after: Sample,
    /// The run's length, ms.
    pub elapsed_ms: u64,
}

impl ChaosReport {
    /// The checks that failed (empty: passed).
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.lost_count > 0 {
            failures.push(format!(
                "{} messages lost (first: {:?})",
                self.lost_count, self.lost
            ));
        }
        if self.duplicates_unmarked > 0 {
            failures.push(format!(
                "{} duplicates neither flagged nor carrying a seen stompkit-id",
                self.duplicates_unmarked
            ));
        }
        if self.order_violations > 0 {
            failures.push(format!(
                "{} first deliveries out of order",
                self.order_violations
            ));
        }
        let slow: Vec<String> = self
            .faults
            .iter()
            .filter(|f| {
                f.reconnect_ms
                    .is_some_and(|ms| ms > self.reconnect_bound_ms)
            })
            .map(|f| format!("{:?} at {} ms: {:?} ms", f.kind, f.at_ms, f.reconnect_ms))
            .collect();
        if !slow.is_empty() {
            failures.push(format!(
                "reconnections over {} ms: {}",
                self.reconnect_bound_ms,
                slow.join(", ")
            ));
        }
        if self.after.tasks > self.before.tasks {
            failures.push(format!(
                "tasks leaked: {} before, {} after",
                self.before.tasks, self.after.tasks
            ));
        }
        if self.after.fds > self.before.fds {
            failures.push(format!(
                "file descriptors leaked: {} before, {} after",
                self.before.fds, self.after.fds
            ));
        }
        failures
    }

    /// Faults applied per kind.
    pub fn fault_counts(&self) -> Vec<(FaultKind, usize)> {
        FAULT_KINDS
            .iter()
            .map(|k| (*k, self.faults.iter().filter(|f| f.kind == *k).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// A text summary.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let row = |t: &mut String, k: &str, v: String| t.push_str(&format!("  {k:<30} {v}\n"));
        t.push_str(&format!(
            "chaos against {} (seed {})\n",
            self.target, self.seed
        ));
        row(&mut t, "messages sent", self.messages.to_string());
        row(
            &mut t,
            "delivered at least once",
            self.delivered.to_string(),
        );
        row(&mut t, "lost", self.lost_count.to_string());
        row(&mut t, "deliveries", self.deliveries.to_string());
        row(
            &mut t,
            "duplicates (flagged/id/unmarked)",
            format!(
                "{} ({}/{}/{})",
                self.duplicates,
                self.duplicates_flagged,
                self.duplicates_by_id,
                self.duplicates_unmarked
            ),
        );
        row(
            &mut t,
            "first deliveries out of order",
            self.order_violations.to_string(),
        );
        row(
            &mut t,
            "send/receipt errors",
            self.send_error_count.to_string(),
        );
        row(&mut t, "ACKs refused", self.refused_acks.to_string());
        let kinds: Vec<String> = self
            .fault_counts()
            .iter()
            .map(|(k, n)| format!("{k:?} {n}"))
            .collect();
        row(
            &mut t,
            "faults",
            format!("{} ({})", self.faults.len(), kinds.join(", ")),
        );
        row(
            &mut t,
            "disconnections (all faults)",
            self.faults
                .iter()
                .map(|f| u64::from(f.disconnects))
                .sum::<u64>()
                .to_string(),
        );
        row(
            &mut t,
            "reconnections (prod/cons)",
            format!("{}/{}", self.reconnections.0, self.reconnections.1),
        );
        let mut reconnects: Vec<u64> = self.faults.iter().filter_map(|f| f.reconnect_ms).collect();
        reconnects.sort_unstable();
        let median = reconnects.get(reconnects.len() / 2).copied().unwrap_or(0);
        row(
            &mut t,
            "reconnect median / max (bound)",
            format!(
                "{median} / {} ms ({} ms)",
                self.max_reconnect_ms, self.reconnect_bound_ms
            ),
        );
        row(
            &mut t,
            "tasks before / after",
            format!("{} / {}", self.before.tasks, self.after.tasks),
        );
        row(
            &mut t,
            "fds before / after",
            format!("{} / {}", self.before.fds, self.after.fds),
        );
        row(
            &mut t,
            "RSS before / after",
            format!("{} / {} KiB", self.before.rss_kib, self.after.rss_kib),
        );
        row(
            &mut t,
            "elapsed",
            format!("{:.1} s", self.elapsed_ms as f64 / 1000.0),
        );
        let failures = self.failures();
        row(
            &mut t,
            "result",
            if failures.is_empty() {
                "PASS".to_owned()
            } else {
                format!("FAIL: {}", failures.join("; "))
            },
        );
        t
    }
}

/// What the consumer saw.
#[derive(Debug, Default)]
struct Seen {
    /// Deliveries per message number.
    counts: Vec<u32>,
    /// `stompkit-id` values seen.
    ids: HashSet<String>,
    delivered: u64,
    deliveries: u64,
    duplicates: u64,
    flagged: u64,
    by_id: u64,
    unmarked: u64,
    order_violations: u64,
    highest_first: Option<u64>,
    refused_acks: u64,
}

/// When a client lost and regained its connection.
#[derive(Debug, Default)]
struct Timeline {
    /// (when, connected after the change)
    changes: Vec<(Instant, bool)>,
    /// The endpoint of the last `Connected` event.
    endpoint: Option<String>,
    /// Failed attempts and connections: when, and the failure's class and detail.
    failures: Vec<(Instant, String)>,
}

fn watch_client(client: &Client) -> (Arc<Mutex<Timeline>>, Vec<tokio::task::JoinHandle<()>>) {
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let mut state = client.state();
    let mut events = client.events();
    let states = {
        let timeline = Arc::clone(&timeline);
        tokio::spawn(async move {
            let mut was = matches!(*state.borrow_and_update(), State::Connected);
            while state.changed().await.is_ok() {
                let now = matches!(*state.borrow_and_update(), State::Connected);
                if now != was {
                    timeline.lock().await.changes.push((Instant::now(), now));
                    was = now;
                }
            }
        })
    };
    let connected = {
        let timeline = Arc::clone(&timeline);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(ClientEvent::Connected { endpoint, .. }) => {
                        timeline.lock().await.endpoint = Some(endpoint);
                    }
                    Ok(ClientEvent::StateChanged { to, cause, .. }) => {
                        let to = match to {
                            State::Reconnecting { at } => format!(
                                "Reconnecting in {} ms",
                                at.saturating_duration_since(Instant::now()).as_millis()
                            ),
                            State::Failed { next_probe } => format!(
                                "breaker open for {} ms",
                                next_probe
                                    .saturating_duration_since(Instant::now())
                                    .as_millis()
                            ),
                            other => format!("{other:?}"),
                        };
                        let what = format!("-> {to} ({cause:?})");
                        timeline.lock().await.failures.push((Instant::now(), what));
                    }
                    Ok(ClientEvent::AttemptFailed { failure, .. }) => {
                        let what = format!("{:?}: {}", failure.kind, failure.detail);
                        timeline.lock().await.failures.push((Instant::now(), what));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    };
    (timeline, vec![states, connected])
}

/// Disconnections in `[from, until)` and the longest time to come back from each, counted
/// from the later of the loss and `fault_end`.
fn outages(
    timeline: &Timeline,
    from: Instant,
    until: Instant,
    fault_end: Instant,
) -> (u32, Option<u64>) {
    let (mut lost, mut longest) = (0, None::<u64>);
    for (i, (at, connected)) in timeline.changes.iter().enumerate() {
        if *connected || *at < from || *at >= until {
            continue;
        }
        lost += 1;
        let back = timeline.changes[i + 1..]
            .iter()
            .find(|(_, c)| *c)
            .map_or(until, |(t, _)| *t);
        let ms = back
            .saturating_duration_since((*at).max(fault_end))
            .as_millis() as u64;
        longest = Some(longest.map_or(ms, |l| l.max(ms)));
    }
    (lost, longest)
}

async fn both_connected(clients: [&Client; 2], bound: Duration) -> Result<(), String> {
    for client in clients {
        let mut state = client.state();
        tokio::time::timeout(bound, state.wait_for(|s| matches!(s, State::Connected)))
            .await
            .map_err(|_| format!("a client was not connected again within {bound:?}"))?
            .map_err(|_| "a client closed".to_owned())?;
    }
    Ok(())
}

async fn ctl(args: Vec<String>) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rabbitmqctl(&args)
    })
    .await
    .map_err(|e| format!("rabbitmqctl task: {e}"))?
}

/// The fault plan: `n` kinds, every kind in turn in a seeded order per round (the cluster
/// only restarts nodes).
pub fn plan(target: Target, n: u32, rng: &mut Rng) -> Vec<FaultKind> {
    if target == Target::Cluster {
        return vec![FaultKind::Restart; n as usize];
    }
    let mut plan = Vec::with_capacity(n as usize);
    while plan.len() < n as usize {
        let mut round = FAULT_KINDS;
        for i in (1..round.len()).rev() {
            round.swap(i, rng.below(i as u64 + 1) as usize);
        }
        plan.extend(round);
    }
    plan.truncate(n as usize);
    plan
}

/// Runs one chaos run. The result's [`ChaosReport::failures`] says whether it passed.
///
/// # Errors
/// Setting up failed (no broker, no first connection), a fault could not be applied, or
/// the run did not finish within its bound.
pub async fn run(config: ChaosConfig) -> Result<ChaosReport, String> {
    let before = Sample::now();
    let started = Instant::now();
    let mut rng = Rng::new(config.seed);
    let kinds = plan(config.target, config.faults, &mut rng);

    // The upstreams and their nodes.
    let mut embedded = None;
    let upstreams: Vec<(String, Option<String>)> = match config.target {
        Target::Rabbitmq => {
            let env = try_broker()?;
            vec![(env.tcp.clone(), Some(env.node.clone()))]
        }
        Target::Cluster => {
            let (urls, nodes) = try_cluster()?;
            urls.split(',')
                .map(str::to_owned)
                .zip(nodes.iter().cloned().map(Some))
                .collect()
        }
        Target::Embedded => {
            let b = EmbeddedBroker::builder()
                .ws_addr(None)
                .start()
                .await
                .map_err(|e| format!("embedded broker: {e}"))?;
            let url = b.stomp_url();
            embedded = Some(b);
            vec![(url, None)]
        }
    };
    let mut proxies = Vec::new();
    for (upstream, _) in &upstreams {
        proxies.push(
            Proxy::builder(upstream.clone())
                .start()
                .await
                .map_err(|e| format!("proxy to {upstream}: {e}"))?,
        );
    }
    let urls = proxies.iter().map(Proxy::url).collect::<Vec<_>>().join(",");

    let outcome = tokio::time::timeout(
        config.bound,
        stream(
            &config,
            &kinds,
            &mut rng,
            &upstreams,
            &proxies,
            embedded.as_ref(),
            &urls,
            started,
        ),
    )
    .await;
    for proxy in proxies {
        proxy.shutdown().await;
    }
    if let Some(b) = embedded {
        b.shutdown().await;
    }
    let (mut seen, faults, send_errors, send_error_count, reconnections) = match outcome {
        Ok(result) => result?,
        Err(_) => return Err(format!("the run took longer than {:?}", config.bound)),
    };
    // The run's own bookkeeping is not the client's memory.
    seen.ids = HashSet::new();
    let after = settle(before, Duration::from_secs(10)).await;

    let lost_all: Vec<u64> = seen
        .counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == 0)
        .map(|(n, _)| n as u64)
        .collect();
    let max_reconnect_ms = faults
        .iter()
        .filter_map(|f| f.reconnect_ms)
        .max()
        .unwrap_or(0);
    Ok(ChaosReport {
        target: config.target,
        seed: config.seed,
        messages: config.messages,
        delivered: seen.delivered,
        lost: lost_all.iter().take(20).copied().collect(),
        lost_count: lost_all.len() as u64,
        deliveries: seen.deliveries,
        duplicates: seen.duplicates,
        duplicates_flagged: seen.flagged,
        duplicates_by_id: seen.by_id,
        duplicates_unmarked: seen.unmarked,
        order_violations: seen.order_violations,
        send_errors,
        send_error_count,
        refused_acks: seen.refused_acks,
        faults,
        reconnections,
        max_reconnect_ms,
        reconnect_bound_ms: (BACKOFF + BREAKER_OPEN + Duration::from_secs(1)).as_millis() as u64,
        before,
        after,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

type StreamOutcome = (Seen, Vec<FaultRecord>, Vec<String>, u64, (u64, u64));

/// Bound on waiting for the clients to be back, or for the stream to move on, between faults.
const STEP_BOUND: Duration = Duration::from_secs(120);

#[allow(clippy::too_many_arguments)]
async fn stream(
    config: &ChaosConfig,
    kinds: &[FaultKind],
    rng: &mut Rng,
    upstreams: &[(String, Option<String>)],
    proxies: &[Proxy],
    embedded: Option<&EmbeddedBroker>,
    urls: &str,
    started: Instant,
) -> Result<StreamOutcome, String> {
    let n = config.messages;
    let queue = TestQueue::new(&format!("chaos-{}", config.target));
    let (subscribe, destination) = match config.target {
        Target::Embedded => (
            Subscribe::new(queue.subscribe_destination()).receipt(),
            queue.subscribe_destination(),
        ),
        Target::Rabbitmq => (queue.subscribe(), queue.send_destination()),
        // RabbitMQ: a quorum queue must be declared durable; it survives a node's stop.
        Target::Cluster => (
            Subscribe::new(queue.subscribe_destination())
                .header("durable", "true")
                .header("auto-delete", "false")
                .header("x-queue-type", "quorum")
                .header("x-expires", "300000")
                .receipt(),
            queue.send_destination(),
        ),
    };
    let subscribe = subscribe
        .ack(AckMode::ClientIndividual)
        .header("prefetch-count", config.prefetch.to_string());

    let consumer = chaos_client(urls)?
        .name("chaos-consumer")
        .start()
        .map_err(|e| format!("consumer: {e}"))?;
    let producer = chaos_client(urls)?
        .name("chaos-producer")
        .session_with(|s| s.with_client_id("chaos-producer"))
        .start()
        .map_err(|e| format!("producer: {e}"))?;
    // Watched before the first CONNECTED, so the first endpoint is known.
    let (consumer_timeline, mut watchers) = watch_client(&consumer);
    let (producer_timeline, more) = watch_client(&producer);
    watchers.extend(more);
    both_connected([&consumer, &producer], Duration::from_secs(30)).await?;
    let mut subscription =
        tokio::time::timeout(Duration::from_secs(30), consumer.subscribe(subscribe))
            .await
            .map_err(|_| "no SUBSCRIBE receipt within 30 s".to_owned())?
            .map_err(|e| format!("subscribing: {e}"))?;

    // The consumer.
    let (progress_tx, mut progress) = watch::channel(0u64);
    let consuming = tokio::spawn(async move {
        let mut seen = Seen {
            counts: vec![0; n as usize],
            ..Seen::default()
        };
        while seen.delivered < n {
            let Some(delivery) = subscription.next_delivery().await else {
                return Err(format!(
                    "the subscription ended: {:?}",
                    subscription.end_reason()
                ));
            };
            seen.deliveries += 1;
            let number = std::str::from_utf8(delivery.body())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|k| *k < n);
            let id = delivery.header("stompkit-id").map(str::to_owned);
            if let Some(k) = number {
                let count = &mut seen.counts[k as usize];
                *count += 1;
                if *count == 1 {
                    seen.delivered += 1;
                    if seen.highest_first.is_some_and(|h| k < h) {
                        seen.order_violations += 1;
                    }
                    seen.highest_first = Some(seen.highest_first.map_or(k, |h| h.max(k)));
                } else {
                    seen.duplicates += 1;
                    if delivery.possibly_duplicate() {
                        seen.flagged += 1;
                    } else if id.as_ref().is_some_and(|id| seen.ids.contains(id)) {
                        seen.by_id += 1;
                    } else {
                        seen.unmarked += 1;
                    }
                }
            }
            if let Some(id) = id {
                seen.ids.insert(id);
            }
            // A refused ACK is fine: the broker redelivers the message.
            if delivery.ack().await.is_err() {
                seen.refused_acks += 1;
            }
            progress_tx.send_replace(seen.delivered);
        }
        Ok(seen)
    });

    // The producer: sends up to the gate the fault loop opens, many receipts in flight.
    let segments = u64::from(config.faults) + 1;
    let segment = n.div_ceil(segments).max(1);
    let (gate_tx, mut gate) = watch::channel(segment.min(n));
    let (conf_tx, mut conf_rx) = tokio::sync::mpsc::channel(config.in_flight.max(1));
    let producing = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut errors = Vec::new();
            for k in 0..n {
                if gate.wait_for(|g| k < *g).await.is_err() {
                    break;
                }
                let message =
                    Message::new(destination.clone(), k.to_string()).header("persistent", "true");
                match producer.send_with_receipt(message).await {
                    Ok(confirmation) => {
                        if conf_tx.send((k, confirmation)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => errors.push(format!("{k}: {e}")),
                }
            }
            errors
        })
    };
    let confirming = tokio::spawn(async move {
        let mut errors = Vec::new();
        while let Some((k, confirmation)) = conf_rx.recv().await {
            if let Err(e) = confirmation.confirmed().await {
                errors.push(format!("{k}: {e}"));
            }
        }
        errors
    });

    // The faults, each halfway through its segment of the stream.
    let mut records = Vec::new();
    let mut turn = 0usize;
    for (i, kind) in kinds.iter().enumerate() {
        let threshold = (i as u64 * segment + segment / 2).min(n);
        tokio::time::timeout(STEP_BOUND, progress.wait_for(|d| *d >= threshold))
            .await
            .map_err(|_| format!("the stream stalled before fault {i} ({threshold} delivered)"))?
            .map_err(|_| "the consumer ended early".to_owned())?;
        // The next segment may go now, so that messages are in flight during the fault.
        gate_tx.send_replace(((i as u64 + 2) * segment).min(n));
        let at = Instant::now();
        let (detail, end) = apply(
            *kind,
            rng,
            proxies,
            upstreams,
            embedded,
            &consumer_timeline,
            &producer_timeline,
            &mut turn,
        )
        .await?;
        both_connected([&consumer, &producer], STEP_BOUND).await?;
        // A moment for a cut that lands late (mid-frame) to show in the timelines.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = Instant::now();
        let mut disconnects = 0;
        let mut reconnect = None::<u64>;
        let mut failures = Vec::new();
        for (who, timeline) in [
            ("consumer", &consumer_timeline),
            ("producer", &producer_timeline),
        ] {
            let timeline = timeline.lock().await;
            failures.extend(
                timeline
                    .failures
                    .iter()
                    .filter(|(t, _)| *t >= at && *t < now)
                    .map(|(t, what)| {
                        format!("{who} +{} ms {what}", t.duration_since(at).as_millis())
                    }),
            );
            let (lost, longest) = outages(&timeline, at, now, end);
            disconnects += lost;
            reconnect = match (reconnect, longest) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        tracing::info!(fault = i, ?kind, %detail, disconnects, ?reconnect, "fault done");
        records.push(FaultRecord {
            kind: *kind,
            detail,
            at_ms: at.duration_since(started).as_millis() as u64,
            lasted_ms: end.saturating_duration_since(at).as_millis() as u64,
            disconnects,
            reconnect_ms: reconnect,
            failures,
        });
    }
    gate_tx.send_replace(n);

    let rest = Duration::from_secs(600).max(Duration::from_millis(n));
    let seen = tokio::time::timeout(rest, consuming)
        .await
        .map_err(|_| {
            format!(
                "not every message arrived within {rest:?} after the last fault ({} did)",
                *progress.borrow()
            )
        })?
        .map_err(|e| format!("consumer task: {e}"))??;
    let mut errors = tokio::time::timeout(STEP_BOUND, producing)
        .await
        .map_err(|_| "the producer did not finish".to_owned())?
        .map_err(|e| format!("producer task: {e}"))?;
    errors.extend(
        tokio::time::timeout(STEP_BOUND, confirming)
            .await
            .map_err(|_| "receipts still missing".to_owned())?
            .map_err(|e| format!("receipt task: {e}"))?,
    );
    let reconnections = (
        producer.stats().await.map(|s| s.reconnections).unwrap_or(0),
        consumer.stats().await.map(|s| s.reconnections).unwrap_or(0),
    );
    for client in [&producer, &consumer] {
        let _ = tokio::time::timeout(Duration::from_secs(10), client.disconnect()).await;
    }
    drop((producer, consumer));
    for watcher in watchers {
        watcher.abort();
        let _ = watcher.await;
    }
    let count = errors.len() as u64;
    errors.truncate(20);
    Ok((seen, records, errors, count, reconnections))
}

/// Applies one fault and waits for its end; its parameters and when it ended.
#[allow(clippy::too_many_arguments)]
async fn apply(
    kind: FaultKind,
    rng: &mut Rng,
    proxies: &[Proxy],
    upstreams: &[(String, Option<String>)],
    embedded: Option<&EmbeddedBroker>,
    consumer: &Mutex<Timeline>,
    producer: &Mutex<Timeline>,
    turn: &mut usize,
) -> Result<(String, Instant), String> {
    let proxy = &proxies[rng.below(proxies.len() as u64) as usize];
    match kind {
        FaultKind::Cut => {
            for proxy in proxies {
                proxy.cut_all();
            }
            Ok(("all connections".to_owned(), Instant::now()))
        }
        FaultKind::MidFrameCut => {
            let dir = if rng.below(2) == 0 {
                Direction::ToClient
            } else {
                Direction::ToUpstream
            };
            let bytes = 1 + rng.below(2000);
            let cuts = proxy.stats().cut;
            proxy.cut_after(dir, bytes);
            // Heart-beats alone carry a byte a second each way, so it fires soon.
            let deadline = Instant::now() + Duration::from_secs(30);
            while proxy.stats().cut == cuts && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let fired = proxy.stats().cut > cuts;
            Ok((
                format!(
                    "{dir:?} after {bytes} B{}",
                    if fired { "" } else { " (did not fire)" }
                ),
                Instant::now(),
            ))
        }
        FaultKind::Stall => {
            let stall = Duration::from_millis(500 + rng.below(4000));
            for proxy in proxies {
                proxy.stall(Some(stall));
            }
            tokio::time::sleep(stall).await;
            Ok((format!("{} ms", stall.as_millis()), Instant::now()))
        }
        FaultKind::Latency => {
            let latency = Duration::from_millis(20 + rng.below(280));
            let lasts = Duration::from_millis(1000 + rng.below(3000));
            for proxy in proxies {
                proxy.latency(Direction::ToClient, latency);
                proxy.latency(Direction::ToUpstream, latency);
            }
            tokio::time::sleep(lasts).await;
            for proxy in proxies {
                proxy.latency(Direction::ToClient, Duration::ZERO);
                proxy.latency(Direction::ToUpstream, Duration::ZERO);
            }
            Ok((
                format!(
                    "{} ms each way for {} ms",
                    latency.as_millis(),
                    lasts.as_millis()
                ),
                Instant::now(),
            ))
        }
        FaultKind::Restart => {
            if let Some(broker) = embedded {
                let down = Duration::from_millis(500 + rng.below(1500));
                broker
                    .restart(down)
                    .await
                    .map_err(|e| format!("embedded restart: {e}"))?;
                tokio::time::sleep(down).await;
                return Ok((
                    format!("embedded, down {} ms", down.as_millis()),
                    Instant::now(),
                ));
            }
            if upstreams.len() == 1 {
                let node = upstreams[0].1.clone().ok_or("no node name")?;
                ctl(vec!["-n".into(), node.clone(), "stop_app".into()]).await?;
                ctl(vec!["-n".into(), node.clone(), "start_app".into()]).await?;
                return Ok((format!("{node} stop_app/start_app"), Instant::now()));
            }
            // The cluster: the node the consumer (then the producer, in turn) is on.
            *turn += 1;
            let (who, timeline) = if *turn % 2 == 1 {
                ("consumer", consumer)
            } else {
                ("producer", producer)
            };
            let endpoint = timeline.lock().await.endpoint.clone().unwrap_or_default();
            let index = proxies
                .iter()
                .position(|p| endpoint.contains(&p.local_addr().to_string()))
                // Not known (its event was missed): a node some client is on.
                .or_else(|| proxies.iter().position(|p| p.stats().active > 0))
                .ok_or(format!(
                    "the {who}'s endpoint {endpoint:?} is none of the proxies"
                ))?;
            let node = upstreams[index].1.clone().ok_or("no node name")?;
            let at = Instant::now();
            ctl(vec!["-n".into(), node.clone(), "stop_app".into()]).await?;
            // The failover is measured from the loss; the node comes back once the client
            // has moved (bounded), so that the next fault finds three nodes.
            let moved = Instant::now() + Duration::from_secs(30);
            while Instant::now() < moved {
                let now_on = timeline.lock().await.endpoint.clone().unwrap_or_default();
                if now_on != endpoint {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ctl(vec!["-n".into(), node.clone(), "start_app".into()]).await?;
            Ok((format!("{who}'s node {node}"), at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_seeded_and_has_every_kind_in_each_round() {
        let a = plan(Target::Rabbitmq, 12, &mut Rng::new(7));
        let b = plan(Target::Rabbitmq, 12, &mut Rng::new(7));
        assert_eq!(a, b);
        assert_eq!(a.len(), 12);
        for round in a
            .chunks(FAULT_KINDS.len())
            .filter(|r| r.len() == FAULT_KINDS.len())
        {
            for kind in FAULT_KINDS {
                assert!(round.contains(&kind), "{kind:?} missing from {round:?}");
            }
        }
        assert_ne!(a, plan(Target::Rabbitmq, 12, &mut Rng::new(8)));
        assert!(
            plan(Target::Cluster, 3, &mut Rng::new(7))
                .iter()
                .all(|k| *k == FaultKind::Restart)
        );
    }

    #[test]
    fn outages_count_from_the_later_of_the_loss_and_the_fault_end() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let timeline = Timeline {
            changes: vec![
                (ms(10), false),
                (ms(500), true),
                (ms(900), false),
                (ms(1000), true),
            ],
            endpoint: None,
            failures: Vec::new(),
        };
        // Lost at 10 ms, fault over at 300 ms, back at 500 ms: 200 ms; then 100 ms.
        assert_eq!(outages(&timeline, t0, ms(2000), ms(300)), (2, Some(200)));
        // Only the second loss is in the window.
        assert_eq!(
            outages(&timeline, ms(600), ms(2000), ms(600)),
            (1, Some(100))
        );
        assert_eq!(outages(&timeline, ms(1100), ms(2000), ms(1100)), (0, None));
    }

    /// A small run against the embedded broker (no RabbitMQ needed): one fault of each kind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_against_the_embedded_broker_loses_nothing() {
        let mut config = ChaosConfig::new(Target::Embedded, 500, 5);
        config.seed = 3;
        config.bound = Duration::from_secs(180);
        let report = run(config).await.expect("the run completes");
        assert_eq!(report.lost_count, 0, "{}", report.table());
        assert_eq!(report.delivered, 500);
        assert_eq!(report.duplicates_unmarked, 0, "{}", report.table());
        assert_eq!(report.order_violations, 0, "{}", report.table());
        assert_eq!(report.fault_counts().len(), FAULT_KINDS.len());
    }
}
