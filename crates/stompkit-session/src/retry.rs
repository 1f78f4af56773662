//! When to try again: the backoff and the circuit breaker of `stompkit-policy`, combined.

use std::time::{Duration, Instant};

use crate::Error;
use stompkit_policy::{
    Backoff, BackoffConfig, BreakerConfig, BreakerState, CircuitBreaker, Outcome, Permit,
};

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Wait for the backoff delay.
    RetryAt(Instant),
    /// The breaker is open: wait for it.
    ProbeAt(Instant),
    /// The backoff's limit was reached.
    GiveUp,
}

/// When the breaker is forced open it names no time to ask again; we look again after this.
const FORCED_OPEN_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Retry {
    backoff: Backoff,
    breaker: CircuitBreaker,
    permit: Option<Permit>,
}

impl Retry {
    pub(crate) fn new(
        backoff: BackoffConfig,
        breaker: BreakerConfig,
        seed: u64,
    ) -> Result<Self, Error> {
        let invalid = |setting, e: stompkit_policy::Error| Error::InvalidConfig {
            setting,
            reason: e.to_string(),
        };
        Ok(Self {
            backoff: Backoff::try_new(backoff, seed).map_err(|e| invalid("backoff", e))?,
            breaker: CircuitBreaker::try_with_seed(
                breaker,
                seed.rotate_left(32) ^ 0x5354_4f4d_504b_4954,
            )
            .map_err(|e| invalid("breaker", e))?,
            permit: None,
        })
    }

    /// Asks the breaker whether an attempt may start. `Err` holds when to ask again.
    pub(crate) fn try_start(&mut self, now: Instant) -> Result<(), Instant> {
        match self.breaker.try_acquire(now) {
            Ok(permit) => {
                self.permit = Some(permit);
                Ok(())
            }
            Err(rejected) => Err(rejected
                .retry_at
                .filter(|at| *at > now)
                .unwrap_or(now + FORCED_OPEN_RECHECK)),
        }
    }

    /// The attempt reached `CONNECTED`.
    pub(crate) fn succeeded(&mut self, now: Instant) {
        self.backoff.reset();
        self.report(Outcome::Success, now);
    }

    /// The caller starts connecting afresh: the backoff's delays and give-up limit start
    /// over (the breaker keeps its state: it is about the broker, not the caller).
    pub(crate) fn restart(&mut self) {
        self.backoff.reset();
    }

    /// The attempt was abandoned by the caller; says nothing about the broker.
    pub(crate) fn cancelled(&mut self, now: Instant) {
        self.report(Outcome::Cancelled, now);
    }

    /// The attempt (or the connection) failed: when to try again.
    pub(crate) fn failed(&mut self, now: Instant) -> Decision {
        self.report(Outcome::Failure, now);
        // A delay past what an Instant holds is "never": give up rather than overflow.
        let Some(at) = self
            .backoff
            .next_delay(now)
            .and_then(|delay| now.checked_add(delay))
        else {
            return Decision::GiveUp;
        };
        match self.breaker.state() {
            BreakerState::Open { until } if until > at => Decision::ProbeAt(until),
            BreakerState::ForcedOpen => Decision::ProbeAt(at.max(now + FORCED_OPEN_RECHECK)),
            _ => Decision::RetryAt(at),
        }
    }

    /// A failure that will not be retried: counted by the breaker only.
    pub(crate) fn failed_for_good(&mut self, now: Instant) {
        self.report(Outcome::Failure, now);
    }

    fn report(&mut self, outcome: Outcome, now: Instant) {
        match self.permit.take() {
            Some(permit) => {
                self.breaker.report(permit, outcome, now);
            }
            None => match outcome {
                Outcome::Success => {
                    self.breaker.on_success(now);
                }
                Outcome::Failure => {
                    self.breaker.on_failure(now);
                }
                Outcome::Cancelled => {}
            },
        }
    }
}
