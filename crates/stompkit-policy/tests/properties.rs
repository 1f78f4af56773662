//! Property tests: backoff bounds, monotonicity and determinism; breaker half-open limits,
//! open-period expiry, and the failure ratio against a reference model.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use stompkit_policy::{
    Backoff, BackoffConfig, BreakerConfig, BreakerState, CircuitBreaker, Jitter, OpenDuration,
    Outcome, Permit, SeededRng, Strategy, Transition, TransitionCause, Window,
};

fn nanos(max: u64) -> impl proptest::strategy::Strategy<Value = Duration> {
    (0..=max).prop_map(Duration::from_nanos)
}

const SEC: u64 = 1_000_000_000;

fn any_strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        (nanos(10 * SEC), 1.0f64..10.0).prop_map(|(base, factor)| Strategy::Exponential {
            base: base.max(Duration::from_nanos(1)),
            factor,
        }),
        prop::collection::vec(nanos(60 * SEC), 1..10).prop_map(Strategy::Schedule),
        nanos(60 * SEC).prop_map(Strategy::Constant),
        nanos(10 * SEC).prop_map(|base| Strategy::DecorrelatedJitter {
            base: base.max(Duration::from_nanos(1)),
        }),
    ]
}

/// Strategies whose nominal delays never decrease.
fn monotone_strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        (nanos(10 * SEC), 1.0f64..10.0).prop_map(|(base, factor)| Strategy::Exponential {
            base: base.max(Duration::from_nanos(1)),
            factor,
        }),
        prop::collection::vec(nanos(60 * SEC), 1..10).prop_map(|mut delays| {
            delays.sort();
            Strategy::Schedule(delays)
        }),
        nanos(60 * SEC).prop_map(Strategy::Constant),
    ]
}

fn any_jitter() -> impl proptest::strategy::Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        (0.0f64..=1.0).prop_map(Jitter::Proportional),
    ]
}

/// (floor, cap) with floor <= cap; sometimes no cap at all.
fn bounds() -> impl proptest::strategy::Strategy<Value = (Duration, Duration)> {
    (nanos(120 * SEC), nanos(120 * SEC), any::<bool>()).prop_map(|(a, b, uncapped)| {
        let (floor, cap) = if a <= b { (a, b) } else { (b, a) };
        (floor, if uncapped { Duration::MAX } else { cap })
    })
}

fn any_backoff_config() -> impl proptest::strategy::Strategy<Value = BackoffConfig> {
    (
        any_strategy(),
        any_jitter(),
        bounds(),
        prop::option::of(0u32..50),
        prop::option::of(nanos(600 * SEC)),
    )
        .prop_map(
            |(strategy, jitter, (floor, cap), max_attempts, max_elapsed)| {
                BackoffConfig::new(strategy)
                    .jitter(jitter)
                    .floor(floor)
                    .cap(cap)
                    .max_attempts(max_attempts)
                    .max_elapsed(max_elapsed)
            },
        )
}

/// One step of a caller driving a backoff.
#[derive(Debug, Clone)]
enum Step {
    /// Ask for a delay after `advance` more time has passed.
    Next { advance: Duration },
    /// Set a server hint.
    Hint(Duration),
    /// A success: start over.
    Reset,
}

fn steps() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            8 => nanos(30 * SEC).prop_map(|advance| Step::Next { advance }),
            1 => prop_oneof![nanos(200 * SEC), Just(Duration::MAX)].prop_map(Step::Hint),
            1 => Just(Step::Reset),
        ],
        1..200,
    )
}

