//! Circuit breaker: trips, open durations, half-open trials, permit reclaim, manual control,
//! events, validation. Time is `t0 + durations`; nothing sleeps.

use std::time::{Duration, Instant};

use stompkit_policy::{
    BackoffConfig, BreakerConfig, BreakerState, CircuitBreaker, Error, Jitter, OpenDuration,
    Outcome, Rejected, Transition, TransitionCause, Window, WindowStats,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn fixed(consecutive: u32, open: u64) -> BreakerConfig {
    BreakerConfig::default()
        .consecutive_failures(consecutive)
        .open_for(OpenDuration::Fixed(secs(open)))
}

/// Acquires and reports `n` failures at `now`; returns the transitions.
fn fail(breaker: &mut CircuitBreaker, n: usize, now: Instant) -> Vec<Transition> {
    let mut transitions = Vec::new();
    for _ in 0..n {
        if let Ok(permit) = breaker.try_acquire(now) {
            transitions.extend(breaker.report(permit, Outcome::Failure, now));
        }
    }
    transitions
}

#[test]
fn trips_after_consecutive_failures_and_a_success_resets_the_count() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(3, 10));
    assert!(fail(&mut breaker, 2, t0).is_empty());
    assert_eq!(breaker.consecutive_failures(), 2);
    let _permit = breaker.try_acquire(t0).unwrap();
    assert_eq!(breaker.on_success(t0), None);
    assert_eq!(breaker.consecutive_failures(), 0);
    assert!(fail(&mut breaker, 2, t0).is_empty(), "count started over");
    let trip = fail(&mut breaker, 1, t0 + secs(1));
    assert_eq!(
        trip,
        [Transition {
            from: BreakerState::Closed,
            to: BreakerState::Open {
                until: t0 + secs(11)
            },
            at: t0 + secs(1),
            cause: TransitionCause::ConsecutiveFailures(3),
        }]
    );
}

#[test]
fn open_rejects_until_its_end_then_admits_exactly_one_trial() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10));
    fail(&mut breaker, 1, t0);
    let until = t0 + secs(10);
    assert_eq!(breaker.poll_timeout(), Some(until));
    for offset in [0, 1, 9] {
        assert_eq!(
            breaker.try_acquire(t0 + secs(offset)),
            Err(Rejected {
                retry_at: Some(until)
            })
        );
    }
    assert_eq!(
        breaker
            .try_acquire(until - Duration::from_nanos(1))
            .unwrap_err()
            .retry_at,
        Some(until)
    );

    let trial = breaker
        .try_acquire(until)
        .expect("trial at the end of the open period");
    assert!(trial.is_trial());
    assert_eq!(trial.issued_at(), until);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    // No stampede: everyone else is turned away while the trial is out.
    for _ in 0..100 {
        assert!(breaker.try_acquire(until).is_err());
    }
    assert_eq!(breaker.trials_in_flight(), 1);
    // The Open -> HalfOpen change that try_acquire applied is handed out by poll.
    let expired = breaker.poll(until).expect("the queued transition");
    assert_eq!(expired.cause, TransitionCause::OpenExpired);
    assert_eq!(
        (expired.from, expired.to),
        (BreakerState::Open { until }, BreakerState::HalfOpen)
    );
    assert_eq!(breaker.poll(until), None);

    let closed = breaker
        .report(trial, Outcome::Success, until + secs(1))
        .unwrap();
    assert_eq!(closed.cause, TransitionCause::TrialSucceeded);
    assert_eq!(
        (closed.from, closed.to),
        (BreakerState::HalfOpen, BreakerState::Closed)
    );
    assert!(!breaker.try_acquire(until + secs(1)).unwrap().is_trial());
}

#[test]
fn poll_reports_open_expiry_without_an_acquire() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10));
    fail(&mut breaker, 1, t0);
    assert_eq!(breaker.poll(t0 + secs(9)), None);
    let transition = breaker.poll(t0 + secs(10)).unwrap();
    assert_eq!(transition.to, BreakerState::HalfOpen);
    assert_eq!(transition.at, t0 + secs(10));
    assert_eq!(breaker.poll(t0 + secs(10)), None);
    assert_eq!(
        breaker.poll_timeout(),
        None,
        "half-open with no trial out: nothing scheduled"
    );
}

