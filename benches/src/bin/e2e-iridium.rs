//! The end-to-end workload on iridium-stomp 0.6 (`Connection`), driven the way its
//! documentation shows: `send_frame`, `send_frame_with_receipt` with the handles awaited
//! later, `Subscription` as a stream, `ack_frame`. See `benches/e2e/common.rs`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use iridium_stomp::{AckMode, ConnectOptions, Connection, Frame, ReceiptHandle};
use tokio::sync::mpsc;

#[path = "../../e2e/common.rs"]
mod common;

use common::{Ack, Args, Histogram, SENT_HEADER, Shared};

/// How long one receipt is waited for.
const RECEIPT_WAIT: Duration = Duration::from_secs(30);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = common::args();
    match run(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn connect(args: &Args) -> Result<Connection, String> {
    let (login, passcode) = args.credentials();
    Connection::connect_with_options(
        &args.host_port(),
        &login,
        &passcode,
        "10000,10000",
        ConnectOptions::default()
            .host("/")
            .connect_timeout(Duration::from_secs(10)),
    )
    .await
    .map_err(|e| e.to_string())
}

async fn run(args: &Args) -> Result<ExitCode, String> {
    let ack = match args.ack {
        Ack::Auto => AckMode::Auto,
        Ack::Client => AckMode::Client,
        Ack::ClientIndividual => AckMode::ClientIndividual,
    };
    let mut subscriptions = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..args.consumers {
        let connection = connect(args).await?;
        let subscription = connection
            .subscribe(&args.destination, ack)
            .await
            .map_err(|e| e.to_string())?;
        // SUBSCRIBE takes no receipt here; a receipted frame after it tells that the broker
        // has processed it (frames are handled in order), so no message of a topic is missed.
        connection
            .send_frame_confirmed(
                Frame::new("BEGIN").header("transaction", "subscribed"),
                RECEIPT_WAIT,
            )
            .await
            .map_err(|e| e.to_string())?;
        connection
            .send_frame(Frame::new("ABORT").header("transaction", "subscribed"))
            .await
            .map_err(|e| e.to_string())?;
        subscriptions.push(subscription);
        connections.push(connection);
    }
    let mut producer_connections = Vec::new();
    for _ in 0..args.producers {
        producer_connections.push(connect(args).await?);
    }
    let shared = Shared::start();
    let consumers = subscriptions
        .into_iter()
        .map(|mut subscription| {
            let shared = Arc::clone(&shared);
            let mut done = shared.done();
            tokio::spawn(async move {
                let mut latency = Histogram::default();
                loop {
                    let frame = tokio::select! {
                        biased;
                        _ = done.wait_for(|d| *d) => return Ok(latency),
                        frame = subscription.next() => frame,
                    };
                    let Some(frame) = frame else {
                        return Err(format!(
                            "the subscription ended ({:?})",
                            subscription.ended()
                        ));
                    };
                    if ack != AckMode::Auto {
                        subscription
                            .ack_frame(&frame)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    shared.delivered(&mut latency, frame.get_header(SENT_HEADER));
                }
            })
        })
        .collect();
    let body = args.body();
    let producers = producer_connections
        .iter()
        .enumerate()
        .map(|(i, connection)| {
            let (connection, shared, body) =
                (connection.clone(), Arc::clone(&shared), body.clone());
            let (count, destination) = (args.share(i), args.destination.clone());
            let receipts = args.receipts.then_some(args.in_flight);
            tokio::spawn(async move {
                let (to_confirm, mut confirming) =
                    mpsc::channel::<(Instant, ReceiptHandle)>(receipts.unwrap_or(1));
                let collector = {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let mut latency = Histogram::default();
                        while let Some((at, handle)) = confirming.recv().await {
                            handle.wait(RECEIPT_WAIT).await.map_err(|e| e.to_string())?;
                            latency.record(at.elapsed());
                            shared.receipted.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok::<_, String>(latency)
                    })
                };
                for _ in 0..count {
                    let frame = Frame::new("SEND")
                        .header("destination", &destination)
                        .header(SENT_HEADER, common::unix_nanos().to_string())
                        .set_body(body.clone());
                    if receipts.is_some() {
                        let at = Instant::now();
                        let handle = connection
                            .send_frame_with_receipt(frame)
                            .await
                            .map_err(|e| e.to_string())?;
                        if to_confirm.send((at, handle)).await.is_err() {
                            break;
                        }
                    } else {
                        connection
                            .send_frame(frame)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                }
                drop(to_confirm);
                collector.await.map_err(|e| e.to_string())?
            })
        })
        .collect();
    let code = common::finish(args, "iridium-stomp", shared, producers, consumers).await;
    for connection in connections.into_iter().chain(producer_connections) {
        let _ = tokio::time::timeout(Duration::from_secs(5), connection.close()).await;
    }
    Ok(code)
}
