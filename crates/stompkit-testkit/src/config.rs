//! How the broker behaves: its dialect, versions, heart-beats, users and limits.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use stompkit_codec::{Limits, Version};

use crate::Error;

/// Which real broker the core imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// RabbitMQ's STOMP plugin: an EOL after every frame; destinations `/queue/NAME`,
    /// `/amq/queue/NAME`, `/topic/KEY` and `/exchange/NAME[/KEY]` (an unknown exchange is an
    /// `ERROR`); the `host` header names a virtual host, which must be configured (`/` by
    /// default); heart-beats below one second are raised to one second.
    #[default]
    RabbitMq,
    /// Spring's simple broker (`enableSimpleBroker`): every destination fans out to the
    /// subscriptions on exactly that destination, nothing is stored, `ack` modes are ignored
    /// (messages are delivered as `auto`, `ACK` and `NACK` are accepted and do nothing),
    /// receipts are sent only for `DISCONNECT`, and inbound frames are limited to 64 KiB.
    SpringSimple,
}

impl Dialect {
    /// The name used on command lines: `rabbitmq` or `spring-simple`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RabbitMq => "rabbitmq",
            Self::SpringSimple => "spring-simple",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Dialect {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "rabbitmq" => Ok(Self::RabbitMq),
            "spring-simple" => Ok(Self::SpringSimple),
            _ => Err(Error::InvalidConfig(
                "dialect must be `rabbitmq` or `spring-simple`",
            )),
        }
    }
}

/// Bounds on what one client can make the broker hold. Every violation is an `ERROR` frame
/// naming the limit, then the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerLimits {
    /// Inbound frame limits (size, header count, header line length).
    pub frame: Limits,
    /// Open connections, counting those not yet `CONNECT`ed. Default 4 096.
    pub max_connections: usize,
    /// Subscriptions per connection. Default 1 024.
    pub max_subscriptions: usize,
    /// Open transactions per connection. Default 64.
    pub max_transactions: usize,
    /// `SEND`, `ACK` and `NACK` frames held by one transaction. Default 10 000.
    pub max_transaction_frames: usize,
    /// Queues (named and per-subscription topic queues together). Default 10 000.
    pub max_queues: usize,
    /// Messages ready in one queue (not counting those delivered and not acknowledged).
    /// A `SEND` to a full named queue is an `ERROR`; a topic subscriber whose queue is full
    /// misses the message (counted in [`BrokerStats::dropped`](crate::BrokerStats)).
    /// Default 100 000.
    pub max_queue_messages: usize,
    /// Messages delivered and not yet acknowledged per subscription, unless the `SUBSCRIBE`
    /// sets a lower `prefetch-count`. Default 1 000.
    pub max_unacked: usize,
    /// Bytes waiting for [`Broker::poll_transmit`](crate::Broker::poll_transmit) per
    /// connection before the broker stops delivering messages to it (they wait in their
    /// queue, or go to another consumer). Default 1 MiB.
    pub max_output_bytes: usize,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        Self {
            frame: Limits::default(),
            max_connections: 4096,
            max_subscriptions: 1024,
            max_transactions: 64,
            max_transaction_frames: 10_000,
            max_queues: 10_000,
            max_queue_messages: 100_000,
            max_unacked: 1000,
            max_output_bytes: 1024 * 1024,
        }
    }
}

impl BrokerLimits {
    /// Sets [`frame`](Self::frame).
    pub fn with_frame(mut self, frame: Limits) -> Self {
        self.frame = frame;
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`max_subscriptions`](Self::max_subscriptions).
    pub fn with_max_subscriptions(mut self, n: usize) -> Self {
        self.max_subscriptions = n;
        self
    }

    /// Sets [`max_transactions`](Self::max_transactions).
    pub fn with_max_transactions(mut self, n: usize) -> Self {
        self.max_transactions = n;
        self
    }

    /// Sets [`max_transaction_frames`](Self::max_transaction_frames).
    pub fn with_max_transaction_frames(mut self, n: usize) -> Self {
        self.max_transaction_frames = n;
        self
    }

    /// Sets [`max_queues`](Self::max_queues).
    pub fn with_max_queues(mut self, n: usize) -> Self {
        self.max_queues = n;
        self
    }

    /// Sets [`max_queue_messages`](Self::max_queue_messages).
    pub fn with_max_queue_messages(mut self, n: usize) -> Self {
        self.max_queue_messages = n;
        self
    }

    /// Sets [`max_unacked`](Self::max_unacked).
    pub fn with_max_unacked(mut self, n: usize) -> Self {
        self.max_unacked = n;
        self
    }

    /// Sets [`max_output_bytes`](Self::max_output_bytes).
    pub fn with_max_output_bytes(mut self, n: usize) -> Self {
        self.max_output_bytes = n;
        self
    }
}

