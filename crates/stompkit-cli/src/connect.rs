//! What `send` and `subscribe` share: the connection flags, starting the client, reporting
//! reconnects on stderr, and turning what went wrong into one line that names CLI flags.

use std::fmt;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::MultiProgress;
use stompkit_tokio::session::{
    BackoffConfig, BreakerConfig, FailureKind, GiveUpReason, HandshakeFailure, Limits,
};
use stompkit_tokio::{
    Client, ClientEvent, Endpoint, Error, SessionConfig, State, TlsConfig, TransportConfig,
};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::Failure;

/// How long the event reporter may take to catch up with the last events once the client
/// is gone (a DISCONNECT refused by an `ERROR` is reported then).
const REPORTER_DRAIN: Duration = Duration::from_secs(2);

/// The flags of `send` and `subscribe` that say how to reach the broker.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Login (overrides the one in the URL)
    #[arg(long, value_name = "LOGIN")]
    login: Option<String>,

    /// Passcode (overrides the one in the URL); prefer the environment variable, which other
    /// users of the machine cannot see in the process list
    #[arg(
        long,
        value_name = "PASSCODE",
        env = "STOMP_PASSCODE",
        hide_env_values = true
    )]
    passcode: Option<Passcode>,

    /// The CONNECT host header: the virtual host on RabbitMQ
    #[arg(long, value_name = "HOST", default_value = "/")]
    host: String,

    /// Heart-beats in milliseconds: how often we send, how often we want to hear the broker
    /// (0 turns a direction off)
    #[arg(long, value_name = "CX,CY", default_value = "10000,10000", value_parser = parse_heart_beat)]
    heart_beat: HeartBeat,

    /// Verify the broker's TLS certificate against the CA certificates in this PEM file
    /// instead of the system's roots (stomp+ssl:// and wss://)
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,

    /// Reconnect attempts after a failure before giving up (the budget starts again once a
    /// connection has stayed up for 5 s)
    #[arg(long, value_name = "N", default_value_t = 5)]
    max_reconnects: u32,

    /// How long the broker's receipt for a message (with --receipt) or for the
    /// subscription is waited for, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    receipt_timeout: u64,

    /// Largest frame in bytes, sent or received
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_frame_bytes, value_parser = parse_positive)]
    max_frame_bytes: usize,
}

/// A passcode from the command line or the environment; its `Debug` hides it.
#[derive(Clone)]
struct Passcode(String);

impl FromStr for Passcode {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for Passcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passcode(***)")
    }
}

/// `--heart-beat CX,CY`.
#[derive(Debug, Clone, Copy)]
struct HeartBeat(Duration, Duration);

fn parse_heart_beat(s: &str) -> Result<HeartBeat, String> {
    let (cx, cy) = s
        .split_once(',')
        .ok_or_else(|| "expected two numbers of milliseconds, e.g. 10000,10000".to_owned())?;
    let ms = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| format!("{v:?}: {e}"))
    };
    Ok(HeartBeat(ms(cx)?, ms(cy)?))
}

pub(crate) fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A `--header K:V`, split at its first `:`.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) value: String,
}

pub(crate) fn parse_header(s: &str) -> Result<Header, String> {
    match s.split_once(':') {
        Some(("", _)) => Err("the header name before ':' is empty".to_owned()),
        Some((name, value)) => Ok(Header {
            name: name.to_owned(),
            value: value.to_owned(),
        }),
        None => Err("expected NAME:VALUE (no ':' found)".to_owned()),
    }
}