#[test]
fn failed_trial_reopens() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10));
    fail(&mut breaker, 1, t0);
    let at = t0 + secs(10);
    let _trial = breaker.try_acquire(at).unwrap();
    let reopened = breaker.on_failure(at + secs(2)).unwrap();
    assert_eq!(reopened.cause, TransitionCause::TrialFailed);
    assert_eq!(
        reopened.to,
        BreakerState::Open {
            until: at + secs(12)
        }
    );
    assert_eq!(breaker.trials_in_flight(), 0);
}

#[test]
fn open_duration_from_a_backoff_grows_with_repeated_trips_and_resets_on_close() {
    let t0 = Instant::now();
    let backoff = BackoffConfig::exponential(secs(1), 2.0, secs(8));
    let config = BreakerConfig::default()
        .consecutive_failures(1)
        .open_for(OpenDuration::Backoff(backoff));
    let mut breaker = CircuitBreaker::new(config);
    let mut now = t0;
    let mut open_for = Vec::new();
    fail(&mut breaker, 1, now);
    for _ in 0..5 {
        let BreakerState::Open { until } = breaker.state() else {
            panic!("open")
        };
        open_for.push((until - now).as_secs());
        now = until;
        let _trial = breaker.try_acquire(now).unwrap();
        breaker.on_failure(now).unwrap();
    }
    assert_eq!(open_for, [1, 2, 4, 8, 8]);

    // A successful trial closes and starts the backoff over.
    let BreakerState::Open { until } = breaker.state() else {
        panic!("open")
    };
    let _trial = breaker.try_acquire(until).unwrap();
    breaker.on_success(until).unwrap();
    fail(&mut breaker, 1, until);
    assert_eq!(
        breaker.state(),
        BreakerState::Open {
            until: until + secs(1)
        }
    );
}

#[test]
fn open_backoff_ignores_its_stop_conditions() {
    let t0 = Instant::now();
    let backoff = BackoffConfig::constant(secs(3)).max_attempts(Some(1));
    let config = fixed(1, 1).open_for(OpenDuration::Backoff(backoff));
    let mut breaker = CircuitBreaker::new(config);
    let mut now = t0;
    fail(&mut breaker, 1, now);
    for _ in 0..3 {
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                until: now + secs(3)
            }
        );
        now += secs(3);
        let _trial = breaker.try_acquire(now).unwrap();
        breaker.on_failure(now);
    }
}

#[test]
fn jittered_open_backoff_is_seeded() {
    let t0 = Instant::now();
    let backoff = BackoffConfig::exponential(secs(10), 2.0, secs(60)).jitter(Jitter::Full);
    let config = fixed(1, 1).open_for(OpenDuration::Backoff(backoff));
    let until = |seed| {
        let mut breaker = CircuitBreaker::with_seed(config.clone(), seed);
        fail(&mut breaker, 1, t0);
        breaker.state()
    };
    assert_eq!(until(5), until(5));
    assert_ne!(until(5), until(6));
}

#[test]
fn unreported_trial_is_reclaimed_after_the_permit_timeout() {
    let t0 = Instant::now();
    let config = fixed(1, 10).permit_timeout(secs(5));
    let mut breaker = CircuitBreaker::new(config);
    fail(&mut breaker, 1, t0);
    let at = t0 + secs(10);
    let trial = breaker.try_acquire(at).unwrap();
    assert_eq!(
        breaker.poll(at).unwrap().cause,
        TransitionCause::OpenExpired
    );
    drop(trial); // the caller lost it: no report will ever come
    let deadline = at + secs(5);
    assert_eq!(breaker.poll_timeout(), Some(deadline));
    assert_eq!(
        breaker.try_acquire(at + secs(4)).unwrap_err().retry_at,
        Some(deadline)
    );
    assert_eq!(breaker.poll(at + secs(4)), None);

    let reclaimed = breaker.poll(deadline).expect("timed out");
    assert_eq!(reclaimed.cause, TransitionCause::PermitTimedOut);
    assert_eq!(reclaimed.from, BreakerState::HalfOpen);
    assert_eq!(
        reclaimed.to,
        BreakerState::Open {
            until: deadline + secs(10)
        }
    );
    assert_eq!(breaker.trials_in_flight(), 0);

    // Not stuck: after the next open period a new trial is admitted and can close it.
    let again = deadline + secs(10);
    let trial = breaker.try_acquire(again).unwrap();
    assert!(trial.is_trial());
    assert_eq!(
        breaker.report(trial, Outcome::Success, again).unwrap().to,
        BreakerState::Closed
    );
}

