//! The job-offer station: a print shop's desktop app that receives job offers for its vendor
//! over STOMP on WebSocket, checks them, keeps each one until it expires or is cancelled, and
//! rides through broker restarts without missing one.
//!
//! ```sh
//! # Listen for vendor 7's offers on a local RabbitMQ with Web-STOMP, until Ctrl-C:
//! cargo run -p stompkit-tokio --example job_offers --features json -- --vendor 7
//! # Publish a handful of offers to its own queue, process them, print a summary and exit
//! # (0 only if every offer had the expected outcome); optionally restart the broker midway:
//! cargo run -p stompkit-tokio --example job_offers --features json -- --demo
//! cargo run -p stompkit-tokio --example job_offers --features json -- --demo --restart-node rabbit@localhost
//! ```
//!
//! Options: `--vendor ID`, `--demo` (or `JOB_OFFERS_DEMO=1`), `--restart-node NODE` (demo
//! only: `rabbitmqctl -n NODE stop_app` after the first offers, more offers published while
//! the broker is down, then `start_app`; needs root or the `rabbitmq` user), `--for SECS`
//! (stop listening after that long). `STOMP_URL` overrides `ws://127.0.0.1:15674/ws`;
//! `STATION_LOGIN` and `STATION_PASSCODE` override `guest`/`guest`.
//!
//! What it shows:
//! - a credentials provider, asked before every connection attempt: it hands out the login
//!   and a fresh `Authorization: Bearer ...` token for the `CONNECT` headers (a stock
//!   RabbitMQ ignores the header and checks the login);
//! - `client-individual` acknowledgements with a `prefetch-count` window: an offer is
//!   acknowledged once the station has recorded it (or refused it), so one that was in flight
//!   when the connection dropped is redelivered after the reconnect, and the session
//!   subscribes again by itself;
//! - validation with serde (the `json` feature), expiry tracking, cancellations
//!   (`OFFER_CANCELLED`) and duplicates (a redelivered offer is recognised by its job id).

#![allow(clippy::print_stdout)] // an example prints what it does

mod common;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stompkit_tokio::session::{Attempt, State};
use stompkit_tokio::{
    AckMode, Client, ClientEvent, Credentials, Delivery, Endpoint, JsonMessage, Message, Subscribe,
};
use tokio::sync::broadcast;
use tokio::time::{Instant, sleep_until, timeout};

/// What arrives on `/queue/job-offers-{vendorId}`, told apart by its `type` field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Incoming {
    #[serde(rename = "NEW_JOB_OFFER")]
    Offer(JobOffer),
    #[serde(rename = "OFFER_CANCELLED", rename_all = "camelCase")]
    Cancelled {
        job_id: i64,
        message: Option<String>,
    },
}

/// A job offer as the backend sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobOffer {
    job_id: i64,
    tracking_code: String,
    file_name: String,
    customer: String,
    print_specs: String,
    total_price: f64,
    earnings: f64,
    created_at: String,
    is_anonymous: bool,
    offer_expires_in_seconds: i64,
}

/// Highest price the station accepts for one job.
const MAX_PRICE: f64 = 10_000.0;
/// The range of `offerExpiresInSeconds` (the backend sends 90).
const EXPIRY_SECONDS: std::ops::RangeInclusive<i64> = 30..=300;
/// Most offers held at once; more are refused rather than grow without bound.
const MAX_ACTIVE: usize = 1_000;
/// How many finished job ids are remembered to recognise redeliveries.
const MAX_REMEMBERED: usize = 4_096;
/// Broker-side window of unacknowledged offers in flight to the station.
const PREFETCH: &str = "20";

