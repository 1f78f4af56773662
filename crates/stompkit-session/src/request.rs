//! What the caller asks the session to send: messages and subscriptions.

use std::time::Instant;

use bytes::Bytes;

use crate::{AckMode, TransactionId};

/// A message to `SEND`, built with chained setters.
///
/// ```
/// use std::time::{Duration, Instant};
/// use stompkit_session::Message;
///
/// let now = Instant::now();
/// let msg = Message::new("/queue/job-offers", r#"{"jobId":123}"#)
///     .header("content-type", "application/json")
///     .receipt()
///     .priority(9)
///     .expires_at(now + Duration::from_secs(90));
/// assert_eq!(msg.destination(), "/queue/job-offers");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub(crate) destination: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) receipt: bool,
    pub(crate) priority: u8,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) transaction: Option<TransactionId>,
}

impl Message {
    /// A message for `destination` with `body`, no receipt, priority 0, no expiry.
    pub fn new(destination: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            destination: destination.into(),
            headers: Vec::new(),
            body: body.into(),
            receipt: false,
            priority: 0,
            expires_at: None,
            transaction: None,
        }
    }

    /// Adds a header (`receipt` and `transaction` are set by the session, not here).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Asks the broker for a receipt. A message with a receipt is delivered at least once:
    /// if the connection drops before the receipt arrives, it is sent again after the
    /// reconnect (unless it belongs to a transaction).
    pub fn receipt(mut self) -> Self {
        self.receipt = true;
        self
    }

    /// Queue priority while disconnected: higher goes first; equal priorities keep their
    /// order. It is not sent to the broker (add a `priority` header for that).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// A message still queued (or waiting to be re-sent) at this time is dropped and
    /// reported instead of being sent late.
    pub fn expires_at(mut self, at: Instant) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sends the message inside an open transaction. Such a message is never queued: it
    /// needs the connection the transaction lives on.
    pub fn transaction(mut self, transaction: TransactionId) -> Self {
        self.transaction = Some(transaction);
        self
    }

    /// The destination.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The extra headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether a receipt was asked for.
    pub fn wants_receipt(&self) -> bool {
        self.receipt
    }

    /// The queue priority.
    pub fn queue_priority(&self) -> u8 {
        self.priority
    }

    /// The expiry time, if any.
    pub fn expiry(&self) -> Option<Instant> {
        self.expires_at
    }

    /// Approximate size on the wire, used for the queue's byte bound.
    pub(crate) fn wire_size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum();
        "SEND\ndestination:\n\n\0".len() + self.destination.len() + headers + self.body.len()
    }
}

/// A subscription request, built with chained setters.
///
/// ```
/// use stompkit_session::{AckMode, Subscribe};
///
/// let sub = Subscribe::new("/queue/job-offers-42")
///     .ack(AckMode::ClientIndividual)
///     .header("prefetch-count", "10");
/// assert_eq!(sub.destination(), "/queue/job-offers-42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub(crate) destination: String,
    pub(crate) ack: AckMode,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) receipt: bool,
}

impl Subscribe {
    /// Subscribes to `destination` with [`AckMode::Auto`].
    pub fn new(destination: impl Into<String>) -> Self {
        Self {
            destination: destination.into(),
            ack: AckMode::Auto,
            headers: Vec::new(),
            receipt: false,
        }
    }

    /// Sets the ack mode.
    pub fn ack(mut self, mode: AckMode) -> Self {
        self.ack = mode;
        self
    }

    /// Adds a header, sent again with the same value on every resubscribe.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Asks a receipt for the first `SUBSCRIBE` sent (resubscribes after a reconnect ask none).
    pub fn receipt(mut self) -> Self {
        self.receipt = true;
        self
    }

    /// The destination.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The ack mode.
    pub fn ack_mode(&self) -> AckMode {
        self.ack
    }

    /// Whether a receipt was asked for.
    pub fn wants_receipt(&self) -> bool {
        self.receipt
    }
}

/// Options for [`Session::ack_with`](crate::Session::ack_with) and
/// [`Session::nack_with`](crate::Session::nack_with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckOptions {
    /// Acknowledge inside this transaction.
    pub transaction: Option<TransactionId>,
    /// Ask the broker for a receipt ([`ReceiptId::Ack`](crate::ReceiptId::Ack) or
    /// [`ReceiptId::Nack`](crate::ReceiptId::Nack)).
    pub receipt: bool,
}
