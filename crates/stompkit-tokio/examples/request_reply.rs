//! Request and reply: a responder and a requester in one process, each with its own client.
//!
//! ```sh
//! cargo run -p stompkit-tokio --example request_reply            # a broker on 127.0.0.1:61613
//! STOMP_URL=ws://guest:guest@127.0.0.1:15674/ws cargo run -p stompkit-tokio --example request_reply
//! ```
//!
//! The requester subscribes to a reply queue of its own, then sends each request with
//! `reply-to` naming that queue and a `correlation-id`; the responder answers to whatever
//! `reply-to` says, copying the `correlation-id`, and acknowledges the request once the reply
//! is confirmed. Every wait is bounded.
//!
//! Destinations are RabbitMQ's: subscribing to `/queue/NAME` with `durable:false` and
//! `auto-delete:true` declares a queue that goes away with its consumer, and sending to
//! `/amq/queue/NAME` routes to that queue without declaring it again (a second declaration
//! with other properties is refused with `RESOURCE_LOCKED`).
//!
//! RabbitMQ also accepts `reply-to:/temp-queue/NAME` on a `SEND`: it creates an exclusive
//! reply queue and delivers the replies with `subscription:/temp-queue/NAME`, a subscription
//! the client never made. The client reports such messages as `ClientEvent::StrayMessage`
//! on its event broadcast, which drops the oldest events for a receiver that lags, so the
//! example declares its own reply queue, whose stream does not.

#![allow(clippy::print_stdout)] // an example prints what it does

mod common;

use std::collections::BTreeSet;
use std::error::Error;
use std::time::Duration;

use stompkit_tokio::{AckMode, Client, Delivery, Message, Subscribe, Subscription};
use tokio::time::{Instant, timeout, timeout_at};

/// How many requests the requester sends.
const REQUESTS: u32 = 5;
/// Bound of every wait: connecting, a reply, a request.
const WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let (url, _embedded) = common::broker_url(false).await?;
    let pid = std::process::id();
    let service = format!("request-reply-{pid}");
    let reply_queue = format!("replies-{pid}");

    // The responder first: its receipted subscription declares the service queue, so no
    // request can arrive before it exists.
    let responder = timeout(WAIT, Client::connect(&url)).await??;
    let requests = responder.subscribe(own_queue(&service)).await?;
    let serving = tokio::spawn(serve(responder.clone(), requests));

    let requester = timeout(WAIT, Client::connect(&url)).await??;
    let mut replies = requester.subscribe(own_queue(&reply_queue)).await?;
    for n in 1..=REQUESTS {
        let request = Message::new(format!("/amq/queue/{service}"), format!("ping {n}"))
            .header("reply-to", format!("/amq/queue/{reply_queue}"))
            .header("correlation-id", n.to_string());
        timeout(WAIT, requester.send_confirmed(request)).await??;
    }

    let mut waiting: BTreeSet<u32> = (1..=REQUESTS).collect();
    let deadline = Instant::now() + WAIT;
    while !waiting.is_empty() {
        let reply = timeout_at(deadline, replies.next_delivery())
            .await
            .map_err(|_| format!("no reply to requests {waiting:?} within {WAIT:?}"))?
            .ok_or("the reply subscription ended")?;
        let id = reply
            .header("correlation-id")
            .and_then(|id| id.parse().ok());
        match id {
            Some(id) if waiting.remove(&id) => {
                println!("reply to {id}: {}", String::from_utf8_lossy(reply.body()));
            }
            _ => println!("ignored a reply to no pending request"),
        }
    }
    println!("all {REQUESTS} requests answered");

    requester.disconnect().await?;
    responder.disconnect().await?;
    // The responder's subscription ends with its client, which ends `serve`.
    let served = timeout(WAIT, serving).await??;
    println!("the responder answered {served} requests");
    Ok(())
}

/// A queue for this process only: gone once its consumer is.
fn own_queue(name: &str) -> Subscribe {
    Subscribe::new(format!("/queue/{name}"))
        .ack(AckMode::ClientIndividual)
        .header("durable", "false")
        .header("auto-delete", "true")
        .receipt()
}

/// Answers requests until the subscription ends or none came for [`WAIT`]; returns how many
/// it answered.
async fn serve(client: Client, mut requests: Subscription) -> u32 {
    let mut answered = 0;
    while let Ok(Some(request)) = timeout(WAIT, requests.next_delivery()).await {
        match answer(&client, &request).await {
            Ok(()) => answered += 1,
            // Not acknowledged: the broker redelivers it after a reconnect.
            Err(error) => println!("responder: request not answered: {error}"),
        }
    }
    answered
}

async fn answer(client: &Client, request: &Delivery) -> Result<(), Box<dyn Error>> {
    let reply_to = request.header("reply-to").ok_or("no reply-to header")?;
    let body = String::from_utf8_lossy(request.body()).replace("ping", "pong");
    let mut reply = Message::new(reply_to, body);
    if let Some(id) = request.header("correlation-id") {
        reply = reply.header("correlation-id", id);
    }
    timeout(WAIT, client.send_confirmed(reply)).await??;
    request.ack().await?;
    Ok(())
}
