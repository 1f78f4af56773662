//! What the session reports: states, events, failures.

use std::fmt;
use std::time::{Duration, Instant};

use stompkit_codec::{Frame, Version};

use crate::{Error, Message, MessageHandle, ReceiptId, SendId, SubscriptionId, TransactionId};

/// Where the session stands. See `docs/session.md` for the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Created, [`connect`](crate::Session::connect) not called yet.
    Idle,
    /// An attempt is under way: waiting for the transport, then for `CONNECTED`.
    Connecting,
    /// `CONNECTED` received; frames flow.
    Connected,
    /// Waiting for the backoff delay before the next attempt.
    Reconnecting {
        /// When the next attempt starts.
        at: Instant,
    },
    /// The circuit breaker is open: no attempt before `next_probe`.
    Failed {
        /// When the breaker lets the next attempt (a probe) through.
        next_probe: Instant,
    },
    /// `DISCONNECT` sent; waiting for its receipt (or the timeout).
    Disconnecting,
    /// Stopped: by the caller, after giving up, or after a non-retryable failure.
    /// [`connect`](crate::Session::connect) starts again.
    Closed,
}

/// Why the state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// [`Session::connect`](crate::Session::connect).
    ConnectRequested,
    /// `CONNECTED` arrived and was accepted.
    Handshake,
    /// The attempt or the connection failed.
    Failure(FailureKind),
    /// The backoff delay elapsed.
    BackoffElapsed,
    /// [`Session::reconnect_now`](crate::Session::reconnect_now) cut the backoff delay short.
    ReconnectRequested,
    /// The circuit breaker's open period ended; this attempt is a probe.
    ProbeDue,
    /// The circuit breaker refused the attempt.
    BreakerOpen,
    /// The backoff's give-up limit (attempts or elapsed time) was reached.
    RetriesExhausted,
    /// [`Session::disconnect`](crate::Session::disconnect).
    DisconnectRequested,
    /// The `DISCONNECT` receipt arrived.
    DisconnectConfirmed,
    /// The `DISCONNECT` receipt did not arrive in time.
    DisconnectTimedOut,
    /// The transport closed while disconnecting.
    TransportClosed,
}

/// How an attempt or a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The transport could not be opened, or closed under us.
    Network,
    /// No `CONNECTED` within the connect timeout.
    Timeout,
    /// The broker refused the handshake, or it could not be completed.
    Handshake(HandshakeFailure),
    /// The broker sent an `ERROR` frame on an established connection.
    ServerError,
    /// Nothing arrived within the negotiated heart-beat interval times the grace factor.
    HeartbeatLost,
    /// The broker broke the protocol (undecodable bytes, an unexpected frame).
    Protocol,
    /// The caller ended it.
    ClosedByUser,
    /// The driver reported a transport that cannot work as configured
    /// ([`CloseReason::Fatal`]: a certificate that does not verify, ...).
    TransportRefused,
}

/// Why a handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeFailure {
    /// `ERROR` in answer to `CONNECT`: bad credentials, unknown virtual host, ...
    Auth,
    /// The broker chose a version we did not offer, or supports none of ours.
    Version,
    /// The credentials cannot be written in a `CONNECT` frame (e.g. a line feed).
    Credentials,
}

impl FailureKind {
    /// Whether trying again can help. Handshake failures are not retried (see
    /// [`SessionConfig::auth_retries`](crate::SessionConfig::auth_retries)), nor are a close
    /// by the caller and a transport refused for good.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            Self::Handshake(_) | Self::ClosedByUser | Self::TransportRefused
        )
    }
}

/// A failure with a human-readable detail and, where there is one, its typed cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The classification.
    pub kind: FailureKind,
    /// What happened, e.g. the broker's `message` header. Never holds credentials.
    pub detail: String,
    /// The typed cause: the decoder's [`Error::Decode`], the broker's [`Error::Broker`]
    /// frame, the driver's [`Error::Transport`], ... `None` for timeouts.
    pub error: Option<Error>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

