//! Streams through a broker outage: a node's RabbitMQ application stopped mid-stream with
//! `rabbitmqctl stop_app` and started again. The tests here take turns (one lock), and
//! cargo runs this file's tests apart from `broker.rs`'s, so no other test of the suite
//! sees the outage. Every wait is bounded.

use std::collections::BTreeMap;
use std::time::Duration;

use stompkit_broker_suite::{
    StoppedNode, TestQueue, broker, builder, cluster, subscribe, text, wait_event, within,
    within_for,
};
use stompkit_tokio::{AckMode, Client, ClientEvent, Endpoint, Message, Subscribe};
use tokio::sync::{Mutex, watch};

/// One outage at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Messages per stream.
const N: usize = 400;
/// Bound on the whole stream, outage included.
const STREAM_BOUND: Duration = Duration::from_secs(120);

/// What the consumer saw.
#[derive(Debug, Default)]
struct Seen {
    /// Deliveries per number.
    counts: BTreeMap<usize, usize>,
    /// Repeated deliveries that were not flagged `possibly_duplicate`.
    unflagged_repeats: Vec<usize>,
    /// ACKs the session refused (the message was delivered on a lost connection).
    refused_acks: usize,
}

impl Seen {
    fn missing(&self) -> Vec<usize> {
        (0..N).filter(|n| !self.counts.contains_key(n)).collect()
    }

    fn duplicates(&self) -> usize {
        self.counts.values().map(|c| c - 1).sum()
    }
}

fn client(urls: &str) -> Client {
    builder(urls)
        .session_with(|s| s.with_healthy_after(Duration::from_millis(500)))
        .start()
        .expect("client starts")
}

/// The endpoint of the next `Connected` event.
async fn connected_endpoint(events: &mut tokio::sync::broadcast::Receiver<ClientEvent>) -> String {
    wait_event(events, STREAM_BOUND, |e| match e {
        ClientEvent::Connected { endpoint, .. } => Some(endpoint.clone()),
        _ => None,
    })
    .await
}

/// Consumes until every number arrived, acknowledging each (client-individual).
fn consume(
    mut subscription: stompkit_tokio::Subscription,
    progress: watch::Sender<usize>,
) -> tokio::task::JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        within_for("every number", STREAM_BOUND, async {
            while seen.counts.len() < N {
                let Some(delivery) = subscription.next_delivery().await else {
                    panic!("the subscription ended: {:?}", subscription.end_reason());
                };
                let n: usize = text(&delivery).parse().expect("a number");
                let count = seen.counts.entry(n).or_default();
                *count += 1;
                if *count > 1 && !delivery.possibly_duplicate() {
                    seen.unflagged_repeats.push(n);
                }
                // A refused ACK is fine: the broker redelivers the message.
                if delivery.ack().await.is_err() {
                    seen.refused_acks += 1;
                }
                progress.send_replace(seen.counts.len());
            }
        })
        .await;
        seen
    })
}

/// Sends `0..N` with receipts, paced so that the outage falls mid-stream.
fn produce(producer: Client, destination: String) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut errors = Vec::new();
        for n in 0..N {
            let message =
                Message::new(destination.clone(), n.to_string()).header("persistent", "true");
            match within_for("a receipt", STREAM_BOUND, producer.send_confirmed(message)).await {
                Ok(_) => {}
                Err(e) => errors.push(format!("{n}: {e}")),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        errors
    })
}

fn check(seen: &Seen, errors: &[String]) {
    assert!(errors.is_empty(), "sends not confirmed: {errors:?}");
    assert_eq!(seen.missing(), Vec::<usize>::new(), "lost messages");
    assert!(
        seen.unflagged_repeats.is_empty(),
        "repeats not flagged possibly_duplicate: {:?}",
        seen.unflagged_repeats
    );
    eprintln!(
        "{N} messages, {} duplicates (all flagged), {} ACKs refused after a reconnect",
        seen.duplicates(),
        seen.refused_acks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let env = broker();
    let queue = TestQueue::new("restart");

    let consumer = client(&env.tcp);
    within("CONNECTED", consumer.wait_connected())
        .await
        .expect("consumer connected");
    let subscription = subscribe(
        &consumer,
        queue
            .subscribe()
            .ack(AckMode::ClientIndividual)
            .header("prefetch-count", "20"),
    )
    .await;
    let producer = client(&env.tcp);
    within("CONNECTED", producer.wait_connected())
        .await
        .expect("producer connected");

    let (progress_tx, mut progress) = watch::channel(0);
    let consuming = consume(subscription, progress_tx);
    let producing = produce(producer.clone(), queue.send_destination());

    within(
        "a quarter of the stream",
        progress.wait_for(|&n| n >= N / 4),
    )
    .await
    .expect("consumer alive");
    let stopped = StoppedNode::stop_async(&env.node).await;
    stopped.start().await;

    let errors = within_for("the producer", STREAM_BOUND, producing)
        .await
        .expect("producer task");
    let seen = within_for("the consumer", STREAM_BOUND, consuming)
        .await
        .expect("consumer task");
    check(&seen, &errors);
    for (who, c) in [("consumer", &consumer), ("producer", &producer)] {
        let stats = within("stats", c.stats()).await.expect("stats");
        assert!(
            stats.reconnections >= 1,
            "the {who} went through the restart: {stats:?}"
        );
    }
    within("DISCONNECT", producer.disconnect())
        .await
        .expect("disconnected");
    within("DISCONNECT", consumer.disconnect())
        .await
        .expect("disconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_mid_stream_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (urls, nodes) = cluster();
    let endpoints: Vec<String> = Endpoint::parse_list(urls)
        .expect("cluster URLs")
        .iter()
        .map(ToString::to_string)
        .collect();
    let queue = TestQueue::new("quorum");

    let consumer = client(urls);
    let mut consumer_events = consumer.events();
    let first = connected_endpoint(&mut consumer_events).await;
    let index = endpoints
        .iter()
        .position(|e| *e == first)
        .unwrap_or_else(|| panic!("{first} is not one of {endpoints:?}"));
    // RabbitMQ: a quorum queue must be declared durable.
    let request = Subscribe::new(queue.subscribe_destination())
        .header("durable", "true")
        .header("auto-delete", "false")
        .header("x-queue-type", "quorum")
        .header("x-expires", "300000")
        .header("prefetch-count", "20")
        .ack(AckMode::ClientIndividual)
        .receipt();
    let subscription = subscribe(&consumer, request).await;
    let producer = client(urls);
    within("CONNECTED", producer.wait_connected())
        .await
        .expect("producer connected");

    let (progress_tx, mut progress) = watch::channel(0);
    let consuming = consume(subscription, progress_tx);
    let producing = produce(producer.clone(), queue.send_destination());

    within(
        "a quarter of the stream",
        progress.wait_for(|&n| n >= N / 4),
    )
    .await
    .expect("consumer alive");
    // The consumer's node; the guard starts it again at the end, also on failure.
    let stopped = StoppedNode::stop_async(&nodes[index]).await;
    let moved_to = connected_endpoint(&mut consumer_events).await;
    assert_ne!(moved_to, first, "the consumer moved to another node");

    let errors = within_for("the producer", STREAM_BOUND, producing)
        .await
        .expect("producer task");
    let seen = within_for("the consumer", STREAM_BOUND, consuming)
        .await
        .expect("consumer task");
    within("DISCONNECT", producer.disconnect())
        .await
        .expect("disconnected");
    within("DISCONNECT", consumer.disconnect())
        .await
        .expect("disconnected");
    stopped.start().await;
    check(&seen, &errors);
}
