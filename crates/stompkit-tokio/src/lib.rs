#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! - [`endpoint`]: [`Endpoint`] URLs (`stomp://`, `stomp+ssl://`, `ws://`, `wss://`) with
//!   credentials, and failover lists.
//! - [`transport`]: [`connect`] opens TCP, TLS or WebSocket transports and
//!   hands back their reading and writing halves.
//! - [`Error`]: the crate's one error type.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod credentials;
mod driver;
pub mod endpoint;
mod error;
#[cfg(feature = "json")]
mod json;
pub mod metrics;
mod subscription;
pub mod transport;

pub use client::{
    Client, ClientBuilder, ClientConfig, ClientEvent, Confirmation, Status, Transaction,
};
pub use credentials::{CredentialsFuture, CredentialsProvider, CredentialsSource};
#[cfg(feature = "json")]
pub use json::JsonMessage;
/// The sans-IO session underneath, and through it the codec and the policy crates.
pub use stompkit_session as session;
pub use stompkit_session::{
    AckMode, Credentials, Message, SessionConfig, State, Subscribe, codec::Version,
};
pub use subscription::{Delivery, Subscription};

pub use endpoint::{Endpoint, Scheme};
pub use error::Error;
pub use transport::{
    TlsConfig, TransportConfig, TransportReader, TransportWriter, WsConfig, connect,
};
