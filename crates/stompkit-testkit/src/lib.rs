//! A STOMP broker for tests and demos.
//!
//! - [`Broker`] is a sans-IO broker core with the shape of the stompkit session: bytes and
//!   [`Instant`](std::time::Instant)s in; bytes, closes, events and deadlines out, per
//!   connection. Tests drive it in virtual time, with no sockets and no sleeping.
//! - With the default `embedded` feature, [`EmbeddedBroker`] serves the same core over TCP
//!   and WebSocket on ephemeral loopback ports; with the `tls` feature also over TLS, with a
//!   CA and certificate generated at each start.
//! - With the default `proxy` feature, [`Proxy`] is a fault-injecting TCP proxy to put in
//!   front of any broker: cuts, stalls, latency, bandwidth limits, refusals, on demand or
//!   from a seeded [`FaultSchedule`].
//!
//! The core speaks STOMP 1.0, 1.1 and 1.2 and imitates a real broker's [`Dialect`]: queues
//! (each message to one consumer, in turn), topics (each message to every subscriber),
//! `auto`, `client` (cumulative) and `client-individual` acknowledgements with redelivery
//! (`redelivered:true`) of what a consumer left unacknowledged, `NACK`, receipts,
//! heart-beats both ways with loss detection, transactions, and an `ERROR` followed by a
//! close for anything malformed or over a [limit](BrokerLimits).
//!
//! ```
//! use std::time::Instant;
//! use stompkit_testkit::{Broker, BrokerConfig};
//!
//! let now = Instant::now();
//! let mut broker = Broker::new(BrokerConfig::default())?;
//! let consumer = broker.open(now)?;
//! broker.handle_input(now, consumer, b"CONNECT\naccept-version:1.2\n\n\0");
//! broker.handle_input(now, consumer, b"SUBSCRIBE\nid:0\ndestination:/queue/jobs\n\n\0");
//! broker.publish("/queue/jobs", &[], "hello")?;
//! let out = broker.poll_transmit(consumer).expect("CONNECTED and MESSAGE");
//! assert!(out.ends_with(b"\n\nhello\0\n"));
//! # Ok::<(), stompkit_testkit::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without the feature the type is not built: its link goes to the published docs instead.
#![cfg_attr(
    not(feature = "embedded"),
    doc = "\n[`EmbeddedBroker`]: https://docs.rs/stompkit-testkit/latest/stompkit_testkit/struct.EmbeddedBroker.html"
)]
#![cfg_attr(
    not(feature = "proxy"),
    doc = "\n[`Proxy`]: https://docs.rs/stompkit-testkit/latest/stompkit_testkit/struct.Proxy.html\n[`FaultSchedule`]: https://docs.rs/stompkit-testkit/latest/stompkit_testkit/struct.FaultSchedule.html"
)]

mod broker;
mod config;
#[cfg(feature = "embedded")]
mod embedded;
mod error;
#[cfg(feature = "proxy")]
mod proxy;
#[cfg(feature = "tls")]
mod tls;

#[cfg(feature = "__fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use broker::{Broker, BrokerEvent, BrokerStats, CloseReason, ConnectionId, Held};
pub use config::{BrokerConfig, BrokerLimits, Dialect};
#[cfg(feature = "embedded")]
pub use embedded::{EmbeddedBroker, EmbeddedBrokerBuilder};
pub use error::Error;
#[cfg(feature = "proxy")]
pub use proxy::{Direction, Fault, FaultIter, FaultSchedule, Proxy, ProxyBuilder, ProxyStats};

/// The README's examples, compiled (and the first run) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