#[test]
fn acquire_after_the_timeout_reclaims_lazily_and_a_late_report_is_ignored() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10).permit_timeout(secs(5)));
    fail(&mut breaker, 1, t0);
    let at = t0 + secs(10);
    let trial = breaker.try_acquire(at).unwrap();
    // Nobody polled; the next acquire at +7 s sees the timeout and reopens.
    let rejected = breaker.try_acquire(at + secs(7)).unwrap_err();
    assert_eq!(rejected.retry_at, Some(at + secs(17)));
    // Both changes try_acquire applied come out of poll, in order.
    let causes: Vec<_> = std::iter::from_fn(|| breaker.poll(at + secs(7)))
        .map(|t| t.cause)
        .collect();
    assert_eq!(
        causes,
        [
            TransitionCause::OpenExpired,
            TransitionCause::PermitTimedOut
        ]
    );
    // The trial finally answers: too late, it changes nothing.
    assert_eq!(breaker.report(trial, Outcome::Success, at + secs(8)), None);
    assert_eq!(
        breaker.state(),
        BreakerState::Open {
            until: at + secs(17)
        }
    );
}

#[test]
fn late_plain_report_reclaims_first() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10).permit_timeout(secs(5)));
    fail(&mut breaker, 1, t0);
    let _trial = breaker.try_acquire(t0 + secs(10)).unwrap();
    let transition = breaker.on_success(t0 + secs(20)).unwrap();
    assert_eq!(transition.cause, TransitionCause::PermitTimedOut);
    assert!(matches!(breaker.state(), BreakerState::Open { .. }));
}

#[test]
fn several_half_open_permits_all_have_to_succeed() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10).half_open_permits(3));
    fail(&mut breaker, 1, t0);
    let at = t0 + secs(10);
    let permits: Vec<_> = (0..3).map(|_| breaker.try_acquire(at).unwrap()).collect();
    assert!(permits.iter().all(|p| p.is_trial()));
    assert!(breaker.try_acquire(at).is_err(), "a fourth is refused");
    let mut permits = permits.into_iter();
    assert_eq!(
        breaker.report(permits.next().unwrap(), Outcome::Success, at),
        None
    );
    assert_eq!(
        breaker.report(permits.next().unwrap(), Outcome::Success, at),
        None
    );
    assert!(
        breaker.try_acquire(at).is_err(),
        "successes do not hand out more trials"
    );
    let closed = breaker
        .report(permits.next().unwrap(), Outcome::Success, at)
        .unwrap();
    assert_eq!(closed.cause, TransitionCause::TrialSucceeded);
}

#[test]
fn cancelled_trial_gives_its_slot_back() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10));
    fail(&mut breaker, 1, t0);
    let at = t0 + secs(10);
    let trial = breaker.try_acquire(at).unwrap();
    assert!(breaker.try_acquire(at).is_err());
    assert_eq!(breaker.report(trial, Outcome::Cancelled, at), None);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    let second = breaker.try_acquire(at).expect("the slot is free again");
    assert!(second.is_trial());
}

#[test]
fn report_of_a_pre_trip_permit_does_not_settle_a_trial() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10));
    let old = breaker.try_acquire(t0).unwrap();
    fail(&mut breaker, 1, t0);
    let at = t0 + secs(10);
    let _trial = breaker.try_acquire(at).unwrap();
    // The call admitted before the trip finally fails: it is not the trial.
    assert_eq!(breaker.report(old, Outcome::Failure, at), None);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(breaker.trials_in_flight(), 1);
}

#[test]
fn reports_while_open_are_ignored() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10));
    let early = breaker.try_acquire(t0).unwrap();
    fail(&mut breaker, 1, t0);
    let state = breaker.state();
    assert_eq!(breaker.on_failure(t0 + secs(1)), None);
    assert_eq!(breaker.on_success(t0 + secs(1)), None);
    assert_eq!(breaker.report(early, Outcome::Success, t0 + secs(1)), None);
    assert_eq!(breaker.state(), state);
    // Half-open with no trial out: a stray plain report is not taken as a trial result.
    assert_eq!(
        breaker.poll(t0 + secs(10)).unwrap().to,
        BreakerState::HalfOpen
    );
    assert_eq!(breaker.on_success(t0 + secs(10)), None);
    assert_eq!(breaker.on_failure(t0 + secs(10)), None);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
}

