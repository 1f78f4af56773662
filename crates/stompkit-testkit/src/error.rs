//! The crate's error type.

use crate::ConnectionId;

/// What can go wrong when setting up or driving the broker. Protocol errors made by clients
/// are not `Error`s: they are answered with an `ERROR` frame and a closed connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid broker configuration: {0}")]
    InvalidConfig(&'static str),
    /// [`Broker::open`](crate::Broker::open) with
    /// [`BrokerLimits::max_connections`](crate::BrokerLimits::max_connections) connections open.
    #[error("too many connections ({max}); raise BrokerLimits::max_connections")]
    TooManyConnections {
        /// The configured limit.
        max: usize,
    },
    /// The connection is closed or was never opened.
    #[error("unknown connection {0}")]
    UnknownConnection(ConnectionId),
    /// [`Broker::publish`](crate::Broker::publish) to a destination the dialect does not know.
    #[error("invalid destination {destination:?}: {reason}")]
    InvalidDestination {
        /// The destination.
        destination: String,
        /// Why it was refused.
        reason: String,
    },
    /// A queue is full or no more queues may be made.
    #[error("{0}")]
    Full(String),
    /// Binding a listener failed (embedded broker, proxy).
    #[cfg(any(feature = "embedded", feature = "proxy"))]
    #[error("cannot bind {what} listener: {source}")]
    Bind {
        /// `TCP`, `WebSocket`, `TLS` or `proxy`.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The proxy's upstream address does not resolve.
    #[cfg(feature = "proxy")]
    #[error("cannot resolve the proxy's upstream {upstream:?}: {source}")]
    Upstream {
        /// The address as given (`host:port`).
        upstream: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The embedded broker's TLS certificates or configuration could not be made.
    #[cfg(feature = "tls")]
    #[error("cannot set up TLS: {reason}")]
    Tls {
        /// What failed.
        reason: String,
    },
    /// The embedded broker has been shut down.
    #[cfg(feature = "embedded")]
    #[error("the embedded broker is shut down")]
    Stopped,
}
