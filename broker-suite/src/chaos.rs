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
