//! Publish a few messages and consume them: the shortest useful program.
//!
//! ```sh
//! cargo run -p stompkit-tokio --example quickstart            # a broker on 127.0.0.1:61613
//! STOMP_URL=ws://guest:guest@127.0.0.1:15674/ws cargo run -p stompkit-tokio --example quickstart
//! ```

#![allow(clippy::print_stdout)] // an example prints what it does

mod common;

use std::time::Duration;

use futures::StreamExt;
use stompkit_tokio::{AckMode, Client, Endpoint, Message, Subscribe};
use tokio::time::timeout;

/// Bound of each wait: the connection, a delivery.
const WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _embedded) = common::broker_url(false).await?;
    let client = timeout(WAIT, Client::connect(&url)).await??;
    // An endpoint displays without its passcode.
    println!("connected to {}", url.parse::<Endpoint>()?);

    let queue = format!("/queue/quickstart-{}", std::process::id());
    let mut offers = client
        .subscribe(Subscribe::new(&queue).ack(AckMode::ClientIndividual))
        .await?;

    for n in 1..=3 {
        // Confirmed: resolves once the broker has the message (re-sent after a reconnect).
        client
            .send_confirmed(Message::new(&queue, format!("offer {n}")))
            .await?;
    }

    for _ in 0..3 {
        let Some(delivery) = timeout(WAIT, offers.next()).await? else {
            break;
        };
        println!("received {}", String::from_utf8_lossy(delivery.body()));
        delivery.ack().await?;
    }
    client.disconnect().await?;
    Ok(())
}
