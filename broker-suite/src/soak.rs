//! The soak run: one client sends to its own queue at a steady rate and consumes it, through
//! the testkit's fault proxy with a fault every so often, for a set time; the process's
//! resident memory, open file descriptors and live tasks are sampled every few seconds and
//! their slope per hour reported. Every message confirmed by a receipt must arrive.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use stompkit_testkit::{Direction, Proxy};
use stompkit_tokio::{AckMode, Message};
use tokio::sync::Mutex;

use crate::chaos::{Rng, chaos_client};
use crate::resources::{Sample, settle, slope};
use crate::{TestQueue, try_broker};

/// A set of message numbers, one bit each: the run's own bookkeeping grows by 2 bits per
/// message (45 KB an hour at 50 messages a second), so it does not hide the client's slope.
#[derive(Debug, Default)]
struct Bits {
    words: Vec<u64>,
    count: u64,
}

impl Bits {
    /// Adds `n`; whether it was new.
    fn set(&mut self, n: u64) -> bool {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        let new = self.words[word] & (1 << bit) == 0;
        self.words[word] |= 1 << bit;
        self.count += u64::from(new);
        new
    }

    /// How many of these are not in `other`.
    fn missing_from(&self, other: &Self) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| u64::from((w & !other.words.get(i).copied().unwrap_or(0)).count_ones()))
            .sum()
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// How long to run.
    pub duration: Duration,
    /// Messages sent per second.
    pub rate: u32,
    /// A fault (cut, mid-frame cut or stall, in turn) this often.
    pub fault_every: Duration,
    /// A sample this often.
    pub sample_every: Duration,
    /// Samples taken before this are left out of the slopes (caches and pools fill up).
    pub warm_up: Duration,
    /// Seed of the fault parameters.
    pub seed: u64,
    /// Each sample is appended here as a JSON line as it is taken (so a cut-short run keeps
    /// its figures).
    pub samples_file: Option<PathBuf>,
}

/// One sample.
#[derive(Debug, Clone, Serialize)]
pub struct SoakSample {
    /// Seconds since the start.
    pub at_s: f64,
    /// The process's resources.
    #[serde(flatten)]
    pub resources: Sample,
    /// Messages confirmed so far.
    pub confirmed: u64,
    /// Distinct messages delivered so far.
    pub delivered: u64,
    /// Reconnections so far.
    pub reconnections: u64,
}

/// What a soak run found.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// How long it ran, in seconds.
    pub ran_s: f64,
    /// Messages sent and confirmed.
    pub confirmed: u64,
    /// Send errors (their messages count as lost if never delivered).
    pub send_errors: u64,
    /// Distinct messages delivered.
    pub delivered: u64,
    /// Confirmed messages never delivered.
    pub lost: u64,
    /// Deliveries of a message already delivered.
    pub duplicates: u64,
    /// Faults applied.
    pub faults: u64,
    /// The client's reconnections.
    pub reconnections: u64,
    /// Resident memory slope after the warm-up, KiB per hour.
    pub rss_kib_per_hour: f64,
    /// Open fd slope after the warm-up, per hour.
    pub fds_per_hour: f64,
    /// Live task slope after the warm-up, per hour.
    pub tasks_per_hour: f64,
    /// The first sample, the last, and the highest resident memory seen.
    pub first: Option<SoakSample>,
    /// The last sample.
    pub last: Option<SoakSample>,
    /// Highest resident memory, KiB.
    pub max_rss_kib: u64,
    /// Resources before the client started and after it closed (settled).
    pub before: Sample,
    /// After.
    pub after: Sample,
    /// Every sample.
    pub samples: Vec<SoakSample>,
}

