//! `--stats`: the status line of `subscribe` (one connection) and `bench` (many), formatted
//! here once.

use std::time::Duration;

use stompkit_tokio::session::Failure;
use stompkit_tokio::{State, Status};

/// The state names a status line uses, in the order it lists them.
const STATES: [&str; 7] = [
    "connected",
    "connecting",
    "reconnecting",
    "breaker-open",
    "disconnecting",
    "closed",
    "idle",
];

/// Where [`STATES`] lists `state`.
fn state_index(state: State) -> usize {
    match state {
        State::Connected => 0,
        State::Connecting => 1,
        State::Reconnecting { .. } => 2,
        // The circuit breaker is open until its next probe.
        State::Failed { .. } => 3,
        State::Disconnecting => 4,
        State::Closed => 5,
        State::Idle => 6,
    }
}

/// What a status line uses of one connection's [`Status`] (a `Status` cannot be built
/// outside its crate, so the tests build these).
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    state: State,
    reconnects: u64,
    /// Failed attempts and connections so far: a rise says `last_failure` is new.
    failures: u64,
    queued: usize,
    unconfirmed: usize,
    buffered_bytes: usize,
    last_failure: Option<Failure>,
}

impl From<&Status> for Sample {
    fn from(status: &Status) -> Self {
        Self {
            state: status.state,
            reconnects: status.stats.reconnections,
            failures: status.stats.failures,
            queued: status.queued,
            unconfirmed: status.unconfirmed,
            buffered_bytes: status.buffered_bytes,
            last_failure: status.last_failure.clone(),
        }
    }
}

/// One connection's status, or the sum of many.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections {
    /// Connections in each state, in [`STATES`] order.
    states: [usize; STATES.len()],
    reconnects: u64,
    queued: usize,
    unconfirmed: usize,
    buffered_bytes: usize,
    /// The newest failure and, when there are several connections, which one (from 1).
    last_failure: Option<(Option<usize>, Failure)>,
}

impl Connections {
    /// A single connection's status.
    pub(crate) fn one(sample: &Sample) -> Self {
        let mut connections = Self::default();
        connections.add(sample);
        connections.last_failure = sample.last_failure.clone().map(|f| (None, f));
        connections
    }

    /// Counts one more connection (its failure is the [`Aggregator`]'s business).
    fn add(&mut self, sample: &Sample) {
        self.states[state_index(sample.state)] += 1;
        self.reconnects += sample.reconnects;
        self.queued += sample.queued;
        self.unconfirmed += sample.unconfirmed;
        self.buffered_bytes += sample.buffered_bytes;
    }

    fn total(&self) -> usize {
        self.states.iter().sum()
    }

    /// "connected" for one connection; "3/4 connected, 1 reconnecting" for several.
    fn state_text(&self) -> String {
        let total = self.total();
        if total == 1 {
            let index = self.states.iter().position(|&n| n == 1).unwrap_or(0);
            return STATES[index].to_owned();
        }
        let mut text = format!("{}/{total} {}", self.states[0], STATES[0]);
        for (name, &n) in STATES.iter().zip(&self.states).skip(1) {
            if n > 0 {
                text.push_str(&format!(", {n} {name}"));
            }
        }
        text
    }
}

/// Sums the statuses of many connections tick after tick, remembering which failed last.
#[derive(Debug, Default)]
pub(crate) struct Aggregator {
    /// Each connection's failure count at the previous tick.
    failures: Vec<u64>,
    latest: Option<(usize, Failure)>,
}

impl Aggregator {
    /// Sums `samples` (`None`: a connection whose client is gone, counted as closed).
    ///
    /// A failure carries no time, so the newest is the one of a connection whose failure
    /// count rose since the last call (the last such one when several did).
    pub(crate) fn collect(&mut self, samples: &[Option<Sample>]) -> Connections {
        self.failures.resize(samples.len(), 0);
        let mut connections = Connections::default();
        for (i, sample) in samples.iter().enumerate() {
            let Some(sample) = sample else {
                connections.states[state_index(State::Closed)] += 1;
                continue;
            };
            connections.add(sample);
            if sample.failures > self.failures[i] {
                self.failures[i] = sample.failures;
                if let Some(failure) = &sample.last_failure {
                    self.latest = Some((i, failure.clone()));
                }
            }
        }
        connections.last_failure = self
            .latest
            .clone()
            .map(|(i, failure)| (Some(i + 1), failure));
        connections
    }
}

/// A count and its rate per second, e.g. messages received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow<'a> {
    pub(crate) count: u64,
    pub(crate) what: &'a str,
    pub(crate) per_second: f64,
}

