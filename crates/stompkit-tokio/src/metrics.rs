//! The client's figures through the `metrics` facade (feature `metrics`): plug in any
//! recorder (Prometheus, StatsD, ...). Without the feature every call here is empty.
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `stompkit_messages_sent_total` | counter | messages the session took (`send`) |
//! | `stompkit_messages_received_total` | counter | deliveries handed to subscriptions |
//! | `stompkit_receipts_total{outcome}` | counter | send receipts: `confirmed`, `error`, `timed_out`, `connection_lost` |
//! | `stompkit_messages_dropped_total` | counter | messages that will not be sent |
//! | `stompkit_connections_total` | counter | connections established (`CONNECTED`) |
//! | `stompkit_attempt_failures_total{kind}` | counter | failed attempts or connections, by failure class |
//! | `stompkit_connected` | gauge | 1 while connected, else 0 |
//! | `stompkit_queued_messages` | gauge | messages in the outbound queue |
//! | `stompkit_unconfirmed_messages` | gauge | receipted sends not yet confirmed |
//! | `stompkit_buffered_bytes` | gauge | delivered bytes not yet taken by the application |
//! | `stompkit_receipt_seconds` | histogram | from `send` to the receipt's outcome |
//!
//! Every name carries the label `client`, [`ClientConfig::name`](crate::ClientConfig::name).

#[cfg(feature = "metrics")]
mod enabled {
    use std::time::Duration;

    use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
    use stompkit_session::FailureKind;

    /// Handles looked up once, so that a message costs an atomic add, not a registry lookup.
    #[derive(Debug)]
    pub(crate) struct Metrics {
        client: String,
        sent: Counter,
        received: Counter,
        dropped: Counter,
        connections: Counter,
        connected: Gauge,
        queued: Gauge,
        unconfirmed: Gauge,
        buffered: Gauge,
        receipt_seconds: Histogram,
    }

    impl Metrics {
        pub(crate) fn new(client: &str) -> Self {
            let client = client.to_owned();
            let label = [("client", client.clone())];
            Self {
                sent: counter!("stompkit_messages_sent_total", &label),
                received: counter!("stompkit_messages_received_total", &label),
                dropped: counter!("stompkit_messages_dropped_total", &label),
                connections: counter!("stompkit_connections_total", &label),
                connected: gauge!("stompkit_connected", &label),
                queued: gauge!("stompkit_queued_messages", &label),
                unconfirmed: gauge!("stompkit_unconfirmed_messages", &label),
                buffered: gauge!("stompkit_buffered_bytes", &label),
                receipt_seconds: histogram!("stompkit_receipt_seconds", &label),
                client,
            }
        }

        pub(crate) fn sent(&self) {
            self.sent.increment(1);
        }

        pub(crate) fn received(&self) {
            self.received.increment(1);
        }

        pub(crate) fn dropped(&self) {
            self.dropped.increment(1);
        }

        pub(crate) fn connected(&self, up: bool) {
            if up {
                self.connections.increment(1);
            }
            self.connected.set(f64::from(u8::from(up)));
        }

        pub(crate) fn receipt(&self, outcome: &'static str, after: Option<Duration>) {
            counter!("stompkit_receipts_total", "client" => self.client.clone(), "outcome" => outcome)
                .increment(1);
            if let Some(after) = after {
                self.receipt_seconds.record(after.as_secs_f64());
            }
        }

        pub(crate) fn failure(&self, kind: FailureKind) {
            let kind = format!("{kind:?}");
            counter!("stompkit_attempt_failures_total", "client" => self.client.clone(), "kind" => kind)
                .increment(1);
        }

        pub(crate) fn levels(&self, queued: usize, unconfirmed: usize, buffered: usize) {
            // Gauges are f64; these counts are far below 2^53.
            #[allow(clippy::cast_precision_loss)]
            {
                self.queued.set(queued as f64);
                self.unconfirmed.set(unconfirmed as f64);
                self.buffered.set(buffered as f64);
            }
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod enabled {
    use std::time::Duration;

    use stompkit_session::FailureKind;

    /// Nothing to record without the feature.
    #[derive(Debug)]
    pub(crate) struct Metrics;

    impl Metrics {
        pub(crate) fn new(_client: &str) -> Self {
            Self
        }
        pub(crate) fn sent(&self) {}
        pub(crate) fn received(&self) {}
        pub(crate) fn dropped(&self) {}
        pub(crate) fn connected(&self, _up: bool) {}
        pub(crate) fn receipt(&self, _outcome: &'static str, _after: Option<Duration>) {}
        pub(crate) fn failure(&self, _kind: FailureKind) {}
        pub(crate) fn levels(&self, _queued: usize, _unconfirmed: usize, _buffered: usize) {}
    }
}

pub(crate) use enabled::Metrics;
