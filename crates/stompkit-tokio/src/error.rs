//! The crate's error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything that can go wrong in this crate.
///
/// `Clone` (I/O errors are kept behind an [`Arc`]) so that one failure can be handed to several
/// waiters. Messages never contain a passcode.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An endpoint URL could not be parsed. `url` has its passcode replaced by `***`.
    #[error("invalid endpoint URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given, passcode redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL's scheme is not one this crate speaks.
    #[error(
        "unknown scheme `{scheme}` in endpoint URL (known: stomp://, stomp+ssl://, \
         stomp+tls://, ssl://, ws://, wss://)"
    )]
    UnknownScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// The TCP connection could not be opened (refused, unreachable, name not resolved...).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port` of the endpoint.
        addr: String,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Connecting (TCP, TLS and WebSocket handshakes together) took longer than allowed.
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// `host:port` of the endpoint.
        addr: String,
        /// The configured bound.
        after: Duration,
    },
    /// Reading from or writing to an established connection failed.
    #[error("I/O error on the connection to {addr}: {source}")]
    Io {
        /// `host:port` of the endpoint.
        addr: String,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The server's certificate did not verify against the configured roots (unknown issuer,
    /// expired, wrong name...).
    #[error("the TLS certificate of {host} does not verify: {source}")]
    TlsCertificate {
        /// The host name or address the certificate was checked against.
        host: String,
        /// The underlying error (its message names the reason).
        #[source]
        source: Arc<io::Error>,
    },
    /// The TLS handshake failed for another reason than the certificate.
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        /// The host name or address.
        host: String,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The transport configuration cannot be used (no system root certificates found, a
    /// WebSocket header that is not valid HTTP...).
    #[error("invalid transport configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The CA file could not be read.
    #[error("cannot read the CA file {}: {source}", path.display())]
    CaFile {
        /// The file's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The CA certificates (from a file or from bytes) are unusable: bad PEM, no certificate.
    #[error("the CA certificates from {origin} are unusable: {reason}")]
    CaCertificates {
        /// Where they came from: the file's path or "PEM bytes".
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The server answered the WebSocket upgrade request with something else than `101`.
    #[error("WebSocket handshake with {url} refused: HTTP {status}")]
    WsHandshakeRefused {
        /// The WebSocket URL requested (no credentials).
        url: String,
        /// The HTTP status code the server answered with.
        status: u16,
    },
    /// A WebSocket message or frame is larger than
    /// [`WsConfig::max_message_bytes`](crate::transport::WsConfig::max_message_bytes).
    #[error("WebSocket message of {size} bytes exceeds the limit of {max} bytes")]
    WsMessageTooLarge {
        /// The size announced or reached.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// The WebSocket peer broke the protocol (bad handshake answer, bad framing, reset
    /// without a closing handshake...).
    #[error("WebSocket protocol error with {addr}: {reason}")]
    WsProtocol {
        /// `host:port` of the endpoint.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The credentials provider failed (the attempt is retried under the backoff).
    #[error("the credentials provider failed: {0}")]
    Credentials(String),
    /// The client was configured with no endpoint.
    #[error("no endpoint given: pass at least one URL (stomp://, stomp+ssl://, ws://, wss://)")]
    NoEndpoint,
    /// The session refused a command (not connected, unknown subscription, ...).
    #[error("{0}")]
    Session(#[source] stompkit_session::Error),
    /// The session refused a message; it is handed back.
    #[error("message to {} refused: {}", .0.message().destination(), .0.error())]
    Send(#[source] Box<stompkit_session::SendError>),
    /// The broker answered with an `ERROR` naming this operation's receipt.
    #[error("the broker refused it: {}", broker_text(.0))]
    Broker(Box<stompkit_session::codec::Frame>),
    /// No receipt arrived within the session's receipt timeout.
    #[error("no receipt within the receipt timeout (SessionConfig::receipt_timeout)")]
    ReceiptTimeout,
    /// The connection ended before the receipt arrived: the outcome is unknown.
    #[error("the connection ended before the broker confirmed it; the outcome is unknown")]
    ConnectionLost,
    /// The message will not be sent; it is handed back.
    #[error("message to {} dropped: {reason:?}", message.destination())]
    Dropped {
        /// Why.
        reason: stompkit_session::DropReason,
        /// The message.
        message: Box<stompkit_session::Message>,
    },
    /// The subscription ended (see the reason).
    #[error("subscription ended: {0:?}")]
    SubscriptionEnded(stompkit_session::SubscriptionEnd),
    /// The session gave up connecting ([`stompkit_session::GiveUpReason`]); the last failure
    /// says why.
    #[error("gave up connecting ({reason:?}){}", last.as_ref().map(|f| format!(": {}", f.detail)).unwrap_or_default())]
    GaveUp {
        /// Why.
        reason: stompkit_session::GiveUpReason,
        /// The last failed attempt.
        last: Option<stompkit_session::Failure>,
        /// The typed error of the last transport that failed to open, if that is how the
        /// last attempt failed (e.g. [`Error::TlsCertificate`]).
        transport: Option<Box<Self>>,
    },
    /// The client was shut down ([`Client::disconnect`](crate::Client::disconnect), or every
    /// handle dropped).
    #[error("the client is closed")]
    Closed,
    /// A body is not the JSON the caller expected (or a value could not be serialised).
    #[cfg(feature = "json")]
    #[error("JSON body of a message for {destination}: {source}")]
    Json {
        /// The destination of the message.
        destination: String,
        /// What serde_json said.
        #[source]
        source: Arc<serde_json::Error>,
    },
}

fn broker_text(frame: &stompkit_session::codec::Frame) -> String {
    let message = frame.header_str("message").unwrap_or("(no message)");
    let body = String::from_utf8_lossy(&frame.body()[..frame.body().len().min(200)]);
    match body.trim() {
        "" => message.to_owned(),
        body => format!("{message}: {body}"),
    }
}

impl Error {
    /// Whether this is [`Error::TlsCertificate`]: the server's certificate did not verify.
    pub fn is_certificate_error(&self) -> bool {
        match self {
            Self::TlsCertificate { .. } => true,
            Self::GaveUp {
                transport: Some(e), ..
            } => e.is_certificate_error(),
            _ => false,
        }
    }

    /// Whether retrying cannot help until the configuration changes: a certificate that
    /// does not verify, an unusable TLS or CA set-up.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::TlsCertificate { .. }
                | Self::InvalidConfig { .. }
                | Self::CaFile { .. }
                | Self::CaCertificates { .. }
        )
    }

    pub(crate) fn io(addr: &str, source: io::Error) -> Self {
        Self::Io {
            addr: addr.to_owned(),
            source: Arc::new(source),
        }
    }
}
