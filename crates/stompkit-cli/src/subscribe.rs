//! `stompkit subscribe`: print the messages of a destination.

use std::cell::Cell;
use std::io::{self, IsTerminal as _, Write};
use std::time::Duration;

use clap::ValueEnum;
use stompkit_tokio::session::SubscriptionEnd;
use stompkit_tokio::{AckMode, Delivery, Subscribe};

use crate::Failure;
use crate::connect::{ConnectArgs, Header, Run, note, parse_header};
use crate::json::OutLine;
use crate::status::{Connections, Flow, Sample, per_second, status_line};

/// How long a failed SUBSCRIBE waits for the broker's explanation.
const EXPLAIN_GRACE: Duration = Duration::from_secs(1);

/// Subscribe to a destination and print its messages
///
/// Each message is printed as its body followed by a newline, or with --json as one JSON
/// object like those of `stompkit decode`:
/// {"command":"MESSAGE","headers":[["destination","/queue/a"],...],"body":"hello"}
///
/// With --ack client or client-individual, each message is acknowledged after it was
/// printed and stdout flushed; a message printed but not acknowledged (the connection
/// dropped in between) is delivered again, so it may be printed twice. With --ack auto
/// (the default) the broker counts a message as delivered when it sends it.
///
/// Without --count, runs until interrupted (or --timeout).
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

    /// Acknowledgement mode
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    ack: Ack,

    /// Exit after N messages
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,

    /// Stop after SECS seconds; with --count, exit with status 2 if fewer messages arrived
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,

    /// Print each message as a JSON object (the shape `stompkit decode` prints)
    #[arg(long)]
    json: bool,

    /// Extra SUBSCRIBE header NAME:VALUE (repeatable), e.g. prefetch-count:10
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = parse_header)]
    headers: Vec<Header>,

    /// A status line on stderr every SECS seconds (default 1): state, uptime, messages and
    /// messages/s, reconnects, queue depth, unconfirmed sends, buffered bytes, the last
    /// failure and its class. Rewritten in place on a terminal, one line each time otherwise
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1",
          value_parser = clap::value_parser!(u64).range(1..))]
    stats: Option<u64>,

    #[command(flatten)]
    connect: ConnectArgs,
}

/// `--ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Ack {
    Auto,
    Client,
    ClientIndividual,
}

impl From<Ack> for AckMode {
    fn from(ack: Ack) -> Self {
        match ack {
            Ack::Auto => Self::Auto,
            Ack::Client => Self::Client,
            Ack::ClientIndividual => Self::ClientIndividual,
        }
    }
}

/// Runs `stompkit subscribe`.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    crate::runtime()?.block_on(subscribe(args))
}

async fn subscribe(args: &Args) -> Result<(), Failure> {
    let run = args.connect.start(&args.url, true)?;
    let deadline = args.timeout.map(|secs| {
        (
            secs,
            tokio::time::Instant::now() + Duration::from_secs(secs),
        )
    });
    let received = Cell::new(0);
    let work = receive(args, &run, &received);
    let status = report_status(args.stats, &run, &received);
    let result = tokio::select! {
        biased;
        failure = run.failed() => Err(failure),
        result = work => result,
        () = status => Ok(()),
        () = sleep_until(deadline.map(|(_, at)| at)) => match (args.count, deadline) {
            (Some(count), Some((secs, _))) => Err(Failure::Input(format!(
                "--timeout {secs}: {} of --count {count} messages arrived in time",
                received.get()
            ))),
            _ => Ok(()),
        },
    };
    // A failure at the very end (after the last message) does not undo what was printed.
    let _ = run.finish().await;
    result
}

/// `--stats`: a status line every `secs` seconds until the command ends (never returns
/// while the client lives).
async fn report_status(secs: Option<u64>, run: &Run, received: &Cell<u64>) {
    let Some(secs) = secs else {
        return std::future::pending().await;
    };
    let terminal = io::stderr().is_terminal();
    crate::connect::status_in_place(terminal);
    let every = Duration::from_secs(secs);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut before = received.get();
    let started = std::time::Instant::now();
    loop {
        ticks.tick().await;
        let Ok(status) = run.client.status().await else {
            return std::future::pending().await;
        };
        let now = received.get();
        let flow = Flow {
            count: now,
            what: "messages",
            per_second: per_second(now - before, every),
        };
        before = now;
        let connection = Connections::one(&Sample::from(&status));
        let line = status_line("stompkit", &connection, started.elapsed(), &[flow]);
        let mut err = io::stderr().lock();
        // On a terminal the line is rewritten in place; elsewhere each is its own line.
        let _ = if terminal {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn receive(args: &Args, run: &Run, received: &Cell<u64>) -> Result<(), Failure> {
    let mut request = Subscribe::new(args.destination.clone())
        .ack(args.ack.into())
        .receipt();
    for header in &args.headers {
        request = request.header(header.name.clone(), header.value.clone());
    }
    let mut subscription = match run.client.subscribe(request).await {
        Ok(subscription) => subscription,
        Err(e) => {
            return Err(run
                .explained(EXPLAIN_GRACE)
                .await
                .unwrap_or_else(|| Failure::Input(run.error_message(&e))));
        }
    };
    // Refused subscriptions end the command above; later an ERROR (a broker shutting
    // down) is a connection loss like another.
    run.ride_through_server_errors();
    let mut out = io::stdout().lock();
    while args.count.is_none_or(|count| received.get() < count) {
        let Some(delivery) = subscription.next_delivery().await else {
            return Err(Failure::Input(match subscription.end_reason() {
                Some(SubscriptionEnd::Refused(frame)) => {
                    run.error_message(&stompkit_tokio::Error::Broker(frame))
                }
                _ => "the subscription ended".to_owned(),
            }));
        };
        print(&mut out, &delivery, args.json)?;
        received.set(received.get() + 1);
        if args.ack != Ack::Auto {
            if let Err(e) = delivery.ack().await {
                note(&format!(
                    "stompkit: message not acknowledged ({}); the broker will deliver it again",
                    run.error_message(&e)
                ));
            }
        }
    }
    Ok(())
}

/// Prints one message and flushes, so that it is out before it is acknowledged.
fn print(out: &mut impl Write, delivery: &Delivery, json: bool) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, &OutLine::from_frame(delivery.frame()))?;
    } else {
        out.write_all(delivery.body())?;
    }
    out.write_all(b"\n")?;
    out.flush()
}
