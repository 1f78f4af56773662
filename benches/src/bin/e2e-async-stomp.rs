//! The end-to-end workload on async-stomp 0.7 (`ClientTransport`, a `Sink` of frames to
//! send and a `Stream` of frames received), driven the way its documentation shows:
//! `SinkExt::send` per frame. With receipts, a producer's transport is split so that one
//! task writes and another reads the receipts. See `benches/e2e/common.rs`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_stomp::client::{ClientTransport, Connector, Subscriber};
use async_stomp::{AckMode, FromServer, Message, ToServer};
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;

#[path = "../../e2e/common.rs"]
mod common;

use common::{Ack, Args, Histogram, SENT_HEADER, Shared};

/// How long the receipt of a SUBSCRIBE is waited for.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(30);

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

async fn connect(args: &Args) -> Result<ClientTransport, String> {
    let (login, passcode) = args.credentials();
    Connector::builder()
        .server(args.host_port())
        .virtualhost("/")
        .login(login)
        .passcode(passcode)
        .heartbeat(10_000, 10_000)
        .connect()
        .await
        .map_err(|e| e.to_string())
}

fn send_frame(destination: &str, body: &[u8], receipt: Option<u64>) -> Message<ToServer> {
    let mut headers = vec![(SENT_HEADER.to_owned(), common::unix_nanos().to_string())];
    if let Some(n) = receipt {
        headers.push(("receipt".to_owned(), n.to_string()));
    }
    ToServer::Send {
        destination: destination.to_owned(),
        transaction: None,
        headers: Some(headers),
        body: Some(body.to_vec()),
    }
    .into()
}

async fn run(args: &Args) -> Result<ExitCode, String> {
    let ack = match args.ack {
        Ack::Auto => AckMode::Auto,
        Ack::Client => AckMode::Client,
        Ack::ClientIndividual => AckMode::ClientIndividual,
    };
    let mut subscribed = Vec::new();
    for i in 0..args.consumers {
        let mut transport = connect(args).await?;
        let subscribe = Subscriber::builder()
            .destination(args.destination.clone())
            .id(format!("sub-{i}"))
            .ack(ack)
            .headers(vec![("receipt".to_owned(), "subscribed".to_owned())])
            .subscribe();
        transport.send(subscribe).await.map_err(|e| e.to_string())?;
        let receipt = tokio::time::timeout(SUBSCRIBE_WAIT, transport.next())
            .await
            .map_err(|_| "no receipt for SUBSCRIBE")?;
        match receipt.map(|m| m.map(|m| m.content)) {
            Some(Ok(FromServer::Receipt { .. })) => {}
            other => return Err(format!("SUBSCRIBE answered with {other:?}")),
        }
        subscribed.push(transport);
    }
    let mut producer_transports = Vec::new();
    for _ in 0..args.producers {
        producer_transports.push(connect(args).await?);
    }
    let shared = Shared::start();
    let consumers = subscribed
        .into_iter()
        .map(|mut transport| {
            let shared = Arc::clone(&shared);
            let mut done = shared.done();
            let auto = matches!(ack, AckMode::Auto);
            tokio::spawn(async move {
                let mut latency = Histogram::default();
                loop {
                    let message = tokio::select! {
                        biased;
                        _ = done.wait_for(|d| *d) => break,
                        message = transport.next() => message,
                    };
                    let message = message
                        .ok_or("the connection ended")?
                        .map_err(|e| e.to_string())?;
                    let FromServer::Message { headers, ack, .. } = message.content else {
                        return Err(format!("unexpected frame {:?}", message.content));
                    };
                    if let (Some(id), false) = (ack, auto) {
                        let frame = ToServer::Ack {
                            id,
                            transaction: None,
                        };
                        transport
                            .send(frame.into())
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    let sent = headers
                        .iter()
                        .find(|(k, _)| k == SENT_HEADER)
                        .map(|(_, v)| v.as_str());
                    shared.delivered(&mut latency, sent);
                }
                let _ = async_stomp::client::disconnect(&mut transport, "bye").await;
                Ok(latency)
            })
        })
        .collect();
    let body = args.body();
    let producers = producer_transports
        .into_iter()
        .enumerate()
        .map(|(i, transport)| {
            let (shared, body) = (Arc::clone(&shared), body.clone());
            let (count, destination) = (args.share(i), args.destination.clone());
            let receipts = args.receipts.then_some(args.in_flight);
            tokio::spawn(produce(
                transport,
                shared,
                body,
                count,
                destination,
                receipts,
            ))
        })
        .collect();
    Ok(common::finish(args, "async-stomp", shared, producers, consumers).await)
}

async fn produce(
    mut transport: ClientTransport,
    shared: Arc<Shared>,
    body: Vec<u8>,
    count: u64,
    destination: String,
    receipts: Option<usize>,
) -> Result<Histogram, String> {
    let Some(in_flight) = receipts else {
        for _ in 0..count {
            transport
                .send(send_frame(&destination, &body, None))
                .await
                .map_err(|e| e.to_string())?;
            shared.sent.fetch_add(1, Ordering::Relaxed);
        }
        let _ = async_stomp::client::disconnect(&mut transport, "bye").await;
        return Ok(Histogram::default());
    };
    let (mut sink, mut stream) = transport.split();
    let (to_confirm, mut confirming) = mpsc::channel::<(u64, Instant)>(in_flight);
    let reader = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut latency = Histogram::default();
            while let Some((n, at)) = confirming.recv().await {
                let message = stream
                    .next()
                    .await
                    .ok_or("the connection ended")?
                    .map_err(|e| e.to_string())?;
                match message.content {
                    FromServer::Receipt { receipt_id } if receipt_id == n.to_string() => {
                        latency.record(at.elapsed());
                        shared.receipted.fetch_add(1, Ordering::Relaxed);
                    }
                    other => return Err(format!("expected RECEIPT {n}, got {other:?}")),
                }
            }
            Ok::<_, String>(latency)
        })
    };
    for n in 0..count {
        let at = Instant::now();
        sink.send(send_frame(&destination, &body, Some(n)))
            .await
            .map_err(|e| e.to_string())?;
        shared.sent.fetch_add(1, Ordering::Relaxed);
        if to_confirm.send((n, at)).await.is_err() {
            break;
        }
    }
    drop(to_confirm);
    reader.await.map_err(|e| e.to_string())?
}
