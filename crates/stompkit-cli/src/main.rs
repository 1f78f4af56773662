//! `stompkit`: the stompkit command line.
//!
//! This file only parses arguments and dispatches; each subcommand lives in its own module.

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use stompkit_codec::Version;

mod bench;
mod broker;
mod connect;
mod decode;
mod demo;
mod encode;
mod json;
mod proxy;
mod send;
mod status;
mod subscribe;

/// Tools for STOMP 1.0, 1.1 and 1.2 byte streams.
#[derive(Debug, Parser)]
#[command(name = "stompkit", version, propagate_version = true)]
#[command(
    after_help = "Exit status: 0 on success, 1 on an I/O error, 2 on invalid \
     input (a STOMP protocol error, truncated input, invalid JSON or a frame the encoder \
     refuses), invalid arguments, or a broker problem (unreachable, refused credentials or \
     messages, a certificate that does not verify, messages not confirmed or not received \
     in time)."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    Decode(decode::Args),
    Encode(encode::Args),
    Send(send::Args),
    Subscribe(subscribe::Args),
    Bench(bench::Args),
    Broker(broker::Args),
    Demo(demo::Args),
    Proxy(proxy::Args),
}

/// A STOMP protocol version, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StompVersion {
    #[value(name = "1.0")]
    V1_0,
    #[value(name = "1.1")]
    V1_1,
    #[value(name = "1.2")]
    V1_2,
}

impl From<StompVersion> for Version {
    fn from(version: StompVersion) -> Self {
        match version {
            StompVersion::V1_0 => Self::V1_0,
            StompVersion::V1_1 => Self::V1_1,
            StompVersion::V1_2 => Self::V1_2,
        }
    }
}

/// Why a subcommand failed.
#[derive(Debug)]
enum Failure {
    /// The input is not what it should be (exit status 2).
    Input(String),
    /// Reading or writing failed (exit status 1).
    Io(io::Error),
}

/// The runtime of `send` and `subscribe`: two threads, so that a blocked stdout never
/// holds up the client's heart-beats.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Decode(args) => decode::run(&args),
        Cmd::Encode(args) => encode::run(&args),
        Cmd::Send(args) => send::run(&args),
        Cmd::Subscribe(args) => subscribe::run(&args),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Broker(args) => broker::run(&args),
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Proxy(args) => proxy::run(&args),
    };
    let (message, status) = match result {
        Ok(()) => return ExitCode::SUCCESS,
        // The reader went away (`stompkit decode < big | head`): nothing left to do.
        Err(Failure::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            return ExitCode::SUCCESS;
        }
        Err(Failure::Io(e)) => (format!("I/O error: {e}"), 1),
        Err(Failure::Input(message)) => (message, 2),
    };
    // Over a status line written in place, if any; nothing more can be reported if stderr
    // is gone.
    connect::note(&format!("error: {message}"));
    ExitCode::from(status)
}
