//! The session's one error type, and the wrapper that hands a refused message back.

use std::fmt;

use stompkit_codec::Frame;

use crate::{Message, SubscriptionId, TransactionId};

/// Everything the session can refuse or report as the cause of a failure.
///
/// Commands return it directly; [`Session::send`](crate::Session::send) wraps it in a
/// [`SendError`] that hands the message back; [`Failure::error`](crate::Failure::error)
/// carries it as the typed cause of a lost connection.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`SessionConfig`](crate::SessionConfig) setting is out of range.
    #[error("invalid session configuration: `{setting}` {reason}")]
    InvalidConfig {
        /// The field of `SessionConfig` at fault (`backoff`, `breaker`, ...).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The command needs an established connection.
    #[error("not connected: wait for Event::Connected, or queue the message with send()")]
    NotConnected,
    /// The session is disconnecting or closed.
    #[error("the session is disconnecting or closed")]
    Closing,
    /// No such live subscription.
    #[error("unknown subscription {0}")]
    UnknownSubscription(SubscriptionId),
    /// No such open transaction.
    #[error("transaction {0} is not open on the current connection")]
    UnknownTransaction(TransactionId),
    /// The subscription uses `ack:auto`; its messages need no acknowledgement.
    #[error("the subscription uses ack:auto; its messages need no ACK or NACK")]
    AutoAck,
    /// The message came on an earlier connection; the broker will redeliver it.
    #[error("the message was delivered on an earlier connection; the broker redelivers it")]
    StaleHandle,
    /// The message was already acknowledged (cumulatively, in `client` mode), or its
    /// acknowledgement waits in a transaction.
    #[error("the message was already acknowledged")]
    AlreadyAcknowledged,
    /// STOMP 1.0 has no `NACK`.
    #[error("NACK does not exist in STOMP 1.0")]
    NackUnsupported,
    /// The message has neither `ack` nor `message-id` header to acknowledge it by.
    #[error("the message carries no id to acknowledge it by")]
    MissingAckId,
    /// The outbound queue is full and the overflow policy rejects new messages.
    #[error("the outbound queue is full (SessionConfig::queue)")]
    QueueFull,
    /// The message alone is larger than the outbound queue's byte bound.
    #[error("the message is larger than the outbound queue (SessionConfig::queue)")]
    LargerThanQueue,
    /// The encoded frame is larger than the session sends.
    #[error(
        "the frame is {size} bytes, over the limit of {limit} (SessionConfig::max_send_frame_bytes)"
    )]
    FrameTooLarge {
        /// The encoded size.
        size: usize,
        /// [`SessionConfig::max_send_frame_bytes`](crate::SessionConfig::max_send_frame_bytes).
        limit: usize,
    },
    /// The message names a transaction that is not open on the current connection.
    #[error("transaction {0} is not open on the current connection")]
    TransactionNotOpen(TransactionId),
    /// A header the session writes itself was set by hand.
    #[error("the {0:?} header is set by the session, not by the caller")]
    ReservedHeader(&'static str),
    /// The frame cannot be written (e.g. a line feed in a STOMP 1.0 header).
    #[error("the frame cannot be written: {0}")]
    Encode(stompkit_codec::Error),
    /// The broker sent bytes that are not valid STOMP, or a frame over the decoder's limits.
    #[error("the broker sent an invalid frame: {0}")]
    Decode(stompkit_codec::Error),
    /// The broker sent an `ERROR` frame.
    #[error("the broker sent ERROR: {}", broker_text(.0))]
    Broker(Box<Frame>),
    /// The broker sent a frame the protocol does not allow here.
    #[error("{0}")]
    Protocol(String),
    /// The transport failed, as the driver reported it.
    #[error("transport: {0}")]
    Transport(String),
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::InvalidConfig { setting, reason },
                Self::InvalidConfig {
                    setting: s,
                    reason: r,
                },
            ) => setting == s && reason == r,
            (Self::UnknownSubscription(a), Self::UnknownSubscription(b)) => a == b,
            (Self::UnknownTransaction(a), Self::UnknownTransaction(b))
            | (Self::TransactionNotOpen(a), Self::TransactionNotOpen(b)) => a == b,
            (Self::FrameTooLarge { size, limit }, Self::FrameTooLarge { size: s, limit: l }) => {
                size == s && limit == l
            }
            (Self::ReservedHeader(a), Self::ReservedHeader(b)) => a == b,
            // The codec's errors hold an io::Error in one variant and so are not `Eq`;
            // their messages carry every field.
            (Self::Encode(a), Self::Encode(b)) | (Self::Decode(a), Self::Decode(b)) => {
                a.to_string() == b.to_string()
            }
            (Self::Broker(a), Self::Broker(b)) => a == b,
            (Self::Protocol(a), Self::Protocol(b)) | (Self::Transport(a), Self::Transport(b)) => {
                a == b
            }
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b) && a.is_unit_like(),
        }
    }
}

impl Eq for Error {}

impl Error {
    /// The variants without fields (equal when their kind is).
    fn is_unit_like(&self) -> bool {
        matches!(
            self,
            Self::NotConnected
                | Self::Closing
                | Self::AutoAck
                | Self::StaleHandle
                | Self::AlreadyAcknowledged
                | Self::NackUnsupported
                | Self::MissingAckId
                | Self::QueueFull
                | Self::LargerThanQueue
        )
    }
}

/// The `message` header of an `ERROR`, with the start of its body.
pub(crate) fn broker_text(frame: &Frame) -> String {
    let body = frame.body();
    let body = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let body = body.trim();
    match (frame.header_str("message"), body.is_empty()) {
        (Some(m), true) => m.to_owned(),
        (Some(m), false) => format!("{m}: {body}"),
        (None, false) => body.to_owned(),
        (None, true) => "(no message)".to_owned(),
    }
}

/// Why [`Session::send`](crate::Session::send) refused a message: the [`Error`], and the
/// message handed back.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct SendError {
    #[source]
    error: Error,
    message: Box<Message>,
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .field("destination", &self.message.destination())
            .finish_non_exhaustive()
    }
}

impl SendError {
    pub(crate) fn new(error: Error, message: Message) -> Self {
        Self {
            error,
            message: Box::new(message),
        }
    }

    /// Why the message was refused.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message, handed back.
    pub fn into_message(self) -> Message {
        *self.message
    }

    /// Both parts.
    pub fn into_parts(self) -> (Error, Message) {
        (self.error, *self.message)
    }
}
