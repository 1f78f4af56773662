//! Subscriptions as streams of deliveries.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use stompkit_session::codec::Frame;
use stompkit_session::{MessageHandle, SubscriptionEnd, SubscriptionId};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Command, answered};
use crate::{Client, Error, Transaction};

/// What a subscription and the background task share.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionState {
    pub(crate) end: Mutex<Option<SubscriptionEnd>>,
}

/// A subscription: a [`Stream`] of [`Delivery`]s, in the order the broker sent them.
///
/// It survives reconnects (the session subscribes again with the same id). The stream
/// ends when the subscription ends ([`end_reason`](Self::end_reason) says why: the broker
/// refused it, or the client closed). Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) id: SubscriptionId,
    pub(crate) deliveries: mpsc::UnboundedReceiver<Delivery>,
    pub(crate) state: Arc<SubscriptionState>,
    pub(crate) client: Client,
}

impl Subscription {
    /// Its id (`sub-N` on the wire).
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// Why the stream ended; `None` while it goes on.
    pub fn end_reason(&self) -> Option<SubscriptionEnd> {
        self.state.end.lock().ok()?.clone()
    }

    /// The next delivery; `None` once the subscription ended. Cancel-safe.
    pub async fn next_delivery(&mut self) -> Option<Delivery> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Unsubscribes now (what dropping it does, without waiting for the drop).
    pub fn unsubscribe(self) {
        drop(self);
    }
}

impl Stream for Subscription {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = self.get_mut();
        let polled = this.deliveries.poll_recv(cx);
        if let Poll::Ready(Some(delivery)) = &polled {
            this.client.shared().delivered(delivery.size());
        }
        polled
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Whatever is still buffered will not be read: give its room back.
        while let Ok(delivery) = self.deliveries.try_recv() {
            self.client.shared().delivered(delivery.size());
        }
        // May run under the core's lock (a reply dropped there): through the task.
        let _ = self
            .client
            .handle
            .control
            .send(Command::Unsubscribe { id: self.id });
    }
}

/// One message from a subscription, with its acknowledgement.
///
/// On `client` and `client-individual` subscriptions, [`ack`](Self::ack) or
/// [`nack`](Self::nack) it when done; a delivery never acknowledged is redelivered by the
/// broker after a reconnect. On `auto` subscriptions there is nothing to acknowledge.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub(crate) frame: Frame,
    pub(crate) handle: MessageHandle,
    pub(crate) possibly_duplicate: bool,
    pub(crate) client: Client,
}

impl Delivery {
    /// The `MESSAGE` frame, headers unescaped.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.frame.body()
    }

    /// The body, sharing the received buffer (no copy).
    pub fn body_bytes(&self) -> Bytes {
        self.frame.body_bytes()
    }

    /// The first value of a header, as text (`None` if absent or not UTF-8).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.frame.header_str(name)
    }

    /// The `destination` header.
    pub fn destination(&self) -> Option<&str> {
        self.frame.header_str("destination")
    }

    /// The subscription it came on.
    pub fn subscription(&self) -> SubscriptionId {
        self.handle.subscription()
    }

    /// Whether it may have been delivered before: `redelivered:true`, or a message id the
    /// session's duplicate filter has seen (the producer's stable id when it carries one).
    pub fn possibly_duplicate(&self) -> bool {
        self.possibly_duplicate
    }

    /// The session's handle, for the lower-level API.
    pub fn handle(&self) -> &MessageHandle {
        &self.handle
    }

    pub(crate) fn size(&self) -> usize {
        self.frame.body().len() + 64
    }

    async fn acknowledge(
        &self,
        nack: bool,
        transaction: Option<&Transaction>,
        receipt: bool,
    ) -> Result<(), Error> {
        let transaction = transaction.map(Transaction::id);
        let handle = &self.handle;
        if !receipt {
            // Nothing to wait for: done on this task, under the client's lock.
            return self
                .client
                .handle
                .call(|core| core.ack(handle, nack, transaction, None))
                .await;
        }
        let (tx, rx) = oneshot::channel();
        self.client
            .handle
            .call(|core| core.ack(handle, nack, transaction, Some(tx)))
            .await?;
        answered(rx).await
    }

    /// Acknowledges it (cumulatively on `client` subscriptions). Resolves once written.
    ///
    /// # Errors
    /// [`Error::Session`]: not connected, delivered on an earlier connection (the broker
    /// redelivers it), already acknowledged, `ack:auto`; [`Error::Closed`].
    pub async fn ack(&self) -> Result<(), Error> {
        self.acknowledge(false, None, false).await
    }

    /// Acknowledges it and waits for the broker's receipt.
    ///
    /// # Errors
    /// As [`ack`](Self::ack), and the receipt's [`Error::Broker`],
    /// [`Error::ReceiptTimeout`], [`Error::ConnectionLost`].
    pub async fn ack_confirmed(&self) -> Result<(), Error> {
        self.acknowledge(false, None, true).await
    }

    /// Acknowledges it inside a transaction: it counts on `COMMIT`; after an abort it can
    /// be acknowledged again.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub async fn ack_in(&self, transaction: &Transaction) -> Result<(), Error> {
        self.acknowledge(false, Some(transaction), false).await
    }

    /// Refuses it (`NACK`; not in STOMP 1.0): the broker redelivers or dead-letters it.
    ///
    /// # Errors
    /// As [`ack`](Self::ack), and NACK on 1.0.
    pub async fn nack(&self) -> Result<(), Error> {
        self.acknowledge(true, None, false).await
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// [`Error::Json`] naming the destination.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(self.body()).map_err(|source| Error::Json {
            destination: self.destination().unwrap_or("(no destination)").to_owned(),
            source: Arc::new(source),
        })
    }
}

impl crate::driver::Shared {
    /// The application took `size` bytes out of a subscription.
    pub(crate) fn delivered(&self, size: usize) {
        let before = self.buffered.fetch_sub(size, Ordering::AcqRel);
        if before > self.max_buffered && before - size <= self.max_buffered {
            self.resume.notify_one();
        }
    }
}