#[test]
fn ratio_over_a_count_window_waits_for_the_minimum_calls() {
    let t0 = Instant::now();
    let config = BreakerConfig::default()
        .no_consecutive_failures()
        .failure_ratio(0.5, Window::Count(4), 4);
    let mut breaker = CircuitBreaker::new(config);
    // 3 failures out of 3 calls: 100 %, but fewer than 4 calls.
    assert!(fail(&mut breaker, 3, t0).is_empty());
    assert_eq!(breaker.window_stats(t0), WindowStats::default().with(3, 3));
    let _permit = breaker.try_acquire(t0).unwrap();
    assert_eq!(breaker.on_success(t0), None, "a success never trips");
    // Window now [F F F S]; the next failure pushes out an F: [F F S F], 3/4.
    let trip = fail(&mut breaker, 1, t0);
    assert_eq!(
        trip[0].cause,
        TransitionCause::FailureRatio {
            failures: 3,
            calls: 4
        }
    );
    assert_eq!(
        breaker.window_stats(t0),
        WindowStats::default(),
        "counts start over"
    );
}

#[test]
fn ratio_below_the_threshold_does_not_trip() {
    let t0 = Instant::now();
    let config = BreakerConfig::default()
        .no_consecutive_failures()
        .failure_ratio(0.65, Window::Count(10), 5);
    let mut breaker = CircuitBreaker::new(config);
    for i in 0..100 {
        let _permit = breaker.try_acquire(t0).unwrap();
        // Every other call fails, first one first: 3 of 5 (60 %) at most, then 50 %.
        let event = if i % 2 == 0 {
            breaker.on_failure(t0)
        } else {
            breaker.on_success(t0)
        };
        assert_eq!(event, None, "call {i}");
    }
    assert_eq!(breaker.window_stats(t0), WindowStats::default().with(10, 5));
}

#[test]
fn ratio_over_a_time_window_forgets_old_failures() {
    let t0 = Instant::now();
    let config = BreakerConfig::default()
        .no_consecutive_failures()
        .failure_ratio(0.5, Window::Time(secs(60)), 4);
    let mut breaker = CircuitBreaker::new(config);
    // Three failures at t0, then a success a minute and a half later: the failures are gone.
    assert!(fail(&mut breaker, 3, t0).is_empty());
    assert_eq!(
        breaker.window_stats(t0 + secs(30)),
        WindowStats::default().with(3, 3)
    );
    assert_eq!(breaker.window_stats(t0 + secs(90)), WindowStats::default());
    let later = t0 + secs(90);
    for _ in 0..3 {
        let _permit = breaker.try_acquire(later).unwrap();
        assert_eq!(breaker.on_success(later), None);
    }
    // 1 failure in 4 calls: 25 %.
    assert!(fail(&mut breaker, 1, later).is_empty());
    // Two more failures 30 s on (still within the window): 3 of 6.
    assert!(fail(&mut breaker, 1, later + secs(30)).is_empty());
    let trip = fail(&mut breaker, 1, later + secs(30));
    assert_eq!(
        trip[0].cause,
        TransitionCause::FailureRatio {
            failures: 3,
            calls: 6
        }
    );
}

#[test]
fn time_window_is_bucketed_to_a_twentieth() {
    let t0 = Instant::now();
    let config = BreakerConfig::default()
        .no_consecutive_failures()
        .failure_ratio(1.0, Window::Time(secs(20)), 100);
    let mut breaker = CircuitBreaker::new(config);
    fail(&mut breaker, 1, t0);
    // Buckets of 1 s: the call at t0 counts until t0 + 20 s, and no longer.
    assert_eq!(
        breaker
            .window_stats(t0 + Duration::from_millis(19_999))
            .calls,
        1
    );
    assert_eq!(breaker.window_stats(t0 + secs(20)).calls, 0);
}

