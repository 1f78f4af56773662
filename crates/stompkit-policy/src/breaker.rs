//! The [`CircuitBreaker`] state machine and its configuration.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::Error;
use crate::backoff::{Backoff, BackoffConfig};
use crate::window::{CountWindow, Counts, TimeWindow};

/// The sliding window over which the failure ratio is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last `n` calls. Memory: `n / 8` bytes.
    Count(usize),
    /// The calls of roughly the last `d`, kept in 20 buckets of `d / 20` (constant memory
    /// whatever the call rate). A call counts for at least `19/20 * d` and never longer
    /// than `d` (for `d` of at least 20 ns; the bucket width is at least 1 ns).
    Time(Duration),
}

impl Window {
    /// The longest count window accepted (2 MiB of outcome bits).
    pub const MAX_COUNT: usize = 1 << 24;
}

/// How long the breaker stays open after a trip.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenDuration {
    /// The same duration every time.
    Fixed(Duration),
    /// The next delay of a [`Backoff`] each time, so repeated trips wait longer; the backoff
    /// starts over when the breaker closes. Its stop conditions are ignored: the breaker
    /// never gives up.
    Backoff(BackoffConfig),
}

/// The failure-ratio trip condition.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RatioTrip {
    /// Trip when `failures / calls` in the window reaches this ratio, within `(0, 1]`.
    pub ratio: f64,
    /// The window the ratio is computed over.
    pub window: Window,
    /// The ratio counts only once the window holds at least this many calls.
    pub min_calls: u32,
}

/// Everything a [`CircuitBreaker`] needs. Build it from [`Default`] and chain the setters.
///
/// | field | default |
/// |---|---|
/// | `consecutive_failures` | `Some(5)` |
/// | `failure_ratio` | `None` |
/// | `open_for` | `OpenDuration::Fixed(30 s)` |
/// | `half_open_permits` | 1 |
/// | `permit_timeout` | 10 s |
///
/// ```
/// use std::time::Duration;
/// use stompkit_policy::{BackoffConfig, BreakerConfig, OpenDuration, Window};
///
/// let config = BreakerConfig::default()
///     .consecutive_failures(3)
///     .failure_ratio(0.5, Window::Time(Duration::from_secs(60)), 10)
///     .open_for(OpenDuration::Backoff(BackoffConfig::exponential(
///         Duration::from_secs(1),
///         2.0,
///         Duration::from_secs(60),
///     )))
///     .half_open_permits(1)
///     .permit_timeout(Duration::from_secs(5));
/// assert_eq!(config.validate(), Ok(()));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Trip after this many failures in a row while closed; `None` disables this condition.
    pub consecutive_failures: Option<u32>,
    /// Trip on a failure ratio over a sliding window; `None` disables this condition.
    pub failure_ratio: Option<RatioTrip>,
    /// How long the breaker stays open after a trip.
    pub open_for: OpenDuration,
    /// Trial calls admitted per half-open period; that many must succeed to close.
    pub half_open_permits: u32,
    /// A half-open trial that has not reported within this time counts as failed: its
    /// permit is reclaimed and the breaker reopens.
    pub permit_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: Some(5),
            failure_ratio: None,
            open_for: OpenDuration::Fixed(Duration::from_secs(30)),
            half_open_permits: 1,
            permit_timeout: Duration::from_secs(10),
        }
    }
}