impl ConnectArgs {
    /// The largest frame, for the body read from stdin.
    pub(crate) fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Starts a client for `urls` (connecting in the background) and the task that reports
    /// its lifecycle on stderr.
    /// While `stop_on_server_error` holds (see [`Run::ride_through_server_errors`]), a
    /// connection ended by an `ERROR` from the broker ends the command.
    pub(crate) fn start(&self, urls: &str, stop_on_server_error: bool) -> Result<Run, Failure> {
        let endpoints = Endpoint::parse_list(urls)
            .map_err(|e| Failure::Input(e.to_string()))?
            .into_iter()
            .map(|endpoint| self.with_credentials(endpoint))
            .collect();
        let mut transport = TransportConfig::default();
        if let Some(path) = &self.ca {
            transport = transport.with_tls(read_ca(path)?);
        }
        let backoff = BackoffConfig::default().max_attempts(Some(self.max_reconnects));
        // The breaker would add pauses of its own; here --max-reconnects alone decides.
        let breaker = BreakerConfig::default().no_consecutive_failures();
        let max_frame_bytes = self.max_frame_bytes;
        let receipt_timeout = Duration::from_secs(self.receipt_timeout);
        let HeartBeat(send, receive) = self.heart_beat;
        let (client, events) = Client::builder_for(endpoints)
            .host(self.host.clone())
            .heart_beat(send, receive)
            .transport(transport)
            .session_with(|session: SessionConfig| {
                session
                    .with_backoff(backoff)
                    .with_breaker(breaker)
                    .with_receipt_timeout(receipt_timeout)
                    .with_max_send_frame_bytes(max_frame_bytes)
                    .with_limits(Limits::default().with_max_frame_bytes(max_frame_bytes))
            })
            .start_with_events()
            .map_err(|e| Failure::Input(e.to_string()))?;
        let (fatal_tx, fatal) = watch::channel(None);
        let stop_on_server_error = Arc::new(AtomicBool::new(stop_on_server_error));
        let reporter = tokio::spawn(report(
            events,
            fatal_tx,
            Arc::clone(&stop_on_server_error),
            self.max_reconnects,
        ));
        Ok(Run {
            client,
            stop_on_server_error,
            fatal,
            reporter,
            max_reconnects: self.max_reconnects,
            receipt_timeout: self.receipt_timeout,
        })
    }

    fn with_credentials(&self, endpoint: Endpoint) -> Endpoint {
        if self.login.is_none() && self.passcode.is_none() {
            return endpoint;
        }
        let login = self
            .login
            .clone()
            .or_else(|| endpoint.login().map(str::to_owned));
        let passcode = self
            .passcode
            .as_ref()
            .map(|p| p.0.clone())
            .or_else(|| endpoint.passcode().map(str::to_owned));
        endpoint.with_credentials(login, passcode)
    }
}

