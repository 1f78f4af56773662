//! `stompkit send`: SEND messages to a broker.

use std::io::{self, Read as _};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt as _};
use stompkit_tokio::{Error, Message};

use crate::Failure;
use crate::connect::{ConnectArgs, Header, Run, parse_header};

/// Most receipted messages waiting for their receipt at once; more wait to be sent.
const IN_FLIGHT: usize = 1024;

/// Send messages to a destination
///
/// The body is BODY, or stdin read to its end when BODY is absent. With --count N, N
/// messages are sent, and each "{ n }" in the body (written without the spaces: clap's
/// help cannot show it) is replaced by the message's number, from 1.
///
/// Without --receipt a message counts as sent once written (at most once): an ERROR from
/// the broker stops the command with the broker's message, but one that comes after the
/// command ended goes unnoticed. With --receipt each message is confirmed by the broker and
/// re-sent after a reconnect until it is (at least once); an ERROR ends the command at once
/// and the exit status is 2 if any message was not confirmed.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// Broker URL, or several separated by commas (tried in turn): stomp://, stomp+ssl://,
    /// ws://, wss://, with optional login:passcode@ before the host
    #[arg(value_name = "URL")]
    url: String,

    /// Destination, e.g. /queue/a, /topic/b, /exchange/x/key
    #[arg(value_name = "DEST")]
    destination: String,

    /// Message body; read from stdin when absent
    #[arg(value_name = "BODY")]
    body: Option<String>,

    /// How many messages to send (each "{ n }" in the body, without the spaces, becomes
    /// 1, 2, ...)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,

    /// Ask a receipt for every message and wait for all of them
    #[arg(long)]
    receipt: bool,

    /// Extra header NAME:VALUE (repeatable); the value may contain ':'
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = parse_header)]
    headers: Vec<Header>,

    /// The content-type header, e.g. application/json
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,

    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `stompkit send`.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let body = match &args.body {
        Some(body) => body.clone().into_bytes(),
        None => read_body(args.connect.max_frame_bytes())?,
    };
    crate::runtime()?.block_on(send(args, &body))
}

/// Stdin to its end, refusing more than a frame can hold.
fn read_body(max: usize) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    io::stdin()
        .lock()
        .take(max as u64 + 1)
        .read_to_end(&mut body)?;
    if body.len() > max {
        return Err(Failure::Input(format!(
            "the body on stdin is over --max-frame-bytes {max}"
        )));
    }
    Ok(body)
}

async fn send(args: &Args, body: &[u8]) -> Result<(), Failure> {
    // An ERROR is how the broker refuses a message (RabbitMQ's names no receipt): it ends
    // the command rather than being re-sent into on the next connections.
    let run = args.connect.start(&args.url, true)?;
    let result = tokio::select! {
        biased;
        failure = run.failed() => Err(failure),
        result = send_all(args, body, &run) => result,
    };
    let late = run.finish().await;
    result?;
    late.map_or(Ok(()), Err)
}

async fn send_all(args: &Args, body: &[u8], run: &Run) -> Result<(), Failure> {
    let client = &run.client;
    let mut confirming = FuturesUnordered::new();
    for n in 1..=args.count {
        let message = message(args, body, n);
        if !args.receipt {
            client
                .send(message)
                .await
                .map_err(|e| Failure::Input(run.error_message(&e)))?;
            continue;
        }
        // Taken by the session (in order) before the next is sent; the receipt comes later.
        let confirmation = client
            .send_with_receipt(message)
            .await
            .map_err(|e| Failure::Input(run.error_message(&e)))?;
        confirming.push(async move { (n, confirmation.confirmed().await) });
        if confirming.len() >= IN_FLIGHT {
            if let Some((n, result)) = confirming.next().await {
                check(run, n, result).await?;
            }
        }
    }
    while let Some((n, result)) = confirming.next().await {
        check(run, n, result).await?;
    }
    if !args.receipt {
        // Messages queued while disconnected go out once connected; wait for that before
        // the DISCONNECT, which would drop them.
        client
            .wait_connected()
            .await
            .map_err(|e| Failure::Input(run.error_message(&e)))?;
    }
    Ok(())
}

async fn check<T>(run: &Run, n: u64, result: Result<T, Error>) -> Result<(), Failure> {
    let Err(error) = result else {
        return Ok(());
    };
    // A message dropped because the client gave up says less than why it gave up (a
    // certificate, refused credentials): report that instead.
    let closed = matches!(
        error,
        Error::Dropped {
            reason: stompkit_tokio::session::DropReason::SessionClosed,
            ..
        } | Error::ConnectionLost
            | Error::Closed
    );
    if closed {
        // The session is closed by now; the bound only guards against waiting on a reconnect.
        let gave_up = tokio::time::timeout(Duration::from_secs(1), run.client.wait_connected());
        if let Ok(Err(gave_up @ Error::GaveUp { .. })) = gave_up.await {
            return Err(Failure::Input(run.error_message(&gave_up)));
        }
    }
    Err(Failure::Input(format!(
        "message {n} was not confirmed: {}",
        run.error_message(&error)
    )))
}

/// Message number `n`: the body with `{n}` replaced, and the headers.
fn message(args: &Args, body: &[u8], n: u64) -> Message {
    let mut message = Message::new(args.destination.clone(), numbered(body, n));
    if let Some(content_type) = &args.content_type {
        message = message.header("content-type", content_type.clone());
    }
    for header in &args.headers {
        message = message.header(header.name.clone(), header.value.clone());
    }
    message
}

/// `body` with every `{n}` replaced by `n`.
fn numbered(body: &[u8], n: u64) -> Vec<u8> {
    const MARK: &[u8] = b"{n}";
    let number = n.to_string();
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.windows(MARK.len()).position(|w| w == MARK) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(number.as_bytes());
        rest = &rest[at + MARK.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn every_mark_is_replaced() {
        assert_eq!(numbered(b"a{n}b{n}", 12), b"a12b12");
        assert_eq!(numbered(b"{n", 3), b"{n");
        assert_eq!(numbered(b"", 3), b"");
        assert_eq!(numbered(&[0xff, b'{', b'n', b'}'], 7), [0xff, b'7']);
    }
}
