#![doc = include_str!("../README.md")]
//!
//! # Map of the crate
//!
//! - [`Session`]: the state machine; [`SessionConfig`] configures it.
//! - Inputs the caller builds: [`Credentials`], [`Message`], [`Subscribe`], [`AckOptions`].
//! - Outputs for the driver: [`Directive`] (open or close a transport, for an [`Attempt`]),
//!   [`Transmit`] (bytes with frame boundaries).
//! - Outputs for the application: [`Event`] (with [`State`], [`Cause`], [`Failure`],
//!   [`ReceiptOutcome`], [`SubscriptionEnd`], ...), [`Stats`], [`AttemptRecord`].
//! - Ids and handles: [`SubscriptionId`], [`SendId`], [`TransactionId`], [`DeliveryId`],
//!   [`ReceiptId`], [`MessageHandle`].
//! - Errors: [`Error`], and [`SendError`], which hands the refused message back.
//! - The crates underneath, re-exported so one dependency is enough: [`codec`] (frames),
//!   [`policy`] (backoff and circuit breaker).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod credentials;
mod dedup;
mod digits;
mod error;
mod event;
mod heartbeat;
mod ids;
mod queue;
mod request;
mod retry;
mod session;
mod stats;
mod transmit;

#[cfg(feature = "__fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use config::{OverflowPolicy, QueueLimits, SessionConfig};
pub use credentials::Credentials;
pub use error::{Error, SendError};
pub use event::{
    AbortReason, Attempt, AttemptRecord, Cause, CloseReason, Directive, DropReason, Event, Failure,
    FailureKind, GiveUpReason, HandshakeFailure, HeartBeat, ReceiptOutcome, State, SubscriptionEnd,
};
pub use ids::{
    AckMode, DeliveryId, MessageHandle, ReceiptId, SendId, SubscriptionId, TransactionId,
};
pub use request::{AckOptions, Message, Subscribe};
pub use session::Session;
pub use stats::{CommandCounts, DestinationStats, Stats};
pub use transmit::{Piece, Transmit};

pub use stompkit_codec as codec;
pub use stompkit_policy as policy;

pub use stompkit_codec::{Frame, Limits, Version};
pub use stompkit_policy::{BackoffConfig, BreakerConfig};