#[test]
fn consecutive_and_ratio_together_report_the_condition_met() {
    let t0 = Instant::now();
    let config = BreakerConfig::default()
        .consecutive_failures(3)
        .failure_ratio(0.25, Window::Count(8), 8);
    let mut breaker = CircuitBreaker::new(config.clone());
    assert_eq!(
        fail(&mut breaker, 3, t0)[0].cause,
        TransitionCause::ConsecutiveFailures(3)
    );

    let mut breaker = CircuitBreaker::new(config);
    let mut events = Vec::new();
    for ok in [true, false, true, true, false, true, true] {
        let _permit = breaker.try_acquire(t0).unwrap();
        events.extend(if ok {
            breaker.on_success(t0)
        } else {
            breaker.on_failure(t0)
        });
    }
    assert!(events.is_empty());
    events.extend(fail(&mut breaker, 1, t0));
    assert_eq!(
        events[0].cause,
        TransitionCause::FailureRatio {
            failures: 3,
            calls: 8
        }
    );
}

#[test]
fn forced_open_rejects_without_a_retry_time_until_reset() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10));
    let forced = breaker.force_open(t0).unwrap();
    assert_eq!(
        (forced.from, forced.to, forced.cause),
        (
            BreakerState::Closed,
            BreakerState::ForcedOpen,
            TransitionCause::Forced
        )
    );
    assert_eq!(breaker.force_open(t0), None, "already forced");
    let far = t0 + secs(1_000_000);
    assert_eq!(breaker.try_acquire(far), Err(Rejected { retry_at: None }));
    assert_eq!(breaker.poll_timeout(), None);
    assert_eq!(breaker.poll(far), None);
    let reset = breaker.reset(far).unwrap();
    assert_eq!(
        (reset.from, reset.to, reset.cause),
        (
            BreakerState::ForcedOpen,
            BreakerState::Closed,
            TransitionCause::Reset
        )
    );
    assert!(breaker.try_acquire(far).is_ok());
}

#[test]
fn disabled_admits_everything_and_counts_nothing() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10));
    let disabled = breaker.disable(t0).unwrap();
    assert_eq!(disabled.cause, TransitionCause::Disabled);
    for _ in 0..50 {
        let permit = breaker.try_acquire(t0).expect("disabled admits");
        assert!(!permit.is_trial());
        assert_eq!(breaker.report(permit, Outcome::Failure, t0), None);
    }
    assert_eq!(breaker.state(), BreakerState::Disabled);
    assert_eq!(breaker.reset(t0).unwrap().to, BreakerState::Closed);
    assert_eq!(
        fail(&mut breaker, 1, t0).len(),
        1,
        "counting again after reset"
    );
}

#[test]
fn reset_from_open_and_from_closed() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(2, 10));
    fail(&mut breaker, 1, t0);
    assert_eq!(breaker.reset(t0), None, "already closed");
    assert_eq!(
        breaker.consecutive_failures(),
        0,
        "but the counts are cleared"
    );
    fail(&mut breaker, 2, t0);
    let reset = breaker.reset(t0 + secs(1)).unwrap();
    assert_eq!(
        reset.from,
        BreakerState::Open {
            until: t0 + secs(10)
        }
    );
    assert_eq!(reset.to, BreakerState::Closed);
    assert_eq!(breaker.poll_timeout(), None);
}

#[test]
fn manual_control_overrides_a_half_open_trial() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 10));
    fail(&mut breaker, 1, t0);
    let trial = breaker.try_acquire(t0 + secs(10)).unwrap();
    breaker.force_open(t0 + secs(11)).unwrap();
    assert_eq!(breaker.trials_in_flight(), 0);
    assert_eq!(
        breaker.poll_timeout(),
        None,
        "no trial deadline left to fire"
    );
    assert_eq!(breaker.report(trial, Outcome::Success, t0 + secs(12)), None);
    assert_eq!(breaker.state(), BreakerState::ForcedOpen);
}

#[test]
fn zero_open_duration_goes_straight_to_half_open() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 0));
    fail(&mut breaker, 1, t0);
    assert_eq!(breaker.state(), BreakerState::Open { until: t0 });
    assert!(breaker.try_acquire(t0).unwrap().is_trial());
}

#[test]
fn huge_durations_saturate_instead_of_panicking() {
    let t0 = Instant::now();
    let config = fixed(1, 0)
        .open_for(OpenDuration::Fixed(Duration::MAX))
        .permit_timeout(Duration::MAX);
    let mut breaker = CircuitBreaker::new(config);
    fail(&mut breaker, 1, t0);
    let BreakerState::Open { until } = breaker.state() else {
        panic!("open")
    };
    assert!(until > t0 + secs(1_000_000_000));
    assert!(breaker.try_acquire(t0 + secs(1_000_000_000)).is_err());
}

