//! Everything a [`Session`](crate::Session) is configured with.

use std::time::Duration;

use stompkit_codec::{Limits, Version};
use stompkit_policy::{BackoffConfig, BreakerConfig};

/// What happens to a new message when the outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// [`Session::send`](crate::Session::send) fails with
    /// [`SendError::QueueFull`](crate::SendError::QueueFull), handing the message back.
    #[default]
    RejectNew,
    /// The new message is queued; the oldest message of the lowest priority present is
    /// dropped and reported with [`Event::MessageDropped`](crate::Event::MessageDropped).
    DropOldest,
}

/// Bounds of the queue that holds messages sent while disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most messages queued. Default 1000.
    pub max_messages: usize,
    /// Most bytes queued (approximate wire size). Default 8 MiB.
    pub max_bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_messages: 1000,
            max_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Configuration of a [`Session`](crate::Session). Start from [`Default`] and chain the
/// `with_*` setters, or set the public fields.
///
/// | field | default |
/// |---|---|
/// | `accept_versions` | 1.0, 1.1, 1.2 |
/// | `host` | `/` (RabbitMQ reads it as the virtual host) |
/// | `heart_beat` | (10 s, 10 s) |
/// | `heartbeat_grace` | 2.0 |
/// | `connect_timeout` | 10 s |
/// | `receipt_timeout` | 30 s |
/// | `disconnect_timeout` | 5 s |
/// | `limits` | codec defaults |
/// | `queue` | 1000 messages, 8 MiB |
/// | `overflow` | [`OverflowPolicy::RejectNew`] |
/// | `duplicate_filter` | 1024 message ids |
/// | `history` | 16 attempts |
/// | `backoff` | policy default (exponential from 1 s, full jitter, 100 ms..30 s) |
/// | `breaker` | policy default (opens after 5 failures in a row for 30 s) |
/// | `seed` | 0 |
/// | `auth_retries` | 0 |
/// | `max_tracked_destinations` | 256 |
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Versions offered in `accept-version`. A `CONNECTED` naming another is refused.
    pub accept_versions: Vec<Version>,
    /// Heart-beat wish `(cx, cy)`: how often we can send, how often we want to receive.
    /// Zero disables a direction.
    pub heart_beat: (Duration, Duration),
    /// How long past the negotiated receive interval silence is tolerated: the connection is
    /// declared dead after `interval * heartbeat_grace` without a byte. At least 1.0.
    pub heartbeat_grace: f64,
    /// The `host` header (the virtual host on RabbitMQ).
    pub host: String,
    /// Time from opening the transport to `CONNECTED` before the attempt fails.
    pub connect_timeout: Duration,
    /// Time a receipt is waited for once its frame was sent.
    pub receipt_timeout: Duration,
    /// Time the `DISCONNECT` receipt is waited for.
    pub disconnect_timeout: Duration,
    /// Decoder limits for what the broker sends.
    pub limits: Limits,
    /// Bounds of the outbound queue.
    pub queue: QueueLimits,
    /// What to do when the queue is full.
    pub overflow: OverflowPolicy,
    /// How many recent `message-id`s the duplicate filter remembers; 0 disables it.
    pub duplicate_filter: usize,
    /// How many recent connection attempts [`Session::attempts`](crate::Session::attempts)
    /// keeps.
    pub history: usize,
    /// Delays between attempts, and when to give up.
    pub backoff: BackoffConfig,
    /// When to stop trying for a while after repeated failures.
    pub breaker: BreakerConfig,
    /// Seed of the jitter's random numbers (give each client its own).
    pub seed: u64,
    /// How many handshakes refused by the broker (bad credentials, unknown virtual host) in a
    /// row are retried before giving up; 0 gives up at the first.
    pub auth_retries: u32,
    /// Destinations counted one by one in [`Stats`](crate::Stats); more are counted together.
    pub max_tracked_destinations: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            accept_versions: Version::ALL.to_vec(),
            host: "/".to_owned(),
            heart_beat: (Duration::from_secs(10), Duration::from_secs(10)),
            heartbeat_grace: 2.0,
            connect_timeout: Duration::from_secs(10),
            receipt_timeout: Duration::from_secs(30),
            disconnect_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            queue: QueueLimits::default(),
            overflow: OverflowPolicy::RejectNew,
            duplicate_filter: 1024,
            history: 16,
            backoff: BackoffConfig::default(),
            breaker: BreakerConfig::default(),
            seed: 0,
            auth_retries: 0,
            max_tracked_destinations: 256,
        }
    }
}

impl SessionConfig {
    /// Sets [`accept_versions`](Self::accept_versions).
    pub fn with_versions(mut self, versions: impl IntoIterator<Item = Version>) -> Self {
        self.accept_versions = versions.into_iter().collect();
        self
    }

    /// Sets [`host`](Self::host).
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets [`heart_beat`](Self::heart_beat): `send` is how often we can send (the spec's
    /// `cx`), `receive` how often we want to hear from the broker (`cy`). Zero disables a
    /// direction. Sent in whole milliseconds.
    pub fn with_heart_beat(mut self, send: Duration, receive: Duration) -> Self {
        self.heart_beat = (send, receive);
        self
    }

    /// Sets [`heartbeat_grace`](Self::heartbeat_grace).
    pub fn with_heartbeat_grace(mut self, grace: f64) -> Self {
        self.heartbeat_grace = grace;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`receipt_timeout`](Self::receipt_timeout).
    pub fn with_receipt_timeout(mut self, timeout: Duration) -> Self {
        self.receipt_timeout = timeout;
        self
    }

    /// Sets [`disconnect_timeout`](Self::disconnect_timeout).
    pub fn with_disconnect_timeout(mut self, timeout: Duration) -> Self {
        self.disconnect_timeout = timeout;
        self
    }

    /// Sets [`limits`](Self::limits).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`queue`](Self::queue).
    pub fn with_queue(mut self, max_messages: usize, max_bytes: usize) -> Self {
        self.queue = QueueLimits {
            max_messages,
            max_bytes,
        };
        self
    }

    /// Sets [`overflow`](Self::overflow).
    pub fn with_overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Sets [`duplicate_filter`](Self::duplicate_filter).
    pub fn with_duplicate_filter(mut self, capacity: usize) -> Self {
        self.duplicate_filter = capacity;
        self
    }

    /// Sets [`history`](Self::history).
    pub fn with_history(mut self, attempts: usize) -> Self {
        self.history = attempts;
        self
    }

    /// Sets [`backoff`](Self::backoff).
    pub fn with_backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets [`breaker`](Self::breaker).
    pub fn with_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Sets [`seed`](Self::seed).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`auth_retries`](Self::auth_retries).
    pub fn with_auth_retries(mut self, retries: u32) -> Self {
        self.auth_retries = retries;
        self
    }
}