/// Everything about the broker that is fixed when it is made.
///
/// ```
/// use std::time::Duration;
/// use stompkit_testkit::{BrokerConfig, Dialect};
///
/// let config = BrokerConfig::new(Dialect::RabbitMq)
///     .with_user("guest", "guest")
///     .with_heart_beat_floor(Duration::from_millis(100));
/// assert_eq!(config.dialect(), Dialect::RabbitMq);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub(crate) dialect: Dialect,
    pub(crate) versions: Vec<Version>,
    pub(crate) heart_beat_floor: Duration,
    pub(crate) heart_beat_misses: u32,
    pub(crate) send_heartbeats: bool,
    pub(crate) heart_beat_versions: Vec<Version>,
    pub(crate) users: BTreeMap<String, String>,
    pub(crate) vhosts: Vec<String>,
    pub(crate) exchanges: Vec<String>,
    pub(crate) server: String,
    pub(crate) limits: BrokerLimits,
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passcodes stay out of logs: only the logins are shown.
        f.debug_struct("BrokerConfig")
            .field("dialect", &self.dialect)
            .field("versions", &self.versions)
            .field("heart_beat_floor", &self.heart_beat_floor)
            .field("heart_beat_misses", &self.heart_beat_misses)
            .field("send_heartbeats", &self.send_heartbeats)
            .field("heart_beat_versions", &self.heart_beat_versions)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("vhosts", &self.vhosts)
            .field("exchanges", &self.exchanges)
            .field("server", &self.server)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self::new(Dialect::default())
    }
}

impl BrokerConfig {
    /// The defaults of `dialect`: every STOMP version, any login accepted, virtual host `/`,
    /// exchanges `amq.topic`, `amq.direct` and `amq.fanout`, a heart-beat floor of one second
    /// for RabbitMQ and none for Spring, loss declared after two silent intervals, and
    /// [`BrokerLimits::default`] (with 64 KiB frames for Spring).
    pub fn new(dialect: Dialect) -> Self {
        let mut limits = BrokerLimits::default();
        let heart_beat_floor = match dialect {
            Dialect::RabbitMq => Duration::from_secs(1),
            Dialect::SpringSimple => {
                limits.frame = limits.frame.with_max_frame_bytes(64 * 1024);
                Duration::ZERO
            }
        };
        Self {
            dialect,
            versions: Version::ALL.to_vec(),
            heart_beat_floor,
            heart_beat_misses: 2,
            send_heartbeats: true,
            heart_beat_versions: vec![Version::V1_1, Version::V1_2],
            users: BTreeMap::new(),
            vhosts: vec!["/".to_owned()],
            exchanges: ["amq.topic", "amq.direct", "amq.fanout"]
                .map(str::to_owned)
                .to_vec(),
            server: concat!("stompkit-testkit/", env!("CARGO_PKG_VERSION")).to_owned(),
            limits,
        }
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The limits.
    pub fn limits(&self) -> &BrokerLimits {
        &self.limits
    }

    /// The versions the broker negotiates (default: all three).
    pub fn with_versions(mut self, versions: &[Version]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// The smallest heart-beat interval the broker agrees to, both ways: a client asking for
    /// less gets this (RabbitMQ answers `500,500` with `1000,1000`). Zero: whatever the
    /// client asks.
    pub fn with_heart_beat_floor(mut self, floor: Duration) -> Self {
        self.heart_beat_floor = floor;
        self
    }

    /// How many negotiated intervals may pass without a byte from the client before the
    /// broker closes the connection (default 2).
    pub fn with_heart_beat_misses(mut self, misses: u32) -> Self {
        self.heart_beat_misses = misses;
        self
    }

    /// Whether the broker sends the heart-beats it negotiated (default true; false to test a
    /// client's loss detection).
    pub fn with_sending_heartbeats(mut self, send: bool) -> Self {
        self.send_heartbeats = send;
        self
    }

    /// The versions on which the broker negotiates heart-beats (default 1.1 and 1.2, as the
    /// specification has them). Add 1.0 to imitate ActiveMQ, which honours a 1.0 `CONNECT`'s
    /// `heart-beat`; leave it empty for a broker without heart-beats (Spring's simple broker
    /// without a scheduler). On other versions `CONNECTED` says `heart-beat:0,0`.
    pub fn with_heart_beat_versions(mut self, versions: &[Version]) -> Self {
        self.heart_beat_versions = versions.to_vec();
        self
    }

    /// Accepts `login` with `passcode`. Once a user is configured, `CONNECT`s with another
    /// login or passcode are refused; with none, any login is accepted.
    pub fn with_user(mut self, login: impl Into<String>, passcode: impl Into<String>) -> Self {
        self.users.insert(login.into(), passcode.into());
        self
    }

    /// The virtual hosts a RabbitMQ-dialect `CONNECT` may name in `host` (default `/`; a
    /// `CONNECT` without `host` gets `/`).
    pub fn with_vhosts(mut self, vhosts: &[&str]) -> Self {
        self.vhosts = vhosts.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// The exchanges `/exchange/NAME/...` may name (default `amq.topic`, `amq.direct`,
    /// `amq.fanout`); each fans out by routing key like a topic.
    pub fn with_exchanges(mut self, exchanges: &[&str]) -> Self {
        self.exchanges = exchanges.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// The `server` header of `CONNECTED` (RabbitMQ dialect only).
    pub fn with_server(mut self, server: impl Into<String>) -> Self {
        self.server = server.into();
        self
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: BrokerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the values that would make the broker useless or unbounded.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.versions.is_empty() {
            return Err(Error::InvalidConfig("at least one STOMP version is needed"));
        }
        if self.heart_beat_misses == 0 {
            return Err(Error::InvalidConfig("heart_beat_misses must be at least 1"));
        }
        let l = &self.limits;
        if l.max_connections == 0
            || l.max_subscriptions == 0
            || l.max_queues == 0
            || l.max_queue_messages == 0
            || l.max_unacked == 0
            || l.max_output_bytes == 0
        {
            return Err(Error::InvalidConfig(
                "limits on connections, subscriptions, queues, queue messages, unacknowledged messages and output must be at least 1",
            ));
        }
        Ok(())
    }
}
