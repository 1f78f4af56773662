//! Errors returned by the session's commands.

use crate::{Message, SubscriptionId, TransactionId};

/// Why [`Session::send`](crate::Session::send) refused a message. The message is handed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The outbound queue is full and the overflow policy rejects new messages.
    #[error("the outbound queue is full")]
    QueueFull(Box<Message>),
    /// The message alone is larger than the queue's byte bound.
    #[error("the message is larger than the outbound queue")]
    TooLarge(Box<Message>),
    /// The session is disconnecting.
    #[error("the session is disconnecting")]
    Closing(Box<Message>),
    /// The message names a transaction that is not open on the current connection.
    #[error("transaction is not open")]
    TransactionNotOpen(Box<Message>),
    /// The message cannot be written as a STOMP frame (e.g. a line feed in a header for
    /// 1.0, a `receipt` header set by hand, a wrong `content-length`).
    #[error("the message cannot be sent: {reason}")]
    Invalid {
        /// The message.
        message: Box<Message>,
        /// Why.
        reason: String,
    },
}

impl SendError {
    /// The message, handed back.
    pub fn into_message(self) -> Message {
        match self {
            Self::QueueFull(m)
            | Self::TooLarge(m)
            | Self::Closing(m)
            | Self::TransactionNotOpen(m)
            | Self::Invalid { message: m, .. } => *m,
        }
    }
}

/// Why a command other than `send` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command needs an established connection.
    #[error("not connected")]
    NotConnected,
    /// The session is disconnecting or closed.
    #[error("the session is disconnecting")]
    Closing,
    /// No such live subscription.
    #[error("unknown subscription {0}")]
    UnknownSubscription(SubscriptionId),
    /// No such open transaction.
    #[error("unknown transaction {0}")]
    UnknownTransaction(TransactionId),
    /// The subscription uses `ack:auto`; its messages need no acknowledgement.
    #[error("subscription uses ack:auto")]
    AutoAck,
    /// The message came on an earlier connection; the broker will redeliver it.
    #[error("the message was delivered on an earlier connection")]
    StaleHandle,
    /// The message was already acknowledged (cumulatively, in `client` mode).
    #[error("the message was already acknowledged")]
    AlreadyAcknowledged,
    /// STOMP 1.0 has no `NACK`.
    #[error("NACK does not exist in STOMP 1.0")]
    NackUnsupported,
    /// The message has neither `ack` nor `message-id` header to acknowledge it by.
    #[error("the message carries no id to acknowledge it by")]
    MissingAckId,
    /// The frame cannot be written (e.g. a header the version cannot carry).
    #[error("the frame cannot be written: {0}")]
    Invalid(String),
}
