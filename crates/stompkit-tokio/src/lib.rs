//! The tokio adapter for stompkit (in progress).
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

pub mod endpoint;
mod error;
pub mod transport;

pub use endpoint::{Endpoint, Scheme};
pub use error::Error;
pub use transport::{
    TlsConfig, TransportConfig, TransportReader, TransportWriter, WsConfig, connect,
};
