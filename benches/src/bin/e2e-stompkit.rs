//! The end-to-end workload on stompkit-tokio as a plain library loop: what `stompkit bench`
//! does without the CLI around it (no event reporters, no progress display). See
//! `benches/e2e/common.rs` for the command line and the summary.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stompkit_tokio::{AckMode, Client, Confirmation, Message, Subscribe};
use tokio::sync::mpsc;

#[path = "../../e2e/common.rs"]
mod common;

use common::{Ack, Args, Histogram, SENT_HEADER, Shared};

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

async fn connect(args: &Args) -> Result<Client, stompkit_tokio::Error> {
    Client::builder(&args.url)?
        .heart_beat(Duration::from_secs(10), Duration::from_secs(10))
        .connect()
        .await
}

async fn run(args: &Args) -> Result<ExitCode, stompkit_tokio::Error> {
    let ack = match args.ack {
        Ack::Auto => AckMode::Auto,
        Ack::Client => AckMode::Client,
        Ack::ClientIndividual => AckMode::ClientIndividual,
    };
    let mut subscriptions = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..args.consumers {
        let client = connect(args).await?;
        let request = Subscribe::new(args.destination.clone()).ack(ack).receipt();
        subscriptions.push(client.subscribe(request).await?);
        clients.push(client);
    }
    let mut producer_clients = Vec::new();
    for _ in 0..args.producers {
        producer_clients.push(connect(args).await?);
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
                    let delivery = tokio::select! {
                        biased;
                        _ = done.wait_for(|d| *d) => return Ok(latency),
                        delivery = subscription.next_delivery() => delivery,
                    };
                    let delivery = delivery.ok_or("the subscription ended")?;
                    if ack != AckMode::Auto {
                        delivery.ack().await.map_err(|e| e.to_string())?;
                    }
                    shared.delivered(&mut latency, delivery.header(SENT_HEADER));
                }
            })
        })
        .collect();
    let body = bytes::Bytes::from(args.body());
    let producers = producer_clients
        .iter()
        .enumerate()
        .map(|(i, client)| {
            let (client, shared, body) = (client.clone(), Arc::clone(&shared), body.clone());
            let (count, destination) = (args.share(i), args.destination.clone());
            let receipts = args.receipts.then_some(args.in_flight);
            tokio::spawn(async move {
                let (to_confirm, mut confirming) =
                    mpsc::channel::<(Instant, Confirmation)>(receipts.unwrap_or(1));
                let collector = {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let mut latency = Histogram::default();
                        while let Some((at, confirmation)) = confirming.recv().await {
                            confirmation.confirmed().await.map_err(|e| e.to_string())?;
                            latency.record(at.elapsed());
                            shared.receipted.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok::<_, String>(latency)
                    })
                };
                for _ in 0..count {
                    let message = Message::new(destination.clone(), body.clone())
                        .header(SENT_HEADER, common::unix_nanos().to_string());
                    if receipts.is_some() {
                        let at = Instant::now();
                        let confirmation = client
                            .send_with_receipt(message)
                            .await
                            .map_err(|e| e.to_string())?;
                        if to_confirm.send((at, confirmation)).await.is_err() {
                            break;
                        }
                    } else {
                        client.send(message).await.map_err(|e| e.to_string())?;
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                }
                drop(to_confirm);
                collector.await.map_err(|e| e.to_string())?
            })
        })
        .collect();
    let code = common::finish(args, "stompkit-lib", shared, producers, consumers).await;
    for client in clients.iter().chain(&producer_clients) {
        let _ = client.disconnect().await;
    }
    Ok(code)
}