#[test]
fn pending_transitions_are_bounded() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(fixed(1, 1).permit_timeout(secs(1)));
    fail(&mut breaker, 1, t0);
    let mut now = t0;
    // Many open -> half-open -> (timeout) -> open cycles applied by try_acquire, never polled.
    for _ in 0..100 {
        now += secs(1);
        let _ = breaker.try_acquire(now);
    }
    let mut drained = 0;
    while breaker.poll(now).is_some() {
        drained += 1;
        assert!(drained <= 10, "poll returns a bounded backlog");
    }
    assert!(drained >= 8);
}

#[test]
fn invalid_configs_are_rejected() {
    let base = BreakerConfig::default();
    let cases = [
        (
            base.clone().consecutive_failures(0),
            Error::ZeroConsecutiveFailures,
        ),
        (
            base.clone().failure_ratio(0.0, Window::Count(10), 1),
            Error::InvalidFailureRatio(0.0),
        ),
        (
            base.clone().failure_ratio(1.1, Window::Count(10), 1),
            Error::InvalidFailureRatio(1.1),
        ),
        (
            base.clone().failure_ratio(0.5, Window::Count(0), 0),
            Error::EmptyWindow,
        ),
        (
            base.clone()
                .failure_ratio(0.5, Window::Time(Duration::ZERO), 0),
            Error::EmptyWindow,
        ),
        (
            base.clone().failure_ratio(0.5, Window::Count(10), 11),
            Error::MinCallsAboveWindow {
                min_calls: 11,
                window: 10,
            },
        ),
        (
            base.clone().half_open_permits(0),
            Error::ZeroHalfOpenPermits,
        ),
        (
            base.clone().permit_timeout(Duration::ZERO),
            Error::ZeroPermitTimeout,
        ),
        (
            base.clone()
                .open_for(OpenDuration::Backoff(BackoffConfig::schedule(vec![]))),
            Error::EmptySchedule,
        ),
        (
            base.clone()
                .failure_ratio(0.5, Window::Count(Window::MAX_COUNT + 1), 1),
            Error::WindowTooLarge {
                window: Window::MAX_COUNT + 1,
                max: Window::MAX_COUNT,
            },
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(config.validate(), Err(expected.clone()));
        assert_eq!(CircuitBreaker::try_new(config).unwrap_err(), expected);
    }
    assert!(
        base.clone()
            .failure_ratio(1.0, Window::Count(10), 10)
            .validate()
            .is_ok()
    );
    assert!(
        base.clone()
            .failure_ratio(0.5, Window::Count(Window::MAX_COUNT), 1)
            .validate()
            .is_ok()
    );
    assert!(
        base.no_consecutive_failures()
            .no_failure_ratio()
            .validate()
            .is_ok()
    );
}

#[test]
#[should_panic(expected = "invalid BreakerConfig")]
fn new_panics_on_an_invalid_config() {
    let _ = CircuitBreaker::new(BreakerConfig::default().half_open_permits(0));
}

#[test]
fn defaults_match_the_documented_table() {
    let config = BreakerConfig::default();
    assert_eq!(config.consecutive_failures, Some(5));
    assert_eq!(config.failure_ratio, None);
    assert_eq!(config.open_for, OpenDuration::Fixed(secs(30)));
    assert_eq!(config.half_open_permits, 1);
    assert_eq!(config.permit_timeout, secs(10));
    let breaker = CircuitBreaker::new(config.clone());
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.config(), &config);
}

#[test]
fn types_are_send_sync_and_debug() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    fn clone<T: Clone>() {}
    check::<CircuitBreaker>();
    check::<BreakerConfig>();
    check::<stompkit_policy::Permit>();
    check::<Rejected>();
    check::<Transition>();
    clone::<CircuitBreaker>();
    clone::<BreakerConfig>();
    clone::<Transition>();
    assert_eq!(
        Rejected { retry_at: None }.to_string(),
        "circuit breaker is open"
    );
}

/// Builds expected stats tersely.
trait With {
    fn with(self, calls: u64, failures: u64) -> Self;
}

impl With for WindowStats {
    fn with(mut self, calls: u64, failures: u64) -> Self {
        self.calls = calls;
        self.failures = failures;
        self
    }
}