impl JobOffer {
    /// Why the offer cannot be shown, if it cannot.
    fn problem(&self) -> Option<String> {
        if self.job_id <= 0 {
            return Some(format!("job id {} is not positive", self.job_id));
        }
        if self.tracking_code.is_empty()
            || self.tracking_code.len() > 32
            || !self
                .tracking_code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Some("the tracking code is not 1 to 32 letters and digits".into());
        }
        if !self.total_price.is_finite() || self.total_price <= 0.0 || self.total_price > MAX_PRICE
        {
            return Some(format!(
                "price {} is outside 0..{MAX_PRICE}",
                self.total_price
            ));
        }
        if !self.earnings.is_finite() || self.earnings < 0.0 || self.earnings > self.total_price {
            return Some(format!("earnings {} are outside 0..price", self.earnings));
        }
        if !EXPIRY_SECONDS.contains(&self.offer_expires_in_seconds) {
            return Some(format!(
                "expiry of {} s is outside {}..{} s",
                self.offer_expires_in_seconds,
                EXPIRY_SECONDS.start(),
                EXPIRY_SECONDS.end()
            ));
        }
        for (field, text, max) in [
            ("file name", &self.file_name, 255),
            ("customer", &self.customer, 100),
            ("print specs", &self.print_specs, 200),
        ] {
            if text.chars().count() > max {
                return Some(format!("the {field} is longer than {max} characters"));
            }
            if looks_like_markup(text) {
                return Some(format!("the {field} holds markup or script"));
            }
        }
        if self.file_name.trim().is_empty() {
            return Some("the file name is empty".into());
        }
        None
    }
}

/// Text that a UI could render as markup or run as script: tags, `javascript:` URLs,
/// control characters.
fn looks_like_markup(text: &str) -> bool {
    let lower = text.to_lowercase();
    text.contains(['<', '>'])
        || lower.contains("javascript:")
        || lower.contains("script")
        || text.chars().any(char::is_control)
}

/// What became of each message, for the summary (and the demo's check).
#[derive(Debug, Default)]
struct Outcomes {
    accepted: BTreeSet<i64>,
    rejected: BTreeSet<String>,
    cancelled: BTreeSet<i64>,
    expired: BTreeSet<i64>,
    duplicates: u32,
}

/// The offers on show and what the station remembers of finished ones.
struct Station {
    active: HashMap<i64, (JobOffer, Instant)>,
    /// Job ids seen (shown, expired or cancelled), oldest first, bounded.
    seen: VecDeque<i64>,
    seen_set: HashSet<i64>,
    /// How long one second of an offer's lifetime lasts (shorter in the demo).
    second: Duration,
    outcomes: Outcomes,
}

impl Station {
    fn new(second: Duration) -> Self {
        Self {
            active: HashMap::new(),
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
            second,
            outcomes: Outcomes::default(),
        }
    }

    fn remember(&mut self, job_id: i64) {
        if self.seen_set.insert(job_id) {
            self.seen.push_back(job_id);
            if self.seen.len() > MAX_REMEMBERED {
                if let Some(old) = self.seen.pop_front() {
                    self.seen_set.remove(&old);
                }
            }
        }
    }

    /// Handles one message; the caller acknowledges it afterwards whatever happened (a
    /// refused offer would come back forever otherwise).
    fn handle(&mut self, delivery: &Delivery, now: Instant) {
        let incoming = match delivery.json::<Incoming>() {
            Ok(incoming) => incoming,
            Err(error) => {
                println!("[station] refused a message: {error}");
                self.outcomes.rejected.insert("unreadable".into());
                return;
            }
        };
        match incoming {
            Incoming::Offer(offer) => {
                let id = offer.job_id;
                if self.seen_set.contains(&id) {
                    // A redelivery (the ack was lost with the connection) or a resend.
                    println!("[station] offer {id} seen before: ignored");
                    self.outcomes.duplicates += 1;
                    return;
                }
                if let Some(problem) = offer.problem() {
                    println!("[station] refused offer {id}: {problem}");
                    self.outcomes.rejected.insert(format!("job {id}"));
                    return;
                }
                if self.active.len() >= MAX_ACTIVE {
                    println!("[station] refused offer {id}: {MAX_ACTIVE} offers on show already");
                    self.outcomes.rejected.insert(format!("job {id}"));
                    return;
                }
                let seconds = u32::try_from(offer.offer_expires_in_seconds).unwrap_or(0);
                let expires = now + self.second * seconds;
                println!(
                    "[station] offer {id}: {} for {}, {:.2} (earn {:.2}), {seconds} s to accept",
                    offer.file_name, offer.customer, offer.total_price, offer.earnings
                );
                self.remember(id);
                self.outcomes.accepted.insert(id);
                self.active.insert(id, (offer, expires));
            }
            Incoming::Cancelled { job_id, message } => {
                self.remember(job_id);
                if self.active.remove(&job_id).is_some() {
                    println!(
                        "[station] offer {job_id} cancelled: {}",
                        message.as_deref().unwrap_or("no reason given")
                    );
                    self.outcomes.cancelled.insert(job_id);
                } else {
                    // Cancelled before it arrived, or after it expired: remembered either way,
                    // so that a late copy of the offer is not shown.
                    println!("[station] cancellation of offer {job_id}, which is not on show");
                }
            }
        }
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.active.values().map(|(_, at)| *at).min()
    }