impl BreakerConfig {
    /// Trips after `n` failures in a row.
    #[must_use]
    pub const fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = Some(n);
        self
    }

    /// Never trips on consecutive failures (only on the ratio, if set).
    #[must_use]
    pub const fn no_consecutive_failures(mut self) -> Self {
        self.consecutive_failures = None;
        self
    }

    /// Trips when at least `ratio` of the calls in `window` failed, once the window holds
    /// at least `min_calls` calls.
    #[must_use]
    pub const fn failure_ratio(mut self, ratio: f64, window: Window, min_calls: u32) -> Self {
        self.failure_ratio = Some(RatioTrip {
            ratio,
            window,
            min_calls,
        });
        self
    }

    /// Never trips on the failure ratio.
    #[must_use]
    pub const fn no_failure_ratio(mut self) -> Self {
        self.failure_ratio = None;
        self
    }

    /// Sets how long the breaker stays open.
    #[must_use]
    pub fn open_for(mut self, open_for: OpenDuration) -> Self {
        self.open_for = open_for;
        self
    }

    /// Sets the number of half-open trial calls.
    #[must_use]
    pub const fn half_open_permits(mut self, n: u32) -> Self {
        self.half_open_permits = n;
        self
    }

    /// Sets the time after which an unreported half-open trial counts as failed.
    #[must_use]
    pub const fn permit_timeout(mut self, timeout: Duration) -> Self {
        self.permit_timeout = timeout;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroConsecutiveFailures`], [`Error::InvalidFailureRatio`],
    /// [`Error::EmptyWindow`], [`Error::WindowTooLarge`], [`Error::MinCallsAboveWindow`],
    /// [`Error::ZeroHalfOpenPermits`], [`Error::ZeroPermitTimeout`], or what
    /// [`BackoffConfig::validate`] says of an [`OpenDuration::Backoff`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.consecutive_failures == Some(0) {
            return Err(Error::ZeroConsecutiveFailures);
        }
        if let Some(trip) = &self.failure_ratio {
            if !(trip.ratio > 0.0 && trip.ratio <= 1.0) {
                return Err(Error::InvalidFailureRatio(trip.ratio));
            }
            match trip.window {
                Window::Count(0) => return Err(Error::EmptyWindow),
                Window::Time(length) if length.is_zero() => return Err(Error::EmptyWindow),
                Window::Count(n) if n > Window::MAX_COUNT => {
                    return Err(Error::WindowTooLarge {
                        window: n,
                        max: Window::MAX_COUNT,
                    });
                }
                Window::Count(n) if trip.min_calls as usize > n => {
                    return Err(Error::MinCallsAboveWindow {
                        min_calls: trip.min_calls,
                        window: n,
                    });
                }
                Window::Count(_) | Window::Time(_) => {}
            }
        }
        if let OpenDuration::Backoff(backoff) = &self.open_for {
            backoff.validate()?;
        }
        if self.half_open_permits == 0 {
            return Err(Error::ZeroHalfOpenPermits);
        }
        if self.permit_timeout.is_zero() {
            return Err(Error::ZeroPermitTimeout);
        }
        Ok(())
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until `until`, when the breaker turns half-open.
    Open {
        /// When the open period ends.
        until: Instant,
    },
    /// A bounded number of trial calls is admitted to probe the service.
    HalfOpen,
    /// Opened by hand ([`CircuitBreaker::force_open`]): rejects until reset.
    ForcedOpen,
    /// Switched off by hand ([`CircuitBreaker::disable`]): admits everything, counts
    /// nothing, until reset.
    Disabled,
}

/// Why a [`Transition`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionCause {
    /// This many failures in a row.
    ConsecutiveFailures(u32),
    /// The failure ratio over the window reached the threshold.
    FailureRatio {
        /// Failures in the window.
        failures: u64,
        /// Calls in the window.
        calls: u64,
    },
    /// The open period ended.
    OpenExpired,
    /// Enough half-open trials succeeded.
    TrialSucceeded,
    /// A half-open trial failed.
    TrialFailed,
    /// A half-open trial did not report within the permit timeout.
    PermitTimedOut,
    /// [`CircuitBreaker::force_open`].
    Forced,
    /// [`CircuitBreaker::disable`].
    Disabled,
    /// [`CircuitBreaker::reset`].
    Reset,
}

/// A state change, for the caller to log or expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// The `now` of the call that observed the change.
    pub at: Instant,
    /// Why.
    pub cause: TransitionCause,
}

/// Permission to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Report the outcome with [`CircuitBreaker::on_success`] / [`CircuitBreaker::on_failure`],
/// or, to tie the report to this very permit, [`CircuitBreaker::report`]. Dropping a
/// half-open trial permit without reporting is safe: it times out and is reclaimed.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "report the call's outcome to the breaker"]
pub struct Permit {
    trial: Option<TrialId>,
    issued_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TrialId {
    /// The breaker's half-open period when the trial was issued.
    epoch: u64,
    /// The trial's number within that period.
    id: u32,
}

impl Permit {
    /// Whether this is a half-open trial.
    #[must_use]
    pub const fn is_trial(&self) -> bool {
        self.trial.is_some()
    }

    /// The `now` at which the permit was issued.
    #[must_use]
    pub const fn issued_at(&self) -> Instant {
        self.issued_at
    }
}

/// A call refused by [`CircuitBreaker::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// The earliest instant at which asking again may succeed; `None` when forced open
    /// (only a manual reset helps).
    pub retry_at: Option<Instant>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("circuit breaker is open")
    }
}