/// Why the transport was closed, as the driver reports it to
/// [`Session::transport_closed`](crate::Session::transport_closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed the connection (end of stream).
    PeerClosed,
    /// The transport failed or could not be opened.
    Error(String),
    /// The transport cannot be opened and trying again will not help until something is
    /// changed: the broker's TLS certificate does not verify, the TLS configuration is
    /// unusable. Fails with [`FailureKind::TransportRefused`], which is not retried.
    Fatal(String),
}

/// The heart-beat intervals negotiated for a connection (spec "Heart-beating").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HeartBeat {
    /// We send something at least this often; `None` when disabled.
    pub send: Option<Duration>,
    /// The broker sends something at least this often; `None` when disabled. The connection
    /// is declared dead after this times the grace factor without a byte.
    pub expect: Option<Duration>,
}

/// How a receipt request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// The broker sent the `RECEIPT`.
    Confirmed,
    /// The broker sent an `ERROR` naming this receipt.
    Error(Box<Frame>),
    /// No receipt within the receipt timeout.
    TimedOut,
    /// The connection ended before the receipt arrived; the outcome is unknown. (A `SEND`
    /// outside a transaction is not reported this way on a drop: it is re-sent instead.)
    ConnectionLost,
}

/// Why a message the caller handed to [`Session::send`](crate::Session::send) was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The broker refused it: the connection it was the oldest unconfirmed frame on ended
    /// with an `ERROR`, [`poison_after`](crate::SessionConfig::poison_after) times in a row.
    /// It is not sent again. Holds the last `ERROR`.
    Poisoned(Box<Frame>),
    /// Its expiry time passed while it waited.
    Expired,
    /// The queue was full and the overflow policy drops the oldest.
    Overflow,
    /// The session closed with the message still queued.
    SessionClosed,
    /// A message without receipt was written into the session's output, but the connection
    /// ended before the driver took the bytes (a frame later in the same input ended it).
    /// It never reached the transport.
    ConnectionLost,
    /// It could not be written in the negotiated version (checked when queued against
    /// every offered version, so this should not happen).
    Unencodable(Error),
}

/// Why a subscription ended. Reported once per subscription in
/// [`Event::SubscriptionEnded`]; after it the id is unknown to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionEnd {
    /// The broker refused its `SUBSCRIBE` with an `ERROR` on
    /// [`poison_after`](crate::SessionConfig::poison_after) connections in a row (or with an
    /// `ERROR` naming its receipt). Holds the last `ERROR`.
    Refused(Box<Frame>),
    /// The session closed ([`State::Closed`]): subscriptions do not outlive it. Subscribe
    /// again after the next [`connect`](crate::Session::connect).
    SessionClosed,
}

/// Why an open transaction ended without `COMMIT` or `ABORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbortReason {
    /// The connection dropped; the broker discards the transaction. Nothing of it is replayed.
    ConnectionLost,
    /// [`Session::disconnect`](crate::Session::disconnect) with the transaction open.
    Disconnected,
}

/// Why the session stopped trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GiveUpReason {
    /// The backoff's limit on attempts or elapsed time was reached.
    RetriesExhausted,
    /// A failure that retrying does not fix (see [`FailureKind::is_retryable`]).
    NonRetryable(FailureKind),
    /// The same failure ended [`poison_after`](crate::SessionConfig::poison_after)
    /// connections in a row before any became healthy, and another attempt would meet it
    /// again: the broker keeps sending a frame over the decoder's limits (raise
    /// [`limits`](crate::SessionConfig::limits)).
    RepeatedFailure(FailureKind),
}

/// One connection attempt: names the transport a [`Directive`] asks for, and ties the
/// driver's callbacks ([`transport_connected`](crate::Session::transport_connected),
/// [`handle_input`](crate::Session::handle_input),
/// [`transport_closed`](crate::Session::transport_closed)) to it. A callback naming another
/// attempt (a socket from an abandoned attempt) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attempt(pub(crate) u32);

