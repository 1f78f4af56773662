//! `stompkit demo`: publish and consume a few messages, with a broker in this process.

use std::io::{self, Write as _};
use std::time::Duration;

use stompkit_testkit::EmbeddedBroker;
use stompkit_tokio::{AckMode, Client, Endpoint, Message, Subscribe};
use tokio::time::timeout;

use crate::Failure;

/// Bound of each wait: the connection, a receipt, a delivery.
const WAIT: Duration = Duration::from_secs(10);

/// Send a few messages to a queue and receive them, with nothing installed
///
/// Starts the stompkit-testkit broker in this process on a free loopback port (or uses
/// the broker at --url), connects, subscribes to a queue with client-individual
/// acknowledgements, sends --count messages each confirmed by a receipt, and prints every
/// message it receives on stdout as it acknowledges it.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// How many messages to send and receive
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,

    /// A broker to use instead of the in-process one, e.g.
    /// stomp://guest:guest@127.0.0.1:61613
    #[arg(long, value_name = "URL", env = "STOMP_URL")]
    url: Option<String>,

    /// The queue
    #[arg(long, value_name = "DEST", default_value = "/queue/stompkit-demo")]
    destination: String,
}

/// Runs `stompkit demo`.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    crate::runtime()?.block_on(demo(args))
}

async fn demo(args: &Args) -> Result<(), Failure> {
    let (broker, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => {
            let broker = EmbeddedBroker::builder()
                .ws_addr(None)
                .start()
                .await
                .map_err(|e| Failure::Input(format!("cannot start the broker: {e}")))?;
            let url = broker.stomp_url();
            (Some(broker), url)
        }
    };
    let result = exchange(args, &url, broker.is_some()).await;
    if let Some(broker) = broker {
        broker.shutdown().await;
    }
    result
}

async fn exchange(args: &Args, url: &str, embedded: bool) -> Result<(), Failure> {
    let broker_error =
        |what: &str, e: stompkit_tokio::Error| Failure::Input(format!("{what}: {e}"));
    let mut out = io::stdout().lock();
    // An endpoint displays without its passcode.
    let shown = url
        .parse::<Endpoint>()
        .map(|e| e.to_string())
        .unwrap_or_else(|_| "the broker".to_owned());
    let client = within("connecting", Client::connect(url))
        .await?
        .map_err(|e| broker_error("cannot connect", e))?;
    let place = if embedded { " (in this process)" } else { "" };
    writeln!(out, "connected to {shown}{place}")?;

    let dest = &args.destination;
    let mut subscription = within(
        "subscribing",
        client.subscribe(Subscribe::new(dest.clone()).ack(AckMode::ClientIndividual)),
    )
    .await?
    .map_err(|e| broker_error("cannot subscribe", e))?;
    for n in 1..=args.count {
        let body = format!("hello {n}");
        within(
            "the receipt",
            client.send_confirmed(Message::new(dest.clone(), body.clone())),
        )
        .await?
        .map_err(|e| broker_error("send failed", e))?;
        writeln!(out, "sent     {dest} {body:?} (receipt received)")?;
    }
    for _ in 0..args.count {
        let delivery = within("a message", subscription.next_delivery())
            .await?
            .ok_or_else(|| Failure::Input("the subscription ended".to_owned()))?;
        delivery
            .ack()
            .await
            .map_err(|e| broker_error("ack failed", e))?;
        let body = String::from_utf8_lossy(delivery.body());
        writeln!(out, "received {dest} {body:?} (acknowledged)")?;
    }
    within("disconnecting", client.disconnect())
        .await?
        .map_err(|e| broker_error("disconnect failed", e))?;
    writeln!(out, "done: {} sent, {} received", args.count, args.count)?;
    Ok(())
}

/// `future`, or an input failure naming `what` after [`WAIT`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> Result<T, Failure> {
    timeout(WAIT, future)
        .await
        .map_err(|_| Failure::Input(format!("timed out after {WAIT:?} waiting for {what}")))
}