impl std::error::Error for Rejected {}

/// The outcome of a call, for [`CircuitBreaker::report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed.
    Failure,
    /// The call was abandoned for a reason that says nothing about the service (shutdown,
    /// cancellation): a half-open trial slot is given back, nothing is counted.
    Cancelled,
}

/// Calls and failures in the failure-ratio window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WindowStats {
    /// Calls in the window.
    pub calls: u64,
    /// Failures among them.
    pub failures: u64,
}

#[derive(Debug, Clone)]
enum RatioWindow {
    Count(CountWindow),
    /// Boxed: 20 buckets make it much larger than the count window.
    Time(Box<TimeWindow>),
}

#[derive(Debug, Clone, Copy)]
struct Trial {
    id: u32,
    deadline: Instant,
}

/// Transitions applied by [`CircuitBreaker::try_acquire`] and kept for
/// [`CircuitBreaker::poll`]; older ones are dropped beyond this.
const PENDING_CAPACITY: usize = 8;

/// A sans-IO circuit breaker.
///
/// The caller asks [`try_acquire`](Self::try_acquire) before each call and reports the
/// outcome with [`on_success`](Self::on_success) / [`on_failure`](Self::on_failure). Every
/// method takes `now`; the breaker never reads a clock. State changes come back as
/// [`Transition`]s. Time-driven changes (the open period ending, a half-open trial timing
/// out) happen when a method is called at or after [`poll_timeout`](Self::poll_timeout);
/// call [`poll`](Self::poll) then to see them (the ones `try_acquire` applied itself are
/// kept for `poll` too).
///
/// ```
/// use std::time::{Duration, Instant};
/// use stompkit_policy::{BreakerConfig, BreakerState, CircuitBreaker, OpenDuration, TransitionCause};
///
/// let config = BreakerConfig::default()
///     .consecutive_failures(2)
///     .open_for(OpenDuration::Fixed(Duration::from_secs(10)));
/// let mut breaker = CircuitBreaker::new(config);
/// let t0 = Instant::now();
///
/// for _ in 0..2 {
///     let _permit = breaker.try_acquire(t0).expect("closed");
///     if let Some(transition) = breaker.on_failure(t0) {
///         assert_eq!(transition.cause, TransitionCause::ConsecutiveFailures(2));
///     }
/// }
/// let until = t0 + Duration::from_secs(10);
/// assert_eq!(breaker.state(), BreakerState::Open { until });
/// assert_eq!(breaker.try_acquire(t0).unwrap_err().retry_at, Some(until));
///
/// // Ten seconds later one trial is let through, and only one.
/// let trial = breaker.try_acquire(until).expect("half-open trial");
/// assert!(trial.is_trial());
/// assert!(breaker.try_acquire(until).is_err());
/// let closed = breaker.on_success(until).expect("closes");
/// assert_eq!(closed.to, BreakerState::Closed);
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    consecutive: u32,
    window: Option<RatioWindow>,
    /// Open durations when `open_for` is a backoff.
    open_backoff: Option<Backoff>,
    /// The open duration used last, repeated if the backoff cannot give another.
    last_open: Duration,
    /// Counts half-open periods, so that permits of an earlier one are told apart.
    epoch: u64,
    trials_issued: u32,
    trial_successes: u32,
    next_trial_id: u32,
    /// In-flight trials, oldest first; at most `half_open_permits`.
    trials: Vec<Trial>,
    pending: VecDeque<Transition>,
}

/// `now + d`, or the latest representable instant not beyond it.
fn saturating_add(now: Instant, d: Duration) -> Instant {
    if let Some(t) = now.checked_add(d) {
        return t;
    }
    let mut step = d;
    let mut t = now;
    while !step.is_zero() {
        step /= 2;
        if let Some(next) = t.checked_add(step) {
            t = next;
        }
    }
    t
}

