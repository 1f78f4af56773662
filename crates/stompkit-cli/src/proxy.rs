//! `stompkit proxy`: the testkit's fault-injecting TCP proxy in front of any broker.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stompkit_testkit::{Direction, Error, Fault, FaultSchedule, Proxy};

use crate::Failure;

/// Run a fault-injecting TCP proxy in front of a broker
///
/// Clients connect to LISTEN; each connection is passed to UPSTREAM (host:port, any
/// broker, RabbitMQ included). Faults come at random times drawn from --seed (the same seed
/// gives the same times): --cut-every closes every connection, --stall-every holds all
/// bytes for --stall-for. --latency and --bandwidth apply to both directions throughout.
/// It prints its address and the seed on stderr and runs until Ctrl-C, SIGTERM or the end
/// of --duration, then prints what it did.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// Address to listen on (port 0: any free port)
    #[arg(value_name = "LISTEN")]
    listen: SocketAddr,

    /// The broker to pass connections to: host:port (a stomp:// prefix is accepted)
    #[arg(value_name = "UPSTREAM")]
    upstream: String,

    /// Cut every connection, on average this often (e.g. 3s, 500ms)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    cut_every: Option<Duration>,

    /// Stall every connection (nothing passes), on average this often
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    stall_every: Option<Duration>,

    /// How long a stall lasts, on average
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    stall_for: Duration,

    /// Added latency in each direction (e.g. 50ms)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    latency: Option<Duration>,

    /// Bandwidth limit in each direction, bytes per second (e.g. 100KiB, 1MiB, 5000)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    bandwidth: Option<u64>,

    /// Seed of the random fault times (default: from the clock; printed either way)
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Stop after this many seconds
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
}

/// `3s`, `500ms`, `2m`, `1.5s`, or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 3s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => return Err(format!("unknown unit {other:?} in {s:?}; use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} must be a positive duration"))
}

/// `100KiB`, `1MiB`, `64KB`, `5000B` or a number of bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. 100KiB, 1MiB or 5000"))?;
    let unit: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1_000_000,
        "MiB" => 1024 * 1024,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}; use B, KB, KiB, MB or MiB"
            ));
        }
    };
    value
        .checked_mul(unit)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} must be a positive size"))
}

/// Runs `stompkit proxy`.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    crate::runtime()?.block_on(serve(args))
}

fn schedule(args: &Args, seed: u64) -> FaultSchedule {
    let mut schedule = FaultSchedule::seeded(seed);
    if let Some(every) = args.cut_every {
        schedule = schedule.every(every, Fault::CutAll);
    }
    if let Some(every) = args.stall_every {
        schedule = schedule.every(every, Fault::Stall(Some(args.stall_for)));
    }
    for dir in [Direction::ToUpstream, Direction::ToClient] {
        if let Some(latency) = args.latency {
            schedule = schedule.at(Duration::ZERO, Fault::Latency(dir, latency));
        }
        if let Some(rate) = args.bandwidth {
            schedule = schedule.at(Duration::ZERO, Fault::Bandwidth(dir, Some(rate)));
        }
    }
    if let Some(secs) = args.duration {
        schedule = schedule.until(Duration::from_secs(secs));
    }
    schedule
}

async fn serve(args: &Args) -> Result<(), Failure> {
    let stop = crate::broker::stop_signal()?;
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let proxy = Proxy::builder(args.upstream.as_str())
        .listen(args.listen)
        .schedule(schedule(args, seed))
        .start()
        .await
        .map_err(|e| start_failure(args, e))?;
    writeln!(
        io::stderr().lock(),
        "stompkit proxy listening on {} -> {} (seed {seed}); Ctrl-C stops it",
        proxy.url(),
        args.upstream
    )?;
    let end = async {
        match args.duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = stop => {}
        () = end => {}
    }
    let stats = proxy.stats();
    writeln!(
        io::stderr().lock(),
        "stompkit proxy: stopping; {} connections passed, {} refused, {} cut; {} bytes up, {} down",
        stats.accepted,
        stats.refused,
        stats.cut,
        stats.to_upstream,
        stats.to_client
    )?;
    proxy.shutdown().await;
    Ok(())
}

fn start_failure(args: &Args, error: Error) -> Failure {
    match error {
        Error::Bind { source, .. } => Failure::Input(format!(
            "cannot listen on {}: {source}; choose another LISTEN address",
            args.listen
        )),
        other => Failure::Input(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_size};
    use std::time::Duration;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("4"), Ok(Duration::from_secs(4)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("100KiB"), Ok(102_400));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("5000"), Ok(5000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("10GiB").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }
}