/// One status line: what a person watching the command wants to see at a glance.
///
/// One connection: `stompkit: connected up 3s, 12 messages (4.0/s), 0 reconnects, ...`;
/// several: `stompkit bench: up 3s, 4/4 connected, 120 sent (40.0/s), ...`.
pub(crate) fn status_line(
    prefix: &str,
    connections: &Connections,
    elapsed: Duration,
    flows: &[Flow<'_>],
) -> String {
    let up = elapsed.as_secs();
    let mut line = if connections.total() == 1 {
        format!("{prefix}: {} up {up}s", connections.state_text())
    } else {
        format!("{prefix}: up {up}s, {}", connections.state_text())
    };
    for flow in flows {
        line.push_str(&format!(
            ", {} {} ({:.1}/s)",
            flow.count, flow.what, flow.per_second
        ));
    }
    line.push_str(&format!(
        ", {} reconnects, {} queued, {} unconfirmed, {} B buffered",
        connections.reconnects,
        connections.queued,
        connections.unconfirmed,
        connections.buffered_bytes
    ));
    if let Some((which, failure)) = &connections.last_failure {
        // The detail never holds credentials (the session keeps them out).
        line.push_str(&format!(
            " last-failure={:?}: {}",
            failure.kind, failure.detail
        ));
        if let Some(n) = which {
            line.push_str(&format!(" (connection {n})"));
        }
    }
    line
}

/// A rate per second for people to read.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn per_second(count: u64, over: Duration) -> f64 {
    count as f64 / over.as_secs_f64().max(f64::EPSILON)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use stompkit_tokio::State;
    use stompkit_tokio::session::{Failure, FailureKind};

    use super::{Aggregator, Connections, Flow, Sample, status_line};

    fn sample(state: State, failures: u64, failure: Option<&str>) -> Sample {
        Sample {
            state,
            reconnects: failures,
            failures,
            queued: 2,
            unconfirmed: 3,
            buffered_bytes: 100,
            last_failure: failure.map(|detail| Failure {
                kind: FailureKind::Network,
                detail: detail.to_owned(),
                error: None,
            }),
        }
    }

    #[test]
    fn one_connection_names_its_state() {
        let one = Connections::one(&sample(State::Connected, 0, None));
        let line = status_line(
            "stompkit",
            &one,
            Duration::from_millis(3500),
            &[Flow {
                count: 12,
                what: "messages",
                per_second: 4.0,
            }],
        );
        assert_eq!(
            line,
            "stompkit: connected up 3s, 12 messages (4.0/s), 0 reconnects, 2 queued, \
             3 unconfirmed, 100 B buffered"
        );
        let failed = Connections::one(&sample(State::Closed, 1, Some("refused")));
        let line = status_line("stompkit", &failed, Duration::ZERO, &[]);
        assert!(
            line.starts_with("stompkit: closed up 0s, 1 reconnects"),
            "{line}"
        );
        assert!(line.ends_with(" last-failure=Network: refused"), "{line}");
    }

    #[test]
    fn many_connections_are_summed_with_the_newest_failure() {
        let later = Instant::now() + Duration::from_secs(5);
        let mut aggregator = Aggregator::default();
        let first = aggregator.collect(&[
            Some(sample(State::Connected, 0, None)),
            Some(sample(State::Reconnecting { at: later }, 1, Some("reset"))),
            Some(sample(State::Connected, 0, None)),
        ]);
        let flows = [
            Flow {
                count: 300,
                what: "sent",
                per_second: 150.0,
            },
            Flow {
                count: 290,
                what: "received",
                per_second: 145.04,
            },
        ];
        assert_eq!(
            status_line("stompkit bench", &first, Duration::from_secs(2), &flows),
            "stompkit bench: up 2s, 2/3 connected, 1 reconnecting, 300 sent (150.0/s), \
             290 received (145.0/s), 1 reconnects, 6 queued, 9 unconfirmed, 300 B buffered \
             last-failure=Network: reset (connection 2)"
        );
        // Connection 3 failed since; connection 2's failure, unchanged, is older. A client
        // gone counts as closed.
        let second = aggregator.collect(&[
            Some(sample(State::Connected, 0, None)),
            Some(sample(State::Connected, 1, Some("reset"))),
            Some(sample(
                State::Failed { next_probe: later },
                2,
                Some("refused"),
            )),
            None,
        ]);
        let line = status_line("stompkit bench", &second, Duration::from_secs(3), &[]);
        assert!(
            line.starts_with(
                "stompkit bench: up 3s, 2/4 connected, 1 breaker-open, 1 closed, 3 reconnects"
            ),
            "{line}"
        );
        assert!(
            line.ends_with(" last-failure=Network: refused (connection 3)"),
            "{line}"
        );
        // Nothing new: the newest stays the newest.
        let third = aggregator.collect(&[
            Some(sample(State::Connected, 0, None)),
            Some(sample(State::Connected, 1, Some("reset"))),
            Some(sample(State::Connected, 2, Some("refused"))),
        ]);
        let line = status_line("stompkit bench", &third, Duration::from_secs(4), &[]);
        assert!(
            line.contains("up 4s, 3/3 connected, 3 reconnects"),
            "{line}"
        );
        assert!(line.ends_with("refused (connection 3)"), "{line}");
    }
}
