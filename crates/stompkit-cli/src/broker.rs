//! `stompkit broker`: the testkit's embedded broker as a development server.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;

use stompkit_testkit::{BrokerConfig, Dialect, EmbeddedBroker, Error};

use crate::Failure;

/// Run a STOMP broker on this machine for development and tests
///
/// The stompkit-testkit broker: queues, topics, /exchange/ destinations, every ack mode,
/// receipts, transactions, NACK and redelivery, heart-beats; STOMP 1.0, 1.1 and 1.2 over
/// TCP and over WebSocket (path /ws, subprotocols v10.stomp, v11.stomp, v12.stomp).
/// With --tls it also serves STOMP over TLS, with a CA and a certificate (for localhost and
/// 127.0.0.1) generated at each start; --tls-ca-out saves the CA for clients' --ca.
/// Messages live in memory only. Any login is accepted unless --user is given. It prints
/// its URLs on stderr and runs until Ctrl-C or SIGTERM.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// TCP listen address (port 0: any free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:61613")]
    listen: SocketAddr,

    /// WebSocket listen address (port 0: any free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15674")]
    ws: SocketAddr,

    /// Serve no WebSocket
    #[arg(long, conflicts_with = "ws")]
    no_ws: bool,

    /// Also serve STOMP over TLS (stomp+ssl://) at this address (port 0: any free port),
    /// with a CA and a server certificate generated at this start
    #[arg(long, value_name = "ADDR")]
    tls: Option<SocketAddr>,

    /// Write the generated CA certificate (PEM) to this file, for clients to trust
    /// (`stompkit send --ca FILE`); written before the URLs are printed
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_ca_out: Option<PathBuf>,

    /// Which broker to behave as: rabbitmq, or spring-simple (Spring's simple broker: no
    /// acknowledgements, receipts only for DISCONNECT, 64 KiB frames)
    #[arg(long, value_name = "NAME", default_value = "rabbitmq", value_parser = parse_dialect)]
    dialect: Dialect,

    /// Accept only this login and passcode (repeatable); without it any login is accepted
    #[arg(long = "user", value_name = "LOGIN:PASSCODE", value_parser = parse_user)]
    users: Vec<User>,

    /// A virtual host CONNECT may name in its host header (repeatable; default /)
    #[arg(long = "vhost", value_name = "NAME")]
    vhosts: Vec<String>,
}

/// A `--user LOGIN:PASSCODE`; its `Debug` hides the passcode.
#[derive(Clone)]
struct User {
    login: String,
    passcode: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "User({:?}, ***)", self.login)
    }
}

fn parse_user(s: &str) -> Result<User, String> {
    match s.split_once(':') {
        Some((login, passcode)) if !login.is_empty() => Ok(User {
            login: login.to_owned(),
            passcode: passcode.to_owned(),
        }),
        _ => Err("expected LOGIN:PASSCODE, e.g. guest:guest".to_owned()),
    }
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    s.parse::<Dialect>().map_err(|e| e.to_string())
}

/// Runs `stompkit broker`.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    crate::runtime()?.block_on(serve(args))
}

fn config(args: &Args) -> BrokerConfig {
    let mut config = BrokerConfig::new(args.dialect);
    for user in &args.users {
        config = config.with_user(user.login.clone(), user.passcode.clone());
    }
    if !args.vhosts.is_empty() {
        let vhosts: Vec<&str> = args.vhosts.iter().map(String::as_str).collect();
        config = config.with_vhosts(&vhosts);
    }
    config
}

async fn serve(args: &Args) -> Result<(), Failure> {
    // Listening for signals before binding: a SIGTERM right after the URLs are printed
    // must stop the broker gracefully, not kill the process.
    let stop = stop_signal()?;
    let broker = EmbeddedBroker::builder()
        .config(config(args))
        .tcp_addr(args.listen)
        .ws_addr((!args.no_ws).then_some(args.ws))
        .tls_addr(args.tls)
        .start()
        .await
        .map_err(|e| bind_failure(args, e))?;
    if let (Some(path), Some(pem)) = (&args.tls_ca_out, broker.ca_pem()) {
        std::fs::write(path, pem).map_err(|e| {
            Failure::Input(format!(
                "cannot write the CA certificate to {}: {e}; choose another file with \
                 --tls-ca-out FILE",
                path.display()
            ))
        })?;
    }
    {
        let mut err = io::stderr().lock();
        writeln!(
            err,
            "stompkit broker ({} dialect) listening on:",
            args.dialect
        )?;
        writeln!(err, "  {}", broker.stomp_url())?;
        if let Some(ws) = broker.ws_url() {
            writeln!(err, "  {ws}")?;
        }
        if let Some(tls) = broker.tls_url() {
            writeln!(err, "  {tls}")?;
            match &args.tls_ca_out {
                Some(path) => writeln!(err, "TLS CA certificate in {}", path.display())?,
                None => writeln!(
                    err,
                    "TLS CA certificate not saved (--tls-ca-out FILE saves it)"
                )?,
            }
        }
        let logins = if args.users.is_empty() {
            "any login accepted".to_owned()
        } else {
            let names: Vec<&str> = args.users.iter().map(|u| u.login.as_str()).collect();
            format!("logins: {}", names.join(", "))
        };
        writeln!(err, "{logins}; Ctrl-C stops it")?;
    }
    stop.await;
    let _ = writeln!(io::stderr().lock(), "stompkit broker: stopping");
    broker.shutdown().await;
    Ok(())
}

/// What the listeners' bind error means for the user, naming the flag to change.
fn bind_failure(args: &Args, error: Error) -> Failure {
    match error {
        Error::Bind { what, source } => {
            let (flag, addr) = match (what, args.tls) {
                ("TCP", _) => ("--listen", args.listen),
                ("TLS", Some(tls)) => ("--tls", tls),
                _ => ("--ws", args.ws),
            };
            let why = match source.kind() {
                io::ErrorKind::AddrInUse => "the address is in use (another broker?)".to_owned(),
                _ => source.to_string(),
            };
            Failure::Input(format!(
                "cannot listen on {addr} ({what}): {why}; choose another address with {flag} ADDR"
            ))
        }
        other => Failure::Input(other.to_string()),
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. Both handlers are installed when this returns.
/// (`stompkit broker` and `stompkit proxy` run until then.)
#[cfg(unix)]
pub(crate) fn stop_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
pub(crate) fn stop_signal() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_dialect, parse_user};
    use stompkit_testkit::Dialect;

    #[test]
    fn users_split_at_the_first_colon() {
        let user = parse_user("guest:pa:ss").expect("valid");
        assert_eq!(
            (user.login.as_str(), user.passcode.as_str()),
            ("guest", "pa:ss")
        );
        assert!(!format!("{user:?}").contains("pa:ss"));
        assert!(parse_user("guest").is_err());
        assert!(parse_user(":x").is_err());
    }

    #[test]
    fn dialects_by_name() {
        assert_eq!(parse_dialect("spring-simple"), Ok(Dialect::SpringSimple));
        assert!(parse_dialect("activemq").is_err());
    }
}
