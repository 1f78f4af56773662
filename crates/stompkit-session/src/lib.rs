#![doc = include_str!("../README.md")]
//!
//! # Map of the crate
//!
//! - [`Session`]: the state machine; [`SessionConfig`] configures it.
//! - Inputs the caller builds: [`Credentials`], [`Message`], [`Subscribe`], [`AckOptions`].
//! - Outputs: [`Event`] (with [`State`], [`Cause`], [`Failure`], [`ReceiptOutcome`], ...),
//!   [`Stats`], [`AttemptRecord`].
//! - Ids and handles: [`SubscriptionId`], [`SendId`], [`TransactionId`], [`DeliveryId`],
//!   [`ReceiptId`], [`MessageHandle`].
//! - Errors: [`SendError`] (hands the message back), [`CommandError`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod credentials;
mod dedup;
mod error;
mod event;
mod heartbeat;
mod ids;
mod queue;
mod request;
mod retry;
mod session;
mod stats;

#[cfg(feature = "__fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use config::{OverflowPolicy, QueueLimits, SessionConfig};
pub use credentials::Credentials;
pub use error::{CommandError, SendError};
pub use event::{
    AbortReason, AttemptRecord, Cause, CloseReason, DropReason, Event, Failure, FailureKind,
    GiveUpReason, HandshakeFailure, HeartBeat, ReceiptOutcome, State,
};
pub use ids::{
    AckMode, DeliveryId, MessageHandle, ReceiptId, SendId, SubscriptionId, TransactionId,
};
pub use request::{AckOptions, Message, Subscribe};
pub use session::Session;
pub use stats::{CommandCounts, DestinationStats, Stats};

pub use stompkit_codec::{Frame, Limits, Version};
pub use stompkit_policy::{BackoffConfig, BreakerConfig};