/// Runs the steps, returning every `next_delay` answer.
fn drive(config: &BackoffConfig, seed: u64, steps: &[Step]) -> Vec<Option<Duration>> {
    let mut backoff = Backoff::new(config.clone(), seed);
    let mut now = Instant::now();
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Next { advance } => {
                now += *advance;
                out.push(backoff.next_delay(now));
            }
            Step::Hint(hint) => backoff.set_hint(*hint),
            Step::Reset => backoff.reset(),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every delay, hinted or not, of every strategy and jitter lies within [floor, cap].
    #[test]
    fn delays_stay_within_floor_and_cap(config in any_backoff_config(), seed: u64, steps in steps()) {
        for delay in drive(&config, seed, &steps).into_iter().flatten() {
            prop_assert!(delay >= config.floor, "{delay:?} < floor {:?}", config.floor);
            prop_assert!(delay <= config.cap, "{delay:?} > cap {:?}", config.cap);
        }
    }

    /// Stop conditions: never more delays than max_attempts between resets, and no delay
    /// that ends past max_elapsed.
    #[test]
    fn stop_conditions_hold(config in any_backoff_config(), seed: u64, steps in steps()) {
        let mut backoff = Backoff::new(config.clone(), seed);
        let start = Instant::now();
        let mut now = start;
        let mut first: Option<Instant> = None;
        let mut given = 0u32;
        let mut stopped = false;
        for step in &steps {
            match step {
                Step::Next { advance } => {
                    now += *advance;
                    let clock = *first.get_or_insert(now);
                    match backoff.next_delay(now) {
                        Some(delay) => {
                            prop_assert!(!stopped, "a delay after giving up");
                            given += 1;
                            if let Some(max) = config.max_attempts {
                                prop_assert!(given <= max);
                            }
                            if let Some(budget) = config.max_elapsed {
                                prop_assert!(now - clock + delay <= budget);
                            }
                        }
                        None => stopped = true,
                    }
                    prop_assert_eq!(backoff.attempts(), given);
                }
                Step::Hint(hint) => backoff.set_hint(*hint),
                Step::Reset => {
                    backoff.reset();
                    first = None;
                    given = 0;
                    stopped = false;
                }
            }
        }
    }

    /// Without jitter (and without hints), deterministic strategies never shrink.
    #[test]
    fn delays_never_decrease_without_jitter(
        strategy in monotone_strategy(),
        (floor, cap) in bounds(),
        seed: u64,
        n in 1usize..300,
    ) {
        let config = BackoffConfig::new(strategy).floor(floor).cap(cap);
        let mut backoff = Backoff::new(config, seed);
        let now = Instant::now();
        let mut previous = Duration::ZERO;
        for _ in 0..n {
            let delay = backoff.next_delay(now).unwrap();
            prop_assert!(delay >= previous, "{delay:?} after {previous:?}");
            previous = delay;
        }
    }

    /// The same seed and the same calls give the same delays: two instances built apart
    /// (through both constructors) and driven in lockstep, so that state they shared
    /// (a generator behind the seed, a clock) would make them drift apart.
    #[test]
    fn same_seed_same_delays(config in any_backoff_config(), seed: u64, steps in steps()) {
        let mut a = Backoff::new(config.clone(), seed);
        let mut b = Backoff::try_with_rng(config, SeededRng::new(seed)).unwrap();
        let mut now = Instant::now();
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Next { advance } => {
                    now += *advance;
                    prop_assert_eq!(a.next_delay(now), b.next_delay(now), "step {}", i);
                }
                Step::Hint(hint) => {
                    a.set_hint(*hint);
                    b.set_hint(*hint);
                }
                Step::Reset => {
                    a.reset();
                    b.reset();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker.

fn any_open_duration() -> impl proptest::strategy::Strategy<Value = OpenDuration> {
    prop_oneof![
        (0u64..30).prop_map(|s| OpenDuration::Fixed(Duration::from_secs(s))),
        (1u64..5, 1.0f64..3.0, 5u64..60, any_jitter()).prop_map(|(base, factor, cap, jitter)| {
            OpenDuration::Backoff(
                BackoffConfig::exponential(
                    Duration::from_secs(base),
                    factor,
                    Duration::from_secs(cap),
                )
                .jitter(jitter),
            )
        }),
    ]
}

fn any_window() -> impl proptest::strategy::Strategy<Value = Window> {
    prop_oneof![
        (1usize..40).prop_map(Window::Count),
        (1u64..120).prop_map(|s| Window::Time(Duration::from_secs(s))),
    ]
}

fn any_breaker_config() -> impl proptest::strategy::Strategy<Value = BreakerConfig> {
    (
        prop::option::of(1u32..6),
        prop::option::of((0.05f64..=1.0, any_window(), 0u32..10)),
        any_open_duration(),
        1u32..4,
        1u64..20,
    )
        .prop_map(|(consecutive, ratio, open_for, permits, timeout)| {
            let mut config = BreakerConfig::default()
                .no_consecutive_failures()
                .open_for(open_for)
                .half_open_permits(permits)
                .permit_timeout(Duration::from_secs(timeout));
            if let Some(n) = consecutive {
                config = config.consecutive_failures(n);
            }
            if let Some((ratio, window, min_calls)) = ratio {
                let min_calls = match window {
                    Window::Count(n) => min_calls.min(n as u32),
                    Window::Time(_) => min_calls,
                };
                config = config.failure_ratio(ratio, window, min_calls);
            }
            config
        })
}

/// One action of a caller (or of time) on a breaker.
#[derive(Debug, Clone)]
enum Op {
    Advance(Duration),
    Acquire,
    Success,
    Failure,
    /// Report a held permit (index modulo the number held).
    Report(usize, Outcome),
    Poll,
    ForceOpen,
    Disable,
    Reset,
}

fn ops() -> impl proptest::strategy::Strategy<Value = Vec<Op>> {
    let outcome = prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Cancelled)
    ];
    prop::collection::vec(
        prop_oneof![
            6 => (0u64..20_000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
            8 => Just(Op::Acquire),
            3 => Just(Op::Success),
            5 => Just(Op::Failure),
            4 => (any::<usize>(), outcome).prop_map(|(i, o)| Op::Report(i, o)),
            2 => Just(Op::Poll),
            1 => prop_oneof![Just(Op::ForceOpen), Just(Op::Disable), Just(Op::Reset)],
        ],
        1..300,
    )
}

fn max_open(config: &BreakerConfig) -> Duration {
    match &config.open_for {
        OpenDuration::Fixed(d) => *d,
        OpenDuration::Backoff(backoff) => backoff.cap,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Under arbitrary calls, reports and time:
    /// - never more half-open trials out than permitted, nor more issued per half-open
    ///   period (cancelled ones excepted);
    /// - every open period lasts at most the configured open duration, and once its end
    ///   has passed the breaker admits a trial;
    /// - an in-flight trial that never reports is reclaimed at its deadline;
    /// - every transition's `from` is the state before it, and `at` is the call's `now`.
    #[test]
    fn breaker_invariants(config in any_breaker_config(), seed: u64, ops in ops()) {
        let permits = config.half_open_permits as usize;
        let mut breaker = CircuitBreaker::with_seed(config.clone(), seed);
        let mut now = Instant::now();
        let mut held: Vec<Permit> = Vec::new();
        let mut issued_this_period = 0usize;
        let mut expected_state = BreakerState::Closed;

        for op in ops {
            let before_in_flight = breaker.trials_in_flight();
            let mut direct: Option<Transition> = None;
            let mut cancelled_trial = false;
            let mut acquired: Option<bool> = None;
            match op {
                Op::Advance(d) => now += d,
                Op::Acquire => match breaker.try_acquire(now) {
                    Ok(permit) => {
                        acquired = Some(permit.is_trial());
                        held.push(permit);
                    }
                    Err(rejected) => {
                        if let Some(retry_at) = rejected.retry_at {
                            prop_assert!(retry_at >= now, "retry_at in the past");
                        } else {
                            prop_assert_eq!(breaker.state(), BreakerState::ForcedOpen);
                        }
                    }
                },
                Op::Success => direct = breaker.on_success(now),
                Op::Failure => direct = breaker.on_failure(now),
                Op::Report(i, outcome) => {
                    if !held.is_empty() {
                        let permit = held.remove(i % held.len());
                        let trial = permit.is_trial();
                        let state = breaker.state();
                        direct = breaker.report(permit, outcome, now);
                        cancelled_trial = trial
                            && outcome == Outcome::Cancelled
                            && direct.is_none()
                            && state == BreakerState::HalfOpen
                            && breaker.trials_in_flight() + 1 == before_in_flight;
                    }
                }
                Op::Poll => direct = breaker.poll(now),
                Op::ForceOpen => direct = breaker.force_open(now),
                Op::Disable => direct = breaker.disable(now),
                Op::Reset => direct = breaker.reset(now),
            }

            // Queued transitions (applied by try_acquire) came first, then the direct one.
            let mut transitions: Vec<Transition> = std::iter::from_fn(|| breaker.poll(now)).collect();
            if let Some(t) = direct {
                transitions.insert(0, t);
            }
            for pair in transitions.windows(2) {
                prop_assert_eq!(pair[0].to, pair[1].from, "transitions chain");
            }
            for t in &transitions {
                prop_assert_eq!(t.at, now);
                prop_assert_ne!(t.from, t.to);
                if let BreakerState::Open { until } = t.to {
                    prop_assert!(until >= now);
                    prop_assert!(until - now <= max_open(&config), "open for {:?}", until - now);
                }
                if t.to == BreakerState::HalfOpen {
                    prop_assert_eq!(t.cause, TransitionCause::OpenExpired);
                    issued_this_period = 0;
                }
            }
            if let (Some(first), Some(last)) = (transitions.first(), transitions.last()) {
                prop_assert_eq!(first.from, expected_state);
                expected_state = last.to;
            }
            prop_assert_eq!(breaker.state(), expected_state, "a state change without a transition");

            if acquired == Some(true) {
                issued_this_period += 1;
                prop_assert_eq!(breaker.state(), BreakerState::HalfOpen);
            }
            if cancelled_trial {
                issued_this_period -= 1;
            }
            prop_assert!(breaker.trials_in_flight() <= permits);
            prop_assert!(issued_this_period <= permits, "{} trials issued", issued_this_period);

            match breaker.state() {
                BreakerState::Open { until } => {
                    prop_assert_eq!(breaker.poll_timeout(), Some(until));
                    // Once the open period has passed, a trial is admitted.
                    let mut probe = breaker.clone();
                    let permit = probe.try_acquire(until);
                    prop_assert!(permit.is_ok_and(|p| p.is_trial()));
                    let mut probe = breaker.clone();
                    prop_assert_eq!(probe.poll(until).map(|t| t.to), Some(BreakerState::HalfOpen));
                }
                BreakerState::HalfOpen => {
                    if let Some(deadline) = breaker.poll_timeout() {
                        prop_assert!(breaker.trials_in_flight() > 0);
                        // Not stuck in half-open: an unreported trial is reclaimed.
                        let mut probe = breaker.clone();
                        let reclaimed = probe.poll(deadline);
                        prop_assert_eq!(reclaimed.map(|t| t.cause), Some(TransitionCause::PermitTimedOut));
                    } else {
                        prop_assert_eq!(breaker.trials_in_flight(), 0);
                    }
                }
                BreakerState::Closed | BreakerState::Disabled => {
                    prop_assert_eq!(breaker.poll_timeout(), None);
                    prop_assert!(breaker.clone().try_acquire(now).is_ok());
                }
                BreakerState::ForcedOpen => {
                    prop_assert_eq!(breaker.poll_timeout(), None);
                    prop_assert!(breaker.clone().try_acquire(now + Duration::from_secs(3600)).is_err());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The failure ratio against a reference model.

/// A deliberately simple model: every call kept in a `Vec`, the window recomputed from
/// scratch. Count windows keep the last `n` calls. Time windows follow the documented
/// bucket rule: buckets of `length / 20` counted from the first call since the last clear,
/// a call stamped earlier than the latest one goes in the latest bucket, and the window at
/// bucket `b` holds buckets `b - 19 ..= b`.
struct Model {
    window: Window,
    calls: Vec<(u64, bool)>,
    origin: Option<Instant>,
    latest: u64,
}

impl Model {
    fn new(window: Window) -> Self {
        Self {
            window,
            calls: Vec::new(),
            origin: None,
            latest: 0,
        }
    }

    fn width(&self) -> u128 {
        match self.window {
            Window::Time(length) => (length.as_nanos() / 20).max(1),
            Window::Count(_) => 1,
        }
    }

    fn bucket(&self, now: Instant) -> u64 {
        let origin = self.origin.unwrap_or(now);
        let b =
            u64::try_from(now.saturating_duration_since(origin).as_nanos() / self.width()).unwrap();
        b.max(self.latest)
    }

    fn record(&mut self, failure: bool, now: Instant) {
        self.origin.get_or_insert(now);
        self.latest = self.bucket(now);
        self.calls.push((self.latest, failure));
    }

    fn stats(&self, now: Instant) -> (u64, u64) {
        let in_window: Vec<bool> = match self.window {
            Window::Count(n) => self
                .calls
                .iter()
                .rev()
                .take(n)
                .map(|&(_, failure)| failure)
                .collect(),
            Window::Time(_) => {
                let current = self.bucket(now);
                self.calls
                    .iter()
                    .filter(|&&(b, _)| b + 20 > current)
                    .map(|&(_, failure)| failure)
                    .collect()
            }
        };
        (
            in_window.len() as u64,
            in_window.iter().filter(|f| **f).count() as u64,
        )
    }

    fn clear(&mut self) {
        self.calls.clear();
        self.origin = None;
        self.latest = 0;
    }
}

fn calls() -> impl proptest::strategy::Strategy<Value = Vec<(Duration, bool, Duration)>> {
    // (time since the previous call, failed?, an offset to peek at the stats)
    prop::collection::vec(
        (
            prop_oneof![
                3 => (0u64..2_000).prop_map(Duration::from_millis),
                1 => (0u64..200).prop_map(Duration::from_secs),
            ],
            prop::bool::weighted(0.4),
            (0u64..300).prop_map(Duration::from_secs),
        ),
        1..400,
    )
}

/// Ratios that failures/calls hits exactly (1, 1/2, 2/3, ...) as well as arbitrary ones, so
/// that the boundary (`>=`, not `>`) is exercised.
fn any_ratio() -> impl proptest::strategy::Strategy<Value = f64> {
    prop_oneof![
        (1u32..6, 1u32..6).prop_map(|(a, b)| f64::from(a.min(b)) / f64::from(a.max(b))),
        0.05f64..=1.0,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The breaker's window counts and its ratio trips match the model exactly, and time
    /// windows keep every call younger than 19/20 of the length and none older than it.
    #[test]
    fn failure_ratio_matches_the_reference_model(
        ratio in any_ratio(),
        window in any_window(),
        min_calls in 0u32..12,
        calls in calls(),
    ) {
        let min_calls = match window {
            Window::Count(n) => min_calls.min(n as u32),
            Window::Time(_) => min_calls,
        };
        let config = BreakerConfig::default()
            .no_consecutive_failures()
            .failure_ratio(ratio, window, min_calls);
        let mut breaker = CircuitBreaker::new(config);
        let mut model = Model::new(window);
        let mut stamps: Vec<(Instant, bool)> = Vec::new();
        let mut now = Instant::now();

        for (gap, failure, peek) in calls {
            now += gap;
            let permit = breaker.try_acquire(now);
            prop_assert!(permit.is_ok(), "closed admits");
            let event = breaker.report(permit.unwrap(), if failure { Outcome::Failure } else { Outcome::Success }, now);
            model.record(failure, now);
            stamps.push((now, failure));

            let (calls, failures) = model.stats(now);
            let should_trip = failure
                && calls > 0
                && calls >= u64::from(min_calls)
                && failures as f64 / calls as f64 >= ratio;
            if should_trip {
                prop_assert_eq!(
                    event.map(|t| t.cause),
                    Some(TransitionCause::FailureRatio { failures, calls })
                );
                // Start the next round closed with empty counts on both sides.
                prop_assert!(breaker.reset(now).is_some());
                model.clear();
                stamps.clear();
            } else {
                prop_assert_eq!(event, None);
                let stats = breaker.window_stats(now);
                prop_assert_eq!((stats.calls, stats.failures), (calls, failures));
                // Looking ahead without recording does not move the window.
                let later = now + peek;
                let stats = breaker.window_stats(later);
                prop_assert_eq!((stats.calls, stats.failures), model.stats(later));
                if let Window::Time(length) = window {
                    // Against exact times, with buckets of w = length / 20: a call younger
                    // than 19 w is always in, one of 20 w (<= length) or older never.
                    let width = Duration::from_nanos((length.as_nanos() / 20) as u64);
                    let surely_in = stamps.iter().filter(|(t, _)| later - *t < width * 19).count() as u64;
                    let maybe_in = stamps.iter().filter(|(t, _)| later - *t < width * 20).count() as u64;
                    prop_assert!(surely_in <= stats.calls && stats.calls <= maybe_in,
                        "{} calls, expected {}..={}", stats.calls, surely_in, maybe_in);
                }
            }
        }
    }
}