    fn expire(&mut self, now: Instant) {
        let due: Vec<i64> = self
            .active
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.active.remove(&id);
            self.outcomes.expired.insert(id);
            println!("[station] offer {id} expired unanswered");
        }
    }
}

/// A stand-in for the call to the backend that issues the station's token. A real station
/// asks its backend here; the provider runs again before every reconnect, so an expired
/// token is never replayed.
fn issue_token(vendor: u64, attempt: Attempt) -> String {
    let issued = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("demo.vendor-{vendor}.attempt-{}.{issued}", attempt.number())
}

struct Options {
    vendor: u64,
    demo: bool,
    restart_node: Option<String>,
    run_for: Option<Duration>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        vendor: 7,
        demo: std::env::var("JOB_OFFERS_DEMO").is_ok_and(|v| v == "1"),
        restart_node: None,
        run_for: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} takes a value"));
        match arg.as_str() {
            "--demo" => options.demo = true,
            "--vendor" => {
                let v = value("--vendor")?;
                options.vendor = v.parse().map_err(|_| format!("bad vendor id `{v}`"))?;
            }
            "--restart-node" => options.restart_node = Some(value("--restart-node")?),
            "--for" => {
                let v = value("--for")?;
                let secs = v
                    .parse()
                    .map_err(|_| format!("bad number of seconds `{v}`"))?;
                options.run_for = Some(Duration::from_secs(secs));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.demo {
        // Its own queue, so that the demo never eats a real station's offers.
        options.vendor = 900_000 + u64::from(std::process::id());
    } else if options.restart_node.is_some() {
        return Err("--restart-node is for --demo only".into());
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            println!("[station] error: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let options = options()?;
    let (url, _embedded) = common::broker_url(true).await?;
    let login = std::env::var("STATION_LOGIN").unwrap_or_else(|_| "guest".into());
    let passcode = std::env::var("STATION_PASSCODE").unwrap_or_else(|_| "guest".into());
    let vendor = options.vendor;
    let asked = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&asked);
    let provider = move |endpoint: &Endpoint, attempt: Attempt| {
        counter.fetch_add(1, Ordering::Relaxed);
        // The endpoint's Display has no passcode; the token itself is never printed.
        println!("[station] credentials for {attempt} to {endpoint}");
        let credentials = Credentials::login(login.clone(), passcode.clone()).header(
            "Authorization",
            format!("Bearer {}", issue_token(vendor, attempt)),
        );
        async move { Ok(credentials) }
    };
    let client = Client::builder(&url)?
        .heart_beat(Duration::from_secs(10), Duration::from_secs(10))
        .credentials_provider(provider)
        .start()?;
    let mut events = client.events();
    timeout(Duration::from_secs(30), client.wait_connected()).await??;

    let queue = format!("/queue/job-offers-{vendor}");
    let mut subscribe = Subscribe::new(&queue)
        .ack(AckMode::ClientIndividual)
        .header("prefetch-count", PREFETCH)
        .receipt();
    if options.demo {
        // RabbitMQ deletes the demo's queue 5 minutes after its last consumer left.
        subscribe = subscribe.header("x-expires", "300000");
    }
    let mut offers = client.subscribe(subscribe).await?;
    println!("[station] listening on {queue}");

    // The demo compresses offer lifetimes (one second lasts 20 ms) to see them expire.
    let mut station = Station::new(if options.demo {
        Duration::from_millis(20)
    } else {
        Duration::from_secs(1)
    });
    let demo = options.demo.then(|| {
        let publisher = publish_demo(url.clone(), vendor, options.restart_node.clone());
        tokio::spawn(publisher)
    });
    let limit = if options.demo {
        Some(Duration::from_secs(120))
    } else {
        options.run_for
    };
    let stop_at = limit.map(|l| Instant::now() + l);
    let expected = demo.as_ref().map(|_| expected_outcomes());

    loop {
        if let Some(expected) = &expected {
            if demo_finished(&station, expected) {
                break;
            }
        }
        let expiry = station.next_expiry();
        tokio::select! {
            delivery = offers.next_delivery() => {
                let Some(delivery) = delivery else {
                    println!("[station] subscription ended: {:?}", offers.end_reason());
                    break;
                };
                station.handle(&delivery, Instant::now());
                if let Err(error) = delivery.ack().await {
                    // Delivered on a connection that is gone: the broker redelivers it.
                    println!("[station] ack not sent ({error}); the broker will redeliver");
                }
            }
            () = sleep_until(expiry.unwrap_or_else(Instant::now)), if expiry.is_some() => {
                station.expire(Instant::now());
            }
            event = events.recv() => log_event(&client, event),
            () = sleep_until(stop_at.unwrap_or_else(Instant::now)), if stop_at.is_some() => {
                println!("[station] time is up");
                break;
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    let stats = client.stats().await?;
    client.disconnect().await?;
    let outcomes = &station.outcomes;
    println!(
        "[station] summary: accepted {:?}, cancelled {:?}, expired {:?}, still on show {}, \
         refused {:?}, duplicates ignored {}, connections {}, credentials asked {} times",
        outcomes.accepted,
        outcomes.cancelled,
        outcomes.expired,
        station.active.len(),
        outcomes.rejected,
        outcomes.duplicates,
        stats.connections,
        asked.load(Ordering::Relaxed),
    );
    let Some(demo) = demo else {
        return Ok(true);
    };
    match timeout(Duration::from_secs(5), demo).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => return Err(format!("demo publisher: {error}").into()),
        Ok(Err(error)) => return Err(format!("demo publisher: {error}").into()),
        Err(_) => return Err("the demo publisher did not finish".into()),
    }
    let expected = expected_outcomes();
    let ok = outcomes.accepted == expected.accepted
        && outcomes.cancelled == expected.cancelled
        && outcomes.expired == expected.expired
        && outcomes.rejected == expected.rejected;
    println!(
        "[station] demo {}",
        if ok {
            "passed: every offer had the expected outcome"
        } else {
            "FAILED: outcomes differ from the expected ones"
        }
    );
    Ok(ok)
}

/// A state's name without its details (`Reconnecting { at: ... }` is `Reconnecting`).
fn name(state: &State) -> String {
    let shown = format!("{state:?}");
    shown
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn log_event(client: &Client, event: Result<ClientEvent, broadcast::error::RecvError>) {
    match event {
        Ok(ClientEvent::StateChanged { from, to, .. }) => {
            println!("[station] connection {} -> {}", name(&from), name(&to));
        }
        Ok(ClientEvent::AttemptFailed {
            attempt, failure, ..
        }) => {
            println!(
                "[station] {attempt} failed: {:?}: {}",
                failure.kind, failure.detail
            );
        }
        Ok(ClientEvent::GaveUp { reason }) => {
            // A station never stops: start over (the session's backoff paces it).
            println!("[station] gave up ({reason:?}); starting again");
            client.reconnect_now();
        }
        Ok(ClientEvent::ServerError { message, .. }) => {
            println!("[station] broker error: {}", message.unwrap_or_default());
        }
        Ok(_) => {}
        Err(broadcast::error::RecvError::Lagged(n)) => println!("[station] {n} events missed"),
        Err(broadcast::error::RecvError::Closed) => {}
    }
}

// ------------------------------------------------------------------ demo

fn offer(job_id: i64, file_name: &str, price: f64, expires: i64) -> Incoming {
    Incoming::Offer(JobOffer {
        job_id,
        tracking_code: format!("PJ{}", job_id.unsigned_abs()),
        file_name: file_name.into(),
        customer: "John Smith".into(),
        print_specs: "A4, Color, Double-sided, 2 copies".into(),
        total_price: price,
        earnings: price * 0.9,
        created_at: "2025-01-20T14:45:00".into(),
        is_anonymous: false,
        offer_expires_in_seconds: expires,
    })
}

/// Before the restart (if any): three good offers, one of them cancelled, and the refused.
fn first_batch() -> Vec<Result<Incoming, &'static str>> {
    vec![
        Ok(offer(1001, "thesis.pdf", 1.50, 90)),
        Ok(offer(1002, "flyer.pdf", 12.00, 30)),
        Ok(offer(1003, "poster.pdf", 40.00, 300)),
        Ok(offer(1004, "free.pdf", -1.0, 90)),
        Ok(offer(1005, "rush.pdf", 2.0, 10)),
        Ok(offer(1006, "<script>alert(1)</script>.pdf", 2.0, 90)),
        Ok(offer(0, "zero.pdf", 2.0, 90)),
        Err(r#"{"type":"NEW_JOB_OFFER","jobId":"#),
        Ok(Incoming::Cancelled {
            job_id: 1003,
            message: Some("accepted by another vendor".into()),
        }),
    ]
}

/// While the broker is down (or simply after the first batch): two more good offers.
fn second_batch() -> Vec<Result<Incoming, &'static str>> {
    vec![
        Ok(offer(1007, "menu.pdf", 3.20, 60)),
        Ok(offer(1008, "slides.pdf", 8.00, 120)),
    ]
}

fn expected_outcomes() -> Outcomes {
    Outcomes {
        accepted: [1001, 1002, 1003, 1007, 1008].into(),
        rejected: ["job 1004", "job 1005", "job 1006", "job 0", "unreadable"]
            .map(String::from)
            .into(),
        cancelled: [1003].into(),
        expired: [1001, 1002, 1007, 1008].into(),
        duplicates: 0,
    }
}

fn demo_finished(station: &Station, expected: &Outcomes) -> bool {
    let outcomes = &station.outcomes;
    station.active.is_empty()
        && outcomes.accepted.is_superset(&expected.accepted)
        && outcomes.rejected.is_superset(&expected.rejected)
        && outcomes.cancelled.is_superset(&expected.cancelled)
}

/// The backend's part in the demo: publishes the offers (persistent, receipted: they survive
/// a broker restart and are re-sent if the connection drops first), restarting the broker
/// between the two batches when asked to.
async fn publish_demo(
    url: String,
    vendor: u64,
    restart_node: Option<String>,
) -> Result<(), String> {
    let backend = timeout(Duration::from_secs(30), Client::connect(&url))
        .await
        .map_err(|_| "could not connect within 30 s".to_owned())?
        .map_err(|e| e.to_string())?;
    // `/amq/queue/` routes to the station's queue without declaring it again (RabbitMQ would
    // refuse a declaration without the station's `x-expires`).
    let destination = format!("/amq/queue/job-offers-{vendor}");
    let message = |item: Result<Incoming, &str>| -> Result<Message, String> {
        let message = match item {
            Ok(incoming) => Message::json(&destination, &incoming).map_err(|e| e.to_string())?,
            Err(text) => Message::new(&destination, text.to_owned()),
        };
        Ok(message.header("persistent", "true"))
    };
    let confirm = async |message: Message| {
        timeout(Duration::from_secs(30), backend.send_confirmed(message))
            .await
            .map_err(|_| "no receipt within 30 s".to_owned())?
            .map_err(|e| e.to_string())
    };
    for item in first_batch() {
        confirm(message(item)?).await?;
    }
    println!("[backend] first batch published");
    let Some(node) = restart_node else {
        for item in second_batch() {
            confirm(message(item)?).await?;
        }
        println!("[backend] second batch published");
        return backend.disconnect().await.map_err(|e| e.to_string());
    };
    // Let the station take the first batch before the broker goes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    rabbitmqctl(&node, "stop_app").await?;
    // Queued by the session while the broker is down, sent after the reconnect.
    let mut pending = Vec::new();
    for item in second_batch() {
        let backend = backend.clone();
        let message = message(item)?;
        pending.push(tokio::spawn(async move {
            backend.send_confirmed(message).await
        }));
    }
    println!("[backend] second batch queued while the broker is down");
    let started = rabbitmqctl(&node, "start_app").await;
    // The broker is back: no need to wait out the backoff.
    backend.reconnect_now();
    started?;
    for send in pending {
        timeout(Duration::from_secs(60), send)
            .await
            .map_err(|_| "no receipt within 60 s of the restart".to_owned())?
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    println!("[backend] second batch confirmed");
    backend.disconnect().await.map_err(|e| e.to_string())
}

async fn rabbitmqctl(node: &str, command: &str) -> Result<(), String> {
    println!("[backend] rabbitmqctl -n {node} {command}");
    let mut child = tokio::process::Command::new("rabbitmqctl")
        .args(["-n", node, command])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    match timeout(Duration::from_secs(60), child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("rabbitmqctl {command} failed ({status})")),
        Ok(Err(e)) => Err(format!("rabbitmqctl {command}: {e}")),
        Err(_) => Err(format!("rabbitmqctl {command} took over 60 s")),
    }
}