impl SoakReport {
    /// The checks that failed (empty: passed).
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.lost > 0 {
            failures.push(format!("{} confirmed messages never delivered", self.lost));
        }
        if self.after.tasks > self.before.tasks {
            failures.push(format!(
                "tasks: {} before, {} after",
                self.before.tasks, self.after.tasks
            ));
        }
        if self.after.fds > self.before.fds {
            failures.push(format!(
                "open fds: {} before, {} after",
                self.before.fds, self.after.fds
            ));
        }
        failures
    }

    /// A text summary.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let row = |t: &mut String, k: &str, v: String| t.push_str(&format!("  {k:<28} {v}\n"));
        t.push_str("soak\n");
        row(
            &mut t,
            "ran",
            format!("{:.0} s ({:.1} min)", self.ran_s, self.ran_s / 60.0),
        );
        row(&mut t, "confirmed sends", self.confirmed.to_string());
        row(&mut t, "send errors", self.send_errors.to_string());
        row(&mut t, "delivered (distinct)", self.delivered.to_string());
        row(&mut t, "lost", self.lost.to_string());
        row(&mut t, "duplicates", self.duplicates.to_string());
        row(&mut t, "faults", self.faults.to_string());
        row(&mut t, "reconnections", self.reconnections.to_string());
        row(&mut t, "samples", self.samples.len().to_string());
        if let (Some(first), Some(last)) = (&self.first, &self.last) {
            row(
                &mut t,
                "RSS first / last / max",
                format!(
                    "{} / {} / {} KiB",
                    first.resources.rss_kib, last.resources.rss_kib, self.max_rss_kib
                ),
            );
            row(
                &mut t,
                "fds first / last",
                format!("{} / {}", first.resources.fds, last.resources.fds),
            );
            row(
                &mut t,
                "tasks first / last",
                format!("{} / {}", first.resources.tasks, last.resources.tasks),
            );
        }
        row(
            &mut t,
            "RSS slope",
            format!("{:+.0} KiB/h", self.rss_kib_per_hour),
        );
        row(&mut t, "fd slope", format!("{:+.2} /h", self.fds_per_hour));
        row(
            &mut t,
            "task slope",
            format!("{:+.2} /h", self.tasks_per_hour),
        );
        row(
            &mut t,
            "before / after (settled)",
            format!(
                "tasks {} / {}, fds {} / {}, RSS {} / {} KiB",
                self.before.tasks,
                self.after.tasks,
                self.before.fds,
                self.after.fds,
                self.before.rss_kib,
                self.after.rss_kib
            ),
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

/// Runs a soak against the local RabbitMQ node (through a proxy on loopback).
///
/// # Errors
/// Setting up failed (no broker, no proxy, no first connection).
pub async fn run(config: SoakConfig) -> Result<SoakReport, String> {
    let before = Sample::now();
    let env = try_broker()?;
    let proxy = Proxy::builder(env.tcp.clone())
        .start()
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    let client = chaos_client(&proxy.url())?
        .start()
        .map_err(|e| format!("client: {e}"))?;
    tokio::time::timeout(Duration::from_secs(30), client.wait_connected())
        .await
        .map_err(|_| "no connection within 30 s".to_owned())?
        .map_err(|e| format!("connecting: {e}"))?;
    let queue = TestQueue::new("soak");
    let mut subscription = tokio::time::timeout(
        Duration::from_secs(30),
        client.subscribe(
            queue
                .subscribe()
                .ack(AckMode::ClientIndividual)
                .header("prefetch-count", "100"),
        ),
    )
    .await
    .map_err(|_| "no SUBSCRIBE receipt within 30 s".to_owned())?
    .map_err(|e| format!("subscribing: {e}"))?;

    let confirmed = Arc::new(Mutex::new(Bits::default()));
    let confirmed_count = Arc::new(AtomicU64::new(0));
    let send_errors = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(Mutex::new(Bits::default()));
    let delivered_count = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + config.duration;

    // Producer: a steady rate, receipts awaited by a second task so sends never wait on them.
    let (conf_tx, mut conf_rx) = tokio::sync::mpsc::channel(1024);
    let producer = {
        let client = client.clone();
        let destination = queue.send_destination();
        let send_errors = Arc::clone(&send_errors);
        let rate = config.rate.max(1);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                let message =
                    Message::new(destination.clone(), n.to_string()).header("persistent", "true");
                match client.send_with_receipt(message).await {
                    Ok(confirmation) => {
                        if conf_tx.send((n, confirmation)).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => {
                        send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
        })
    };
    let confirmer = {
        let confirmed = Arc::clone(&confirmed);
        let confirmed_count = Arc::clone(&confirmed_count);
        let send_errors = Arc::clone(&send_errors);
        tokio::spawn(async move {
            while let Some((n, confirmation)) = conf_rx.recv().await {
                if confirmation.confirmed().await.is_ok() {
                    confirmed.lock().await.set(n);
                    confirmed_count.fetch_add(1, Ordering::Relaxed);
                } else {
                    send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let consumer = {
        let delivered = Arc::clone(&delivered);
        let delivered_count = Arc::clone(&delivered_count);
        let duplicates = Arc::clone(&duplicates);
        tokio::spawn(async move {
            while let Some(delivery) = subscription.next_delivery().await {
                let n: Option<u64> = std::str::from_utf8(delivery.body())
                    .ok()
                    .and_then(|s| s.parse().ok());
                if let Some(n) = n {
                    if delivered.lock().await.set(n) {
                        delivered_count.fetch_add(1, Ordering::Relaxed);
                    } else {
                        duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // A refused ACK is fine: the broker redelivers the message.
                let _ = delivery.ack().await;
            }
        })
    };

    let mut rng = Rng::new(config.seed);
    let mut samples = Vec::new();
    let mut faults = 0u64;
    let mut next_fault = started + config.fault_every;
    let mut next_sample = started;
    let mut file = match &config.samples_file {
        Some(path) => {
            Some(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_sample {
            let reconnections =
                match tokio::time::timeout(Duration::from_secs(5), client.stats()).await {
                    Ok(Ok(stats)) => stats.reconnections,
                    _ => samples.last().map_or(0, |s: &SoakSample| s.reconnections),
                };
            let sample = SoakSample {
                at_s: started.elapsed().as_secs_f64(),
                resources: Sample::now(),
                confirmed: confirmed_count.load(Ordering::Relaxed),
                delivered: delivered_count.load(Ordering::Relaxed),
                reconnections,
            };
            if let Some(file) = file.as_mut() {
                let line = serde_json::to_string(&sample).unwrap_or_default();
                let _ = writeln!(file, "{line}");
            }
            tracing::info!(?sample, "soak sample");
            samples.push(sample);
            next_sample += config.sample_every;
        }
        if now >= next_fault {
            match faults % 3 {
                0 => proxy.cut_all(),
                1 => proxy.cut_after(
                    if rng.below(2) == 0 {
                        Direction::ToClient
                    } else {
                        Direction::ToUpstream
                    },
                    1 + rng.below(2000),
                ),
                _ => proxy.stall(Some(Duration::from_millis(500 + rng.below(2500)))),
            }
            faults += 1;
            next_fault += config.fault_every;
        }
        let wake = next_sample.min(next_fault).min(end);
        tokio::time::sleep(wake.saturating_duration_since(Instant::now())).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), producer).await;
    let _ = tokio::time::timeout(Duration::from_secs(60), confirmer).await;
    // Lets the last confirmed messages arrive (bounded).
    let drain_until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < drain_until {
        let missing = {
            let confirmed = confirmed.lock().await;
            let delivered = delivered.lock().await;
            confirmed.missing_from(&delivered)
        };
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reconnections = match tokio::time::timeout(Duration::from_secs(5), client.stats()).await {
        Ok(Ok(stats)) => stats.reconnections,
        _ => 0,
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), client.disconnect()).await;
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(10), consumer).await;
    proxy.shutdown().await;
    // The samples file was opened after the first reading.
    drop(file);
    let after = settle(before, Duration::from_secs(10)).await;

    let (lost, confirmed_total, delivered_total) = {
        let confirmed = confirmed.lock().await;
        let delivered = delivered.lock().await;
        (
            confirmed.missing_from(&delivered),
            confirmed.count,
            delivered.count,
        )
    };
    let warm = config.warm_up.as_secs_f64();
    let steady: Vec<&SoakSample> = samples.iter().filter(|s| s.at_s >= warm).collect();
    let per_hour = |f: fn(&SoakSample) -> f64| {
        let points: Vec<(f64, f64)> = steady.iter().map(|s| (s.at_s / 3600.0, f(s))).collect();
        slope(&points)
    };
    Ok(SoakReport {
        ran_s: started.elapsed().as_secs_f64(),
        confirmed: confirmed_total,
        send_errors: send_errors.load(Ordering::Relaxed),
        delivered: delivered_total,
        lost,
        duplicates: duplicates.load(Ordering::Relaxed),
        faults,
        reconnections,
        rss_kib_per_hour: per_hour(|s| s.resources.rss_kib as f64),
        fds_per_hour: per_hour(|s| s.resources.fds as f64),
        tasks_per_hour: per_hour(|s| s.resources.tasks as f64),
        first: samples.first().cloned(),
        last: samples.last().cloned(),
        max_rss_kib: samples
            .iter()
            .map(|s| s.resources.rss_kib)
            .max()
            .unwrap_or(0),
        before,
        after,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_count_and_compare() {
        let (mut a, mut b) = (Bits::default(), Bits::default());
        assert!(a.set(3) && a.set(200) && a.set(64));
        assert!(!a.set(3));
        assert_eq!(a.count, 3);
        assert!(b.set(200));
        assert_eq!(a.missing_from(&b), 2);
        assert_eq!(b.missing_from(&a), 0);
    }
}