impl CircuitBreaker {
    /// Creates a closed breaker. Jitter in an [`OpenDuration::Backoff`] draws from a
    /// [`SeededRng`](crate::SeededRng) seeded with 0; see [`with_seed`](Self::with_seed).
    ///
    /// # Panics
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]); use
    /// [`try_new`](Self::try_new) to get the error instead.
    #[must_use]
    pub fn new(config: BreakerConfig) -> Self {
        Self::with_seed(config, 0)
    }

    /// Creates a closed breaker whose open-duration backoff (if any) is seeded with `seed`.
    ///
    /// # Panics
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    #[must_use]
    pub fn with_seed(config: BreakerConfig, seed: u64) -> Self {
        match Self::try_with_seed(config, seed) {
            Ok(breaker) => breaker,
            Err(err) => panic!("invalid BreakerConfig: {err}"),
        }
    }

    /// Creates a closed breaker.
    ///
    /// # Errors
    ///
    /// The first problem [`BreakerConfig::validate`] finds.
    pub fn try_new(config: BreakerConfig) -> Result<Self, Error> {
        Self::try_with_seed(config, 0)
    }

    /// Creates a closed breaker whose open-duration backoff (if any) is seeded with `seed`.
    ///
    /// # Errors
    ///
    /// The first problem [`BreakerConfig::validate`] finds.
    pub fn try_with_seed(config: BreakerConfig, seed: u64) -> Result<Self, Error> {
        config.validate()?;
        let window = config.failure_ratio.map(|trip| match trip.window {
            Window::Count(n) => RatioWindow::Count(CountWindow::new(n)),
            Window::Time(length) => RatioWindow::Time(Box::new(TimeWindow::new(length))),
        });
        let (open_backoff, last_open) = match &config.open_for {
            OpenDuration::Fixed(d) => (None, *d),
            OpenDuration::Backoff(backoff) => {
                let never_stop = backoff.clone().max_attempts(None).max_elapsed(None);
                let floor = never_stop.floor;
                (Some(Backoff::try_new(never_stop, seed)?), floor)
            }
        };
        Ok(Self {
            trials: Vec::with_capacity(config.half_open_permits.min(64) as usize),
            config,
            state: BreakerState::Closed,
            consecutive: 0,
            window,
            open_backoff,
            last_open,
            epoch: 0,
            trials_issued: 0,
            trial_successes: 0,
            next_trial_id: 0,
            pending: VecDeque::new(),
        })
    }

    /// Asks to make a call at `now`.
    ///
    /// Closed and disabled: always admitted. Open: rejected until the open period ends, then
    /// the breaker turns half-open. Half-open: at most `half_open_permits` trial permits per
    /// half-open period, the rest rejected. Forced open: rejected with `retry_at: None`.
    ///
    /// # Errors
    ///
    /// [`Rejected`] with the instant worth asking again at.
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Rejected> {
        while let Some(transition) = self.due_transition(now) {
            if self.pending.len() == PENDING_CAPACITY {
                self.pending.pop_front();
            }
            self.pending.push_back(transition);
        }
        match self.state {
            BreakerState::Closed | BreakerState::Disabled => Ok(Permit {
                trial: None,
                issued_at: now,
            }),
            BreakerState::Open { until } => Err(Rejected {
                retry_at: Some(until),
            }),
            BreakerState::ForcedOpen => Err(Rejected { retry_at: None }),
            BreakerState::HalfOpen => {
                if self.trials_issued < self.config.half_open_permits {
                    let id = self.next_trial_id;
                    self.next_trial_id = self.next_trial_id.wrapping_add(1);
                    self.trials_issued += 1;
                    self.trials.push(Trial {
                        id,
                        deadline: saturating_add(now, self.config.permit_timeout),
                    });
                    Ok(Permit {
                        trial: Some(TrialId {
                            epoch: self.epoch,
                            id,
                        }),
                        issued_at: now,
                    })
                } else {
                    Err(Rejected {
                        retry_at: self.poll_timeout(),
                    })
                }
            }
        }
    }

    /// Reports a successful call. Closes a half-open breaker once enough trials succeeded.
    /// Ignored while open, forced open or disabled (a late report of a call admitted
    /// earlier). In half-open, it settles the oldest in-flight trial; use
    /// [`report`](Self::report) to name the permit.
    pub fn on_success(&mut self, now: Instant) -> Option<Transition> {
        self.record(None, Outcome::Success, now)
    }

    /// Reports a failed call. May trip a closed breaker, and reopens a half-open one.
    /// Ignored while open, forced open or disabled.
    pub fn on_failure(&mut self, now: Instant) -> Option<Transition> {
        self.record(None, Outcome::Failure, now)
    }

    /// Reports the outcome of the call made with `permit`. Unlike `on_success` and
    /// `on_failure`, a half-open breaker ignores a report whose permit is not one of its
    /// in-flight trials (a call admitted before the trip, or a trial already reclaimed).
    pub fn report(&mut self, permit: Permit, outcome: Outcome, now: Instant) -> Option<Transition> {
        self.record(Some(permit), outcome, now)
    }

    fn record(
        &mut self,
        permit: Option<Permit>,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        if let Some(timed_out) = self.trial_timeout(now) {
            // The call being reported is late or unrelated; the reclaim is what happened.
            return Some(timed_out);
        }
        match self.state {
            BreakerState::Closed => match outcome {
                Outcome::Success => {
                    self.consecutive = 0;
                    self.record_in_window(false, now);
                    None
                }
                Outcome::Failure => {
                    self.consecutive = self.consecutive.saturating_add(1);
                    self.record_in_window(true, now);
                    let cause = self.trip_cause(now)?;
                    Some(self.trip(cause, now))
                }
                Outcome::Cancelled => None,
            },
            BreakerState::HalfOpen => {
                let index = match permit {
                    None => (!self.trials.is_empty()).then_some(0)?,
                    Some(Permit {
                        trial: Some(TrialId { epoch, id }),
                        ..
                    }) if epoch == self.epoch => self.trials.iter().position(|t| t.id == id)?,
                    Some(_) => return None,
                };
                self.trials.remove(index);
                match outcome {
                    Outcome::Success => {
                        self.trial_successes += 1;
                        (self.trial_successes >= self.config.half_open_permits)
                            .then(|| self.close(TransitionCause::TrialSucceeded, now))
                    }
                    Outcome::Failure => Some(self.trip(TransitionCause::TrialFailed, now)),
                    Outcome::Cancelled => {
                        self.trials_issued -= 1;
                        None
                    }
                }
            }
            BreakerState::Open { .. } | BreakerState::ForcedOpen | BreakerState::Disabled => None,
        }
    }

    fn record_in_window(&mut self, failure: bool, now: Instant) {
        match &mut self.window {
            Some(RatioWindow::Count(window)) => window.record(failure),
            Some(RatioWindow::Time(window)) => window.record(failure, now),
            None => {}
        }
    }

    fn counts(&self, now: Instant) -> Counts {
        match &self.window {
            Some(RatioWindow::Count(window)) => window.counts(),
            Some(RatioWindow::Time(window)) => window.counts_at(now),
            None => Counts::default(),
        }
    }

    /// The trip condition met after a failure in the closed state, if any.
    fn trip_cause(&self, now: Instant) -> Option<TransitionCause> {
        if let Some(n) = self.config.consecutive_failures {
            if self.consecutive >= n {
                return Some(TransitionCause::ConsecutiveFailures(self.consecutive));
            }
        }
        let trip = self.config.failure_ratio?;
        let Counts { calls, failures } = self.counts(now);
        (calls > 0
            && calls >= u64::from(trip.min_calls)
            && failures as f64 / calls as f64 >= trip.ratio)
            .then_some(TransitionCause::FailureRatio { failures, calls })
    }

    /// A half-open trial past its deadline reopens the breaker.
    fn trial_timeout(&mut self, now: Instant) -> Option<Transition> {
        let expired = self.state == BreakerState::HalfOpen
            && self.trials.iter().any(|trial| trial.deadline <= now);
        expired.then(|| self.trip(TransitionCause::PermitTimedOut, now))
    }

    /// The time-driven transition due at `now`, applied.
    fn due_transition(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            BreakerState::Open { until } if now >= until => {
                self.epoch = self.epoch.wrapping_add(1);
                self.trials.clear();
                self.trials_issued = 0;
                self.trial_successes = 0;
                self.next_trial_id = 0;
                Some(self.set_state(BreakerState::HalfOpen, TransitionCause::OpenExpired, now))
            }
            BreakerState::HalfOpen => self.trial_timeout(now),
            _ => None,
        }
    }

    fn set_state(&mut self, to: BreakerState, cause: TransitionCause, at: Instant) -> Transition {
        let from = self.state;
        self.state = to;
        Transition {
            from,
            to,
            at,
            cause,
        }
    }

    fn clear_counts(&mut self) {
        self.consecutive = 0;
        match &mut self.window {
            Some(RatioWindow::Count(window)) => window.clear(),
            Some(RatioWindow::Time(window)) => window.clear(),
            None => {}
        }
    }

    fn clear_trials(&mut self) {
        self.trials.clear();
        self.trials_issued = 0;
        self.trial_successes = 0;
    }

    /// Opens the breaker for the next open duration.
    fn trip(&mut self, cause: TransitionCause, now: Instant) -> Transition {
        let duration = match &mut self.open_backoff {
            Some(backoff) => backoff.next_delay(now).unwrap_or(self.last_open),
            None => self.last_open,
        };
        self.last_open = duration;
        self.clear_counts();
        self.clear_trials();
        let until = saturating_add(now, duration);
        self.set_state(BreakerState::Open { until }, cause, now)
    }

    /// Closes the breaker with fresh counts and a fresh open-duration backoff.
    fn close(&mut self, cause: TransitionCause, now: Instant) -> Transition {
        self.clear_counts();
        self.clear_trials();
        if let Some(backoff) = &mut self.open_backoff {
            backoff.reset();
        }
        self.set_state(BreakerState::Closed, cause, now)
    }

    /// Applies the next time-driven transition due at `now` (the open period ending, a
    /// half-open trial timing out), or returns one that [`try_acquire`](Self::try_acquire)
    /// applied earlier and has not been returned yet (at most 8 are kept). Returns `None`
    /// when nothing happened; call again until then to see every transition.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        self.pending
            .pop_front()
            .or_else(|| self.due_transition(now))
    }

    /// The current state. Time-driven changes are applied only by the next call that takes
    /// `now`, so this may still say [`BreakerState::Open`] after `until`.
    #[must_use]
    pub const fn state(&self) -> BreakerState {
        self.state
    }

    /// The next instant at which the state changes by itself: the end of the open period,
    /// or the deadline of the oldest in-flight half-open trial. `None` if nothing is
    /// scheduled.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            BreakerState::Open { until } => Some(until),
            BreakerState::HalfOpen => self.trials.iter().map(|trial| trial.deadline).min(),
            _ => None,
        }
    }

    /// Opens the breaker until [`reset`](Self::reset), whatever its state.
    pub fn force_open(&mut self, now: Instant) -> Option<Transition> {
        self.manual(BreakerState::ForcedOpen, TransitionCause::Forced, now)
    }

    /// Switches the breaker off until [`reset`](Self::reset): every call is admitted,
    /// nothing is counted.
    pub fn disable(&mut self, now: Instant) -> Option<Transition> {
        self.manual(BreakerState::Disabled, TransitionCause::Disabled, now)
    }

    /// Closes the breaker with fresh counts and a fresh open-duration backoff, whatever its
    /// state. Returns `None` if it was already closed (the counts are cleared anyway).
    pub fn reset(&mut self, now: Instant) -> Option<Transition> {
        let was = self.state;
        let transition = self.close(TransitionCause::Reset, now);
        (was != BreakerState::Closed).then_some(transition)
    }

    fn manual(
        &mut self,
        to: BreakerState,
        cause: TransitionCause,
        now: Instant,
    ) -> Option<Transition> {
        if self.state == to {
            return None;
        }
        self.clear_counts();
        self.clear_trials();
        Some(self.set_state(to, cause, now))
    }

    /// Consecutive failures counted while closed.
    #[must_use]
    pub const fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Calls and failures in the failure-ratio window at `now` (zero without a ratio
    /// condition).
    #[must_use]
    pub fn window_stats(&self, now: Instant) -> WindowStats {
        let Counts { calls, failures } = self.counts(now);
        WindowStats { calls, failures }
    }

    /// Trial permits handed out and not yet reported in the current half-open period.
    #[must_use]
    pub fn trials_in_flight(&self) -> usize {
        self.trials.len()
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &BreakerConfig {
        &self.config
    }
}