/// Reads the `--ca` file now, so that a missing file is one clear error rather than a
/// failed attempt after another.
fn read_ca(path: &PathBuf) -> Result<TlsConfig, Failure> {
    let pem = std::fs::read(path)
        .map_err(|e| Failure::Input(format!("cannot read --ca {}: {e}", path.display())))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(Failure::Input(format!(
            "--ca {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(TlsConfig::with_ca_pem(pem))
}

/// A started client and what watches it.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) client: Client,
    /// Set by the reporter when something happened that ends the command.
    fatal: watch::Receiver<Option<String>>,
    stop_on_server_error: Arc<AtomicBool>,
    reporter: JoinHandle<()>,
    max_reconnects: u32,
    receipt_timeout: u64,
}

impl Run {
    /// Resolves with the message of the first failure that ends the command: the session
    /// gave up, a certificate that does not verify, a broker `ERROR` when those end it.
    /// Never resolves while the client is fine.
    pub(crate) async fn failed(&self) -> Failure {
        let mut fatal = self.fatal.clone();
        let from_events = async {
            loop {
                if let Some(message) = fatal.borrow_and_update().clone() {
                    return message;
                }
                if fatal.changed().await.is_err() {
                    // The reporter ended without a failure: only the session can tell now.
                    return std::future::pending().await;
                }
            }
        };
        // The reporter may have subscribed after the first events; the session's own
        // record of giving up is checked too.
        let gave_up = async {
            loop {
                if let Err(error) = self.client.wait_connected().await {
                    return self.error_message(&error);
                }
                let mut state = self.client.state();
                while *state.borrow_and_update() == State::Connected {
                    if state.changed().await.is_err() {
                        return self.error_message(&Error::Closed);
                    }
                }
            }
        };
        let message = tokio::select! {
            message = from_events => message,
            message = gave_up => message,
        };
        Failure::Input(message)
    }

    /// From now on a connection ended by an `ERROR` is reported and ridden through.
    pub(crate) fn ride_through_server_errors(&self) {
        self.stop_on_server_error.store(false, Ordering::Release);
    }

    /// The failure recorded so far, waiting at most `grace` for one: an operation that
    /// failed because the connection ended has a better explanation there (the
    /// broker's `ERROR`), which the reporter may still be recording.
    pub(crate) async fn explained(&self, grace: Duration) -> Option<Failure> {
        tokio::time::timeout(grace, async {
            let mut fatal = self.fatal.clone();
            loop {
                if let Some(message) = fatal.borrow_and_update().clone() {
                    return Some(Failure::Input(message));
                }
                if fatal.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// The one line for an error of the client, naming flags rather than library settings.
    pub(crate) fn error_message(&self, error: &Error) -> String {
        match error {
            Error::GaveUp { reason, last, .. } => gave_up_message(
                *reason,
                last.as_ref().map(|f| (f.kind, f.detail.clone())),
                self.max_reconnects,
            ),
            Error::Send(refused) => match refused.error() {
                stompkit_tokio::session::Error::FrameTooLarge { size, limit } => format!(
                    "the message is {size} bytes as a frame, over --max-frame-bytes {limit}"
                ),
                other => format!("message refused: {other}"),
            },
            Error::ReceiptTimeout => format!(
                "no receipt from the broker within --receipt-timeout {}",
                self.receipt_timeout
            ),
            other => other.to_string(),
        }
    }

    /// Disconnects gracefully, then waits (bounded) for the reporter to print the last
    /// events. Returns a failure the reporter saw at the very end (an `ERROR` in answer to
    /// what was sent last).
    pub(crate) async fn finish(self) -> Option<Failure> {
        let _ = self.client.disconnect().await;
        drop(self.client);
        let _ = tokio::time::timeout(REPORTER_DRAIN, self.reporter).await;
        self.fatal.borrow().clone().map(Failure::Input)
    }
}

/// The progress bars on the terminal while a command draws them: notes go above them, so
/// that a reconnect notice does not land in the middle of a bar.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Sends [`note`]s above `bars` until dropped.
#[must_use = "notes go above the bars only while this is kept"]
#[derive(Debug)]
pub(crate) struct NotesAbove(());

impl NotesAbove {
    pub(crate) fn new(bars: Option<&MultiProgress>) -> Self {
        *BARS.lock().unwrap_or_else(PoisonError::into_inner) = bars.cloned();
        Self(())
    }
}

impl Drop for NotesAbove {
    fn drop(&mut self) {
        *BARS.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Whether a status line is being rewritten in place on the terminal (`subscribe --stats`):
/// a note then clears it first and the next status line is written below the note.
static STATUS_IN_PLACE: AtomicBool = AtomicBool::new(false);

/// Says that a status line is (or is no longer) rewritten in place on stderr.
pub(crate) fn status_in_place(on: bool) {
    STATUS_IN_PLACE.store(on, Ordering::Relaxed);
}

/// Writes one line on stderr, above the progress bars if some are drawn; nothing more can be
/// done if stderr is gone.
pub(crate) fn note(line: &str) {
    let bars = BARS.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if bars.is_some_and(|bars| bars.println(line).is_ok()) {
        return;
    }
    let _ = io::stderr().lock().write_all(note_text(line).as_bytes());
}

/// `line` as [`note`] writes it on stderr.
fn note_text(line: &str) -> String {
    if STATUS_IN_PLACE.load(Ordering::Relaxed) {
        // Over the status line, which the next tick writes again below.
        format!("\r\x1b[K{line}\n")
    } else {
        format!("{line}\n")
    }
}

/// Prints reconnects on stderr and flags what ends the command.
///
/// A failed attempt is printed only once the session decided to try again: when it gives
/// up instead, the error line alone says why.
async fn report(
    mut events: broadcast::Receiver<ClientEvent>,
    fatal: watch::Sender<Option<String>>,
    stop_on_server_error: Arc<AtomicBool>,
    max_reconnects: u32,
) {
    let mut pending: Option<String> = None;
    let mut last_failure: Option<(FailureKind, String)> = None;
    let mut failed_since_connected = false;
    // The `message` of an ERROR not yet explained by a failed connection.
    let mut refused: Option<String> = None;
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                note(&format!("stompkit: {n} connection events were not shown"));
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => {
                if let Some(message) = refused {
                    if stop_on_server_error.load(Ordering::Acquire) {
                        set(&fatal, format!("the broker refused: {message}"));
                    }
                }
                return;
            }
        };
        match event {
            ClientEvent::AttemptFailed {
                attempt,
                endpoint,
                failure,
            } => {
                failed_since_connected = true;
                if let Some(line) = pending.take() {
                    note(&line);
                }
                if is_certificate_failure(&failure.detail) {
                    // Retrying will not make the certificate verify.
                    set(&fatal, certificate_message(&failure.detail));
                    continue;
                }
                if failure.kind == FailureKind::ServerError {
                    refused = None;
                }
                if failure.kind == FailureKind::ServerError
                    && stop_on_server_error.load(Ordering::Acquire)
                {
                    set(&fatal, format!("the broker refused: {}", failure.detail));
                    continue;
                }
                pending = Some(format!(
                    "stompkit: attempt {} to {endpoint} failed: {}; reconnecting",
                    attempt.number(),
                    failure.detail
                ));
                last_failure = Some((failure.kind, failure.detail));
            }
            ClientEvent::Connected {
                endpoint, version, ..
            } => {
                if let Some(line) = pending.take() {
                    note(&line);
                }
                if failed_since_connected {
                    note(&format!(
                        "stompkit: reconnected to {endpoint} (STOMP {version})"
                    ));
                }
                failed_since_connected = false;
            }
            ClientEvent::GaveUp { reason } => {
                pending = None;
                let last = last_failure.take();
                set(&fatal, gave_up_message(reason, last, max_reconnects));
            }
            ClientEvent::ServerError { message, .. } => {
                // Followed by the failed connection's fuller text, except when the
                // connection was ending anyway (the ERROR answered our last frames).
                refused = Some(message.unwrap_or_else(|| "(no message header)".to_owned()));
            }
            _ => {
                if let Some(line) = pending.take() {
                    note(&line);
                }
            }
        }
    }
}

/// Records the failure that ends the command, unless one was recorded already.
fn set(fatal: &watch::Sender<Option<String>>, message: String) {
    fatal.send_if_modified(|slot| {
        if slot.is_some() {
            return false;
        }
        *slot = Some(message);
        true
    });
}

/// Whether a failure's text is the client's "certificate does not verify" error
/// (`stompkit_tokio::Error::TlsCertificate`; the session keeps only the text).
fn is_certificate_failure(detail: &str) -> bool {
    detail.contains("TLS certificate of") && detail.contains("does not verify")
}

fn certificate_message(detail: &str) -> String {
    format!("{detail}; give the CA certificate that signed it with --ca FILE")
}

fn gave_up_message(
    reason: GiveUpReason,
    last: Option<(FailureKind, String)>,
    max_reconnects: u32,
) -> String {
    let detail = last.map_or_else(|| "no attempt was reported".to_owned(), |(_, d)| d);
    if is_certificate_failure(&detail) {
        return certificate_message(&detail);
    }
    match reason {
        GiveUpReason::RetriesExhausted => {
            format!("cannot connect: {detail} (gave up after --max-reconnects {max_reconnects})")
        }
        GiveUpReason::NonRetryable(FailureKind::Handshake(HandshakeFailure::Auth)) => format!(
            "the broker refused the connection: {detail} (check --login, --passcode and --host)"
        ),
        GiveUpReason::NonRetryable(FailureKind::Handshake(HandshakeFailure::Credentials)) => {
            format!("{detail} (check --login and --passcode)")
        }
        GiveUpReason::RepeatedFailure(_) => {
            format!("{detail} (a frame from the broker is over --max-frame-bytes?)")
        }
        _ => format!("gave up connecting: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, TermLike};

    use super::{NotesAbove, note, note_text, status_in_place};

    /// A terminal that keeps the lines written to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push(s.to_owned());
            Ok(())
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.write_line(s)
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn notes_go_above_the_bars_while_they_are_drawn() {
        let screen = Screen::default();
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(
            screen.clone(),
        )));
        let bar = bars.add(ProgressBar::new(10));
        bar.set_position(3);
        {
            let _above = NotesAbove::new(Some(&bars));
            note("stompkit: reconnected (a test note)");
        }
        let lines = screen.0.lock().unwrap().clone();
        assert!(
            lines
                .iter()
                .any(|l| l == "stompkit: reconnected (a test note)"),
            "{lines:?}"
        );
        // Once dropped, notes go to stderr again, not to the bars.
        note("stompkit: after (a test note)");
        let lines = screen.0.lock().unwrap().clone();
        assert!(!lines.iter().any(|l| l.contains("after")), "{lines:?}");
    }

    #[test]
    fn a_note_clears_a_status_line_written_in_place() {
        assert_eq!(note_text("a"), "a\n");
        status_in_place(true);
        let over = note_text("a");
        status_in_place(false);
        assert_eq!(over, "\r\x1b[Ka\n");
        assert_eq!(note_text("a"), "a\n");
    }
}
