//! Everything a [`Session`](crate::Session) is configured with.

use std::time::Duration;

use stompkit_codec::{Limits, Version};
use stompkit_policy::{BackoffConfig, BreakerConfig};

use crate::Error;

/// What happens to a new message when the outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// [`Session::send`](crate::Session::send) fails with
    /// [`Error::QueueFull`](crate::Error::QueueFull) in a [`SendError`](crate::SendError),
    /// handing the message back.
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
/// | `max_send_frame_bytes` | the codec's default frame limit |
/// | `send_window` | 1024 unconfirmed receipted sends |
/// | `healthy_after` | 5 s |
/// | `poison_after` | 3 connections |
/// | `message_id_header` | `stompkit-id` |
/// | `client_id` | 16 hex digits derived from `seed` |
///
/// [`validate`](Self::validate) checks the settings; [`Session::new`](crate::Session::new)
/// calls it. A timeout of [`Duration::MAX`] means "never".
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
    /// Largest `SEND` frame the session writes; a larger message is refused by
    /// [`send`](crate::Session::send) with [`Error::FrameTooLarge`](crate::Error::FrameTooLarge).
    /// Set it to what the broker accepts (Spring's simple broker: 64 KiB).
    pub max_send_frame_bytes: usize,
    /// Most receipted sends (outside transactions) written and not yet confirmed. Beyond it
    /// [`send`](crate::Session::send) puts messages in the outbound queue, as it does while
    /// disconnected, and the queue's limits and overflow policy apply. At least 1.
    pub send_window: usize,
    /// How long a connection must stay up before it counts as healthy: only then are the
    /// backoff and the failure count reset and the circuit breaker told of a success. A
    /// connection that fails sooner counts as a failed attempt.
    pub healthy_after: Duration,
    /// A receipted message or a subscription that the broker refused with an `ERROR` on this
    /// many connections in a row is reported and no longer sent (see
    /// [`DropReason::Poisoned`](crate::DropReason::Poisoned) and
    /// [`SubscriptionEnd::Refused`](crate::SubscriptionEnd::Refused)). At least 1.
    pub poison_after: u32,
    /// Header carrying a stable id on every receipted `SEND`, the same on each re-send, so
    /// that consumers recognise an at-least-once re-send. `None` leaves it out. Incoming
    /// messages with this header are checked against the duplicate filter by it.
    pub message_id_header: Option<String>,
    /// The first part of the stable message ids (`{client_id}-{n}`). Give each producer its
    /// own, or its own [`seed`](Self::seed) (the default is derived from it).
    pub client_id: Option<String>,
    /// Put a `content-length` header on every frame with a body (default `true`), as the
    /// specification recommends; a broker then reads the body by its length instead of
    /// scanning it for the NUL that ends it (RabbitMQ takes 1 MiB messages about three
    /// times faster so). `false` adds it only to bodies holding a NUL.
    pub content_length: bool,
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
            max_send_frame_bytes: Limits::default().max_frame_bytes,
            send_window: 1024,
            healthy_after: Duration::from_secs(5),
            poison_after: 3,
            message_id_header: Some("stompkit-id".to_owned()),
            client_id: None,
            content_length: true,
        }
    }
}

impl SessionConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first setting out of range: no version offered,
    /// a grace factor below 1.0 or not finite, a zero send window, frame limit or
    /// `poison_after`, a header name or client id that cannot be written, or an invalid
    /// backoff or breaker.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid =
            |setting: &'static str, reason: String| Error::InvalidConfig { setting, reason };
        if self.accept_versions.is_empty() {
            return Err(invalid("accept_versions", "offers no version".into()));
        }
        if !self.heartbeat_grace.is_finite() || self.heartbeat_grace < 1.0 {
            return Err(invalid(
                "heartbeat_grace",
                format!("is {}, must be at least 1.0", self.heartbeat_grace),
            ));
        }
        if self.send_window == 0 {
            return Err(invalid("send_window", "must be at least 1".into()));
        }
        if self.poison_after == 0 {
            return Err(invalid("poison_after", "must be at least 1".into()));
        }
        if self.max_send_frame_bytes == 0 {
            return Err(invalid("max_send_frame_bytes", "must be at least 1".into()));
        }
        if let Some(name) = &self.message_id_header {
            if name.is_empty() || name.bytes().any(|b| matches!(b, b':' | b'\n' | b'\r' | 0)) {
                return Err(invalid(
                    "message_id_header",
                    format!("{name:?} is not a header name (empty, or holds ':' or a line break)"),
                ));
            }
        }
        if let Some(id) = &self.client_id {
            if id.bytes().any(|b| matches!(b, b'\n' | b'\r' | 0)) {
                return Err(invalid("client_id", "holds a line break or NUL".into()));
            }
        }
        self.backoff
            .validate()
            .map_err(|e| invalid("backoff", e.to_string()))?;
        self.breaker
            .validate()
            .map_err(|e| invalid("breaker", e.to_string()))?;
        Ok(())
    }

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

    /// Sets [`max_send_frame_bytes`](Self::max_send_frame_bytes).
    pub fn with_max_send_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_send_frame_bytes = bytes;
        self
    }

    /// Sets [`send_window`](Self::send_window).
    pub fn with_send_window(mut self, unconfirmed: usize) -> Self {
        self.send_window = unconfirmed;
        self
    }

    /// Sets [`healthy_after`](Self::healthy_after).
    pub fn with_healthy_after(mut self, after: Duration) -> Self {
        self.healthy_after = after;
        self
    }

    /// Sets [`poison_after`](Self::poison_after).
    pub fn with_poison_after(mut self, connections: u32) -> Self {
        self.poison_after = connections;
        self
    }

    /// Sets [`message_id_header`](Self::message_id_header).
    pub fn with_message_id_header(mut self, name: Option<String>) -> Self {
        self.message_id_header = name;
        self
    }

    /// Sets [`client_id`](Self::client_id).
    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Sets [`content_length`](Self::content_length).
    pub fn with_content_length(mut self, always: bool) -> Self {
        self.content_length = always;
        self
    }

    /// Sets [`auth_retries`](Self::auth_retries).
    pub fn with_auth_retries(mut self, retries: u32) -> Self {
        self.auth_retries = retries;
        self
    }
}