impl Attempt {
    /// The attempt number, from 1, counted over the session's life. A driver with several
    /// endpoints can pick one from it (`(n - 1) % endpoints.len()`).
    pub fn number(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt {}", self.0)
    }
}

/// What the driver must do with its transport. Drain with
/// [`Session::poll_directive`](crate::Session::poll_directive), in order, before
/// [`poll_transmit`](crate::Session::poll_transmit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Directive {
    /// Open a transport to the broker, then call
    /// [`transport_connected`](crate::Session::transport_connected) with this attempt and
    /// fresh credentials (or [`transport_closed`](crate::Session::transport_closed) if it
    /// fails).
    Open(Attempt),
    /// Close this attempt's transport once the transmits already taken from
    /// [`poll_transmit`](crate::Session::poll_transmit) are written (nothing more comes for
    /// it). Do not report its closing afterwards.
    Close(Attempt),
}

/// Something the application must know. Drain with
/// [`Session::poll_event`](crate::Session::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The state changed.
    StateChanged {
        /// Before.
        from: State,
        /// After.
        to: State,
        /// Why.
        cause: Cause,
    },
    /// The handshake completed.
    Connected {
        /// The negotiated version.
        version: Version,
        /// The broker's `server` header.
        server: Option<String>,
        /// The broker's `session` header.
        session: Option<String>,
        /// The negotiated heart-beats.
        heart_beat: HeartBeat,
    },
    /// A `MESSAGE` for one of our subscriptions.
    Message {
        /// The subscription.
        subscription: SubscriptionId,
        /// For [`ack`](crate::Session::ack) / [`nack`](crate::Session::nack).
        handle: MessageHandle,
        /// The frame as received (headers unescaped).
        frame: Frame,
        /// `redelivered:true`, or an id the duplicate filter has seen: the stable
        /// [`message_id_header`](crate::SessionConfig::message_id_header) when the message
        /// carries it, else its `message-id`.
        possibly_duplicate: bool,
    },
    /// A subscription ended; no more messages come for it.
    SubscriptionEnded {
        /// The subscription.
        id: SubscriptionId,
        /// Why.
        reason: SubscriptionEnd,
    },
    /// A `MESSAGE` naming no subscription we have (e.g. one in flight when we unsubscribed).
    StrayMessage {
        /// The frame.
        frame: Frame,
    },
    /// A receipt request ended.
    Receipt {
        /// What the receipt was for.
        id: ReceiptId,
        /// How it ended.
        outcome: ReceiptOutcome,
    },
    /// The broker sent an `ERROR` frame. The connection is ended (and retried if the
    /// failure is retryable).
    ServerError {
        /// The `message` header.
        message: Option<String>,
        /// The frame (its body usually explains more).
        frame: Frame,
    },
    /// An open transaction ended without `COMMIT`.
    TransactionAborted {
        /// The transaction.
        id: TransactionId,
        /// Why.
        reason: AbortReason,
    },
    /// A message handed to [`send`](crate::Session::send) will not be sent.
    MessageDropped {
        /// Its id.
        id: SendId,
        /// Why.
        reason: DropReason,
        /// The message, handed back.
        message: Box<Message>,
    },
    /// An attempt or a connection failed.
    AttemptFailed {
        /// The attempt.
        attempt: Attempt,
        /// What happened.
        failure: Failure,
    },
    /// The session stopped trying; it is [`State::Closed`].
    GaveUp {
        /// Why.
        reason: GiveUpReason,
        /// Attempts made since the last successful connection.
        attempts: u32,
    },
}

/// One connection attempt, kept for diagnostics (see
/// [`Session::attempts`](crate::Session::attempts)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The attempt number.
    pub attempt: u32,
    /// When it started.
    pub started_at: Instant,
    /// When `CONNECTED` arrived, if it did.
    pub connected_at: Option<Instant>,
    /// When it ended, if it has.
    pub ended_at: Option<Instant>,
    /// How it ended; `None` while it lasts.
    pub failure: Option<Failure>,
}
