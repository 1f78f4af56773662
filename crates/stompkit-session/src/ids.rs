//! Identifiers and handles the session hands out.

use std::fmt;

use bytes::Bytes;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub(crate) u64);

        impl $name {
            /// The number inside the id (unique within one [`Session`](crate::Session)).
            pub fn get(self) -> u64 {
                self.0
            }

            #[allow(dead_code)]
            pub(crate) fn parse_wire(value: &[u8]) -> Option<Self> {
                let digits = value.strip_prefix($prefix.as_bytes())?;
                if digits.is_empty() || digits.len() > 19 {
                    return None;
                }
                // At most 19 digits always fit in a u64.
                digits
                    .iter()
                    .try_fold(0u64, |n, d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
                    .map(Self)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            /// The id as written on the wire.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A subscription, written on the wire as the `id` header `sub-N`. It stays the same
    /// across reconnects: resubscribing reuses it.
    SubscriptionId,
    "sub-"
);
id_type!(
    /// A transaction, written on the wire as the `transaction` header `tx-N`.
    TransactionId,
    "tx-"
);
id_type!(
    /// A message handed to [`Session::send`](crate::Session::send).
    SendId,
    "send-"
);
id_type!(
    /// One `MESSAGE` the session delivered, numbered in arrival order.
    DeliveryId,
    "delivery-"
);

/// How the broker expects messages of a subscription to be acknowledged (the `ack` header
/// of `SUBSCRIBE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckMode {
    /// The broker considers a message acknowledged as soon as it sends it.
    #[default]
    Auto,
    /// `ACK` is cumulative: acknowledging a message acknowledges every earlier one of the
    /// same subscription.
    Client,
    /// Each message is acknowledged on its own.
    ClientIndividual,
}

impl AckMode {
    /// The value of the `ack` header.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Client => "client",
            Self::ClientIndividual => "client-individual",
        }
    }
}

/// What a receipt was asked for. Reported in [`Event::Receipt`](crate::Event::Receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptId {
    /// A `SEND`.
    Send(SendId),
    /// The first `SUBSCRIBE` of a subscription.
    Subscribe(SubscriptionId),
    /// An `UNSUBSCRIBE`.
    Unsubscribe(SubscriptionId),
    /// The `ACK` of a delivery.
    Ack(DeliveryId),
    /// The `NACK` of a delivery.
    Nack(DeliveryId),
    /// A `BEGIN`.
    Begin(TransactionId),
    /// A `COMMIT`.
    Commit(TransactionId),
    /// An `ABORT`.
    Abort(TransactionId),
}

/// What [`Session::ack`](crate::Session::ack) and [`Session::nack`](crate::Session::nack)
/// need to acknowledge a delivered message. Handed out with
/// [`Event::Message`](crate::Event::Message).
///
/// A handle is only good on the connection that delivered the message: after a reconnect
/// the broker redelivers unacknowledged messages with new handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHandle {
    pub(crate) delivery: DeliveryId,
    pub(crate) subscription: SubscriptionId,
    pub(crate) connection: u64,
    /// The id the `ACK`/`NACK` carries (see [`ack_id`](Self::ack_id)); `None` for `ack:auto`
    /// subscriptions, whose messages are never acknowledged, and when the broker sent none.
    pub(crate) ack_id: Option<Bytes>,
}

impl MessageHandle {
    /// The delivery this handle acknowledges.
    pub fn delivery(&self) -> DeliveryId {
        self.delivery
    }

    /// The subscription that received the message.
    pub fn subscription(&self) -> SubscriptionId {
        self.subscription
    }

    /// The id an `ACK` or `NACK` of this message carries (unescaped): the message's `ack`
    /// header on STOMP 1.2 (its `message-id` if the broker sent no `ack`), its `message-id`
    /// on 1.0 and 1.1. `None` on an `ack:auto` subscription (there is nothing to
    /// acknowledge) or when the broker sent no such header.
    ///
    /// It shares the received frame's memory (no copy). The frame itself has every header.
    pub fn ack_id(&self) -> Option<&[u8]> {
        self.ack_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ids_round_trip() {
        assert_eq!(SubscriptionId(7).to_string(), "sub-7");
        assert_eq!(
            SubscriptionId::parse_wire(b"sub-7"),
            Some(SubscriptionId(7))
        );
        assert_eq!(SubscriptionId::parse_wire(b"sub-"), None);
        assert_eq!(SubscriptionId::parse_wire(b"sub-x"), None);
        assert_eq!(SubscriptionId::parse_wire(b"tx-7"), None);
        assert_eq!(
            SubscriptionId::parse_wire(b"sub-99999999999999999999"),
            None
        );
    }
}
