//! Backoff: strategies, jitter bounds, stop conditions, hints, saturation, determinism.

use std::time::{Duration, Instant};

use stompkit_policy::{Backoff, BackoffConfig, Error, Jitter, RandomSource, SeededRng, Strategy};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` delays at a fixed `now` (no elapsed-time limit is involved).
fn take(backoff: &mut Backoff<impl RandomSource>, n: usize) -> Vec<Option<Duration>> {
    let now = Instant::now();
    (0..n).map(|_| backoff.next_delay(now)).collect()
}

fn millis(delays: &[Option<Duration>]) -> Vec<u128> {
    delays
        .iter()
        .map(|d| d.expect("a delay").as_millis())
        .collect()
}

/// The browser client's design: 1, 2, 4, 8, 12 s, cap 12 s, ±20 %, floor 100 ms, 8 attempts.
fn browser_config() -> BackoffConfig {
    BackoffConfig::schedule([1000, 2000, 4000, 8000, 12000].map(ms).to_vec())
        .jitter(Jitter::Proportional(0.2))
        .cap(ms(12000))
        .floor(ms(100))
        .max_attempts(Some(8))
}

/// A source that always answers the same value: 0 picks the low end of every range,
/// `u64::MAX` the high end.
#[derive(Debug)]
struct Fixed(u64);

impl RandomSource for Fixed {
    fn next_u64(&mut self) -> u64 {
        self.0
    }
}

#[test]
fn exponential_doubles_up_to_the_cap() {
    let mut backoff = Backoff::new(BackoffConfig::exponential(ms(100), 2.0, ms(1000)), 0);
    assert_eq!(
        millis(&take(&mut backoff, 7)),
        [100, 200, 400, 800, 1000, 1000, 1000]
    );
    assert_eq!(backoff.attempts(), 7);
}

#[test]
fn exponential_with_a_fractional_factor() {
    let mut backoff = Backoff::new(BackoffConfig::exponential(ms(1000), 1.5, ms(10_000)), 0);
    assert_eq!(millis(&take(&mut backoff, 4)), [1000, 1500, 2250, 3375]);
}

#[test]
fn schedule_of_the_seeds_repeats_its_last_entry() {
    let seeds = [1, 2, 5, 10, 20, 30, 60].map(Duration::from_secs).to_vec();
    let mut backoff = Backoff::new(BackoffConfig::schedule(seeds), 0);
    let delays = take(&mut backoff, 10);
    let secs: Vec<u64> = delays.iter().map(|d| d.unwrap().as_secs()).collect();
    assert_eq!(secs, [1, 2, 5, 10, 20, 30, 60, 60, 60, 60]);
}

#[test]
fn constant_is_constant() {
    let mut backoff = Backoff::new(BackoffConfig::constant(ms(250)), 0);
    assert_eq!(millis(&take(&mut backoff, 4)), [250, 250, 250, 250]);
}

#[test]
fn browser_design_gives_eight_jittered_delays_then_stops() {
    let nominal = [1000u64, 2000, 4000, 8000, 12000, 12000, 12000, 12000];
    for seed in 0..200 {
        let mut backoff = Backoff::new(browser_config(), seed);
        let delays = take(&mut backoff, 10);
        for (delay, nominal) in delays.iter().zip(nominal) {
            let delay = delay.expect("eight delays").as_millis() as u64;
            let low = nominal - nominal / 5;
            let high = (nominal + nominal / 5).min(12000);
            assert!(
                (low..=high).contains(&delay),
                "seed {seed}: {delay} not in {low}..={high}"
            );
        }
        assert_eq!(delays[8], None, "a ninth attempt is refused");
        assert_eq!(delays[9], None, "and it stays refused");
        assert!(backoff.is_exhausted());
        assert_eq!(backoff.attempts(), 8);
    }
}

#[test]
fn browser_design_reaches_both_ends_of_the_jitter_range() {
    let low = take(&mut Backoff::with_rng(browser_config(), Fixed(0)), 5);
    assert_eq!(millis(&low), [800, 1600, 3200, 6400, 9600]);
    let high = take(&mut Backoff::with_rng(browser_config(), Fixed(u64::MAX)), 5);
    // 14 400 ms would exceed the cap: the range is cut at 12 000.
    assert_eq!(millis(&high), [1200, 2400, 4800, 9600, 12000]);
}

#[test]
fn full_jitter_spans_floor_to_nominal() {
    let config = BackoffConfig::constant(ms(1000))
        .jitter(Jitter::Full)
        .floor(ms(100));
    let low = Backoff::with_rng(config.clone(), Fixed(0)).next_delay(Instant::now());
    assert_eq!(
        low,
        Some(ms(100)),
        "full jitter is lifted to the floor, not zero"
    );
    let high = Backoff::with_rng(config.clone(), Fixed(u64::MAX)).next_delay(Instant::now());
    assert_eq!(high, Some(ms(1000)));
    let mut backoff = Backoff::new(config, 9);
    let delays = take(&mut backoff, 2000);
    assert!(
        delays
            .iter()
            .all(|d| (ms(100)..=ms(1000)).contains(&d.unwrap()))
    );
    // Spread over the range: both the lowest and the highest tenth are hit.
    assert!(delays.iter().any(|d| d.unwrap() < ms(190)));
    assert!(delays.iter().any(|d| d.unwrap() > ms(910)));
}

#[test]
fn equal_jitter_keeps_at_least_half() {
    let config = BackoffConfig::constant(ms(1000)).jitter(Jitter::Equal);
    assert_eq!(
        Backoff::with_rng(config.clone(), Fixed(0)).next_delay(Instant::now()),
        Some(ms(500))
    );
    assert_eq!(
        Backoff::with_rng(config.clone(), Fixed(u64::MAX)).next_delay(Instant::now()),
        Some(ms(1000))
    );
    let delays = take(&mut Backoff::new(config, 4), 1000);
    assert!(
        delays
            .iter()
            .all(|d| (ms(500)..=ms(1000)).contains(&d.unwrap()))
    );
    assert!(delays.iter().any(|d| d.unwrap() < ms(550)));
}

#[test]
fn proportional_jitter_never_exceeds_the_cap_even_at_the_cap() {
    // Nominal delay stuck at the cap: a naive "cap, then jitter" would give up to 36 s.
    let config = BackoffConfig::exponential(Duration::from_secs(1), 2.0, Duration::from_secs(30))
        .jitter(Jitter::Proportional(0.2));
    let mut backoff = Backoff::new(config, 11);
    let delays = take(&mut backoff, 1000);
    let late = &delays[10..]; // 1024 s nominal, capped at 30 s
    assert!(late.iter().all(|d| d.unwrap() <= Duration::from_secs(30)));
    assert!(late.iter().all(|d| d.unwrap() >= Duration::from_secs(24)));
    // Still spread out below the cap, so clients that started together stay apart.
    assert!(
        late.iter()
            .filter(|d| d.unwrap() < Duration::from_secs(29))
            .count()
            > 100
    );
}

#[test]
fn floor_lifts_every_delay() {
    let config = BackoffConfig::schedule(vec![Duration::ZERO, ms(10), ms(500)])
        .jitter(Jitter::Full)
        .floor(ms(100));
    let delays = take(&mut Backoff::new(config, 5), 500);
    assert!(delays.iter().all(|d| d.unwrap() >= ms(100)));
    let exact = take(
        &mut Backoff::new(BackoffConfig::schedule(vec![ms(10)]).floor(ms(100)), 0),
        2,
    );
    assert_eq!(millis(&exact), [100, 100]);
}

#[test]
fn decorrelated_jitter_follows_min_cap_random_base_prev_times_three() {
    let cap = Duration::from_secs(20);
    let mut backoff = Backoff::new(BackoffConfig::decorrelated(ms(100), cap), 21);
    let now = Instant::now();
    let mut previous = ms(100);
    let mut grew = false;
    for _ in 0..200 {
        let delay = backoff.next_delay(now).unwrap();
        assert!(delay >= ms(100), "{delay:?} below base");
        assert!(
            delay <= (previous * 3).min(cap),
            "{delay:?} above min(cap, 3 * {previous:?})"
        );
        grew |= delay > ms(1000);
        previous = delay;
    }
    assert!(
        grew,
        "decorrelated jitter grows past 10x base within 200 draws"
    );
    // With the top of every range it triples until the cap.
    let high = take(
        &mut Backoff::with_rng(BackoffConfig::decorrelated(ms(100), cap), Fixed(u64::MAX)),
        7,
    );
    assert_eq!(millis(&high), [300, 900, 2700, 8100, 20000, 20000, 20000]);
}

#[test]
fn max_attempts_stops_and_reset_starts_over() {
    let config = BackoffConfig::exponential(ms(10), 2.0, ms(1000)).max_attempts(Some(3));
    let mut backoff = Backoff::new(config, 0);
    let delays = take(&mut backoff, 5);
    assert_eq!(
        delays,
        [Some(ms(10)), Some(ms(20)), Some(ms(40)), None, None]
    );
    assert_eq!(backoff.attempts(), 3);
    backoff.reset();
    assert_eq!(backoff.attempts(), 0);
    assert!(!backoff.is_exhausted());
    assert_eq!(
        take(&mut backoff, 4),
        [Some(ms(10)), Some(ms(20)), Some(ms(40)), None]
    );
}

#[test]
fn max_attempts_zero_never_retries() {
    let mut backoff = Backoff::new(BackoffConfig::constant(ms(5)).max_attempts(Some(0)), 0);
    assert_eq!(backoff.next_delay(Instant::now()), None);
}

#[test]
fn max_elapsed_counts_from_the_first_call_and_refuses_a_delay_past_the_budget() {
    let config =
        BackoffConfig::constant(Duration::from_secs(10)).max_elapsed(Some(Duration::from_secs(35)));
    let mut backoff = Backoff::new(config, 0);
    let t0 = Instant::now();
    // The clock starts at the first call, at t0 + 100 s: earlier time does not count.
    let start = t0 + Duration::from_secs(100);
    assert_eq!(backoff.next_delay(start), Some(Duration::from_secs(10)));
    assert_eq!(
        backoff.next_delay(start + Duration::from_secs(10)),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        backoff.next_delay(start + Duration::from_secs(20)),
        Some(Duration::from_secs(10))
    );
    // 30 s elapsed + 10 s delay = 40 s > 35 s: give up rather than retry after the budget.
    assert_eq!(backoff.next_delay(start + Duration::from_secs(30)), None);
    assert_eq!(
        backoff.next_delay(start + Duration::from_secs(31)),
        None,
        "stays given up"
    );
    assert_eq!(backoff.attempts(), 3);

    backoff.reset();
    let later = start + Duration::from_secs(1000);
    assert_eq!(
        backoff.next_delay(later),
        Some(Duration::from_secs(10)),
        "reset restarts the clock"
    );
}

#[test]
fn max_elapsed_exactly_reached_is_allowed() {
    let config =
        BackoffConfig::constant(Duration::from_secs(10)).max_elapsed(Some(Duration::from_secs(20)));
    let mut backoff = Backoff::new(config, 0);
    let t0 = Instant::now();
    assert!(backoff.next_delay(t0).is_some());
    assert!(
        backoff.next_delay(t0 + Duration::from_secs(10)).is_some(),
        "ends exactly at 20 s"
    );
    assert!(backoff.next_delay(t0 + Duration::from_secs(20)).is_none());
}

#[test]
fn never_stopping_keeps_going() {
    let mut backoff = Backoff::new(BackoffConfig::default(), 1);
    let t0 = Instant::now();
    for i in 0..100_000u64 {
        let now = t0 + Duration::from_secs(i * 30);
        assert!(backoff.next_delay(now).is_some(), "attempt {i}");
    }
    assert_eq!(backoff.attempts(), 100_000);
}

#[test]
fn hint_overrides_only_the_next_delay_and_is_clamped() {
    let config = BackoffConfig::exponential(ms(100), 2.0, Duration::from_secs(5)).floor(ms(50));
    let mut backoff = Backoff::new(config, 0);
    let now = Instant::now();
    assert_eq!(backoff.next_delay(now), Some(ms(100)));
    backoff.set_hint(Duration::from_secs(2));
    assert_eq!(
        backoff.next_delay(now),
        Some(Duration::from_secs(2)),
        "hint used"
    );
    assert_eq!(
        backoff.next_delay(now),
        Some(ms(400)),
        "strategy went on advancing"
    );
    backoff.set_hint(Duration::from_secs(3600));
    assert_eq!(
        backoff.next_delay(now),
        Some(Duration::from_secs(5)),
        "hint clamped to the cap"
    );
    backoff.set_hint(ms(1));
    assert_eq!(
        backoff.next_delay(now),
        Some(ms(50)),
        "hint lifted to the floor"
    );
    assert_eq!(backoff.attempts(), 5, "hinted delays count as attempts");
}

#[test]
fn hint_is_not_jittered_and_respects_stop_conditions() {
    let config = BackoffConfig::constant(ms(100))
        .jitter(Jitter::Full)
        .max_attempts(Some(1));
    let mut backoff = Backoff::new(config, 0);
    backoff.set_hint(ms(70));
    assert_eq!(backoff.next_delay(Instant::now()), Some(ms(70)));
    backoff.set_hint(ms(70));
    assert_eq!(
        backoff.next_delay(Instant::now()),
        None,
        "max attempts still applies"
    );
}

#[test]
fn reset_drops_a_pending_hint() {
    let mut backoff = Backoff::new(BackoffConfig::constant(ms(100)), 0);
    backoff.set_hint(Duration::from_secs(9));
    backoff.reset();
    assert_eq!(backoff.next_delay(Instant::now()), Some(ms(100)));
}

#[test]
fn attempt_ten_thousand_saturates_without_panicking() {
    let configs = [
        BackoffConfig::exponential(ms(1), 10.0, Duration::from_secs(60))
            .jitter(Jitter::Proportional(1.0)),
        BackoffConfig::new(Strategy::Exponential {
            base: Duration::MAX,
            factor: f64::MAX,
        }),
        BackoffConfig::new(Strategy::Exponential {
            base: ms(1),
            factor: 2.0,
        })
        .jitter(Jitter::Full),
        BackoffConfig::schedule(vec![Duration::MAX]).jitter(Jitter::Proportional(0.5)),
        BackoffConfig::new(Strategy::DecorrelatedJitter {
            base: Duration::MAX,
        }),
        BackoffConfig::new(Strategy::DecorrelatedJitter {
            base: Duration::from_nanos(1),
        }),
        BackoffConfig::constant(Duration::MAX).jitter(Jitter::Equal),
    ];
    for config in configs {
        let cap = config.cap;
        let mut backoff = Backoff::new(config, 3);
        let delays = take(&mut backoff, 10_001);
        let last = delays[10_000].expect("attempt 10 000 gets a delay");
        assert!(last <= cap);
        assert_eq!(backoff.attempts(), 10_001);
    }
    // Without jitter, attempt 10 000 of a x10 exponential sits exactly at its 60 s cap.
    let mut backoff = Backoff::with_rng(
        BackoffConfig::exponential(ms(1), 10.0, Duration::from_secs(60)),
        Fixed(0),
    );
    assert_eq!(
        take(&mut backoff, 10_001)[10_000],
        Some(Duration::from_secs(60))
    );
}

#[test]
fn uncapped_exponential_saturates_at_the_largest_delay() {
    let mut backoff = Backoff::new(
        BackoffConfig::new(Strategy::Exponential {
            base: ms(1),
            factor: 2.0,
        }),
        0,
    );
    let delays = take(&mut backoff, 200);
    // 2^64 ns is beyond u64 nanoseconds: the delay stops growing at about 584 years.
    assert_eq!(delays[199], Some(Duration::from_nanos(u64::MAX)));
    assert!(delays.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn same_seed_same_delays_different_seed_different_delays() {
    // Three instances alive together, asked in turn: state they shared would show.
    let config = BackoffConfig::default();
    let mut a = Backoff::new(config.clone(), 1234);
    let mut b = Backoff::new(config.clone(), 1234);
    let mut c = Backoff::new(config, 1235);
    let now = Instant::now();
    let (mut from_a, mut from_b, mut from_c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..50 {
        from_a.push(a.next_delay(now));
        from_b.push(b.next_delay(now));
        from_c.push(c.next_delay(now));
    }
    assert_eq!(from_a, from_b);
    assert_ne!(from_a, from_c);
}

#[test]
fn seeded_delays_are_pinned() {
    // Part of the stability promise: these exact values for this seed.
    let config =
        BackoffConfig::exponential(ms(100), 2.0, Duration::from_secs(10)).jitter(Jitter::Full);
    let delays: Vec<u128> = take(&mut Backoff::new(config, 0), 6)
        .iter()
        .map(|d| d.unwrap().as_nanos())
        .collect();
    let mut rng = SeededRng::new(0);
    let expected: Vec<u128> = [100u128, 200, 400, 800, 1600, 3200]
        .iter()
        .map(|nominal_ms| {
            let span = nominal_ms * 1_000_000 + 1;
            (u128::from(rng.next_u64()) * span) >> 64
        })
        .collect();
    assert_eq!(delays, expected);
    // The same numbers written out, so a change of generator or sampling cannot go unseen.
    assert_eq!(
        delays,
        [
            88_331_081,
            86_305_599,
            10_573_508,
            776_705_583,
            170_154_706,
            1_047_442_445
        ]
    );
}

#[test]
fn reset_replays_the_deterministic_part() {
    let mut backoff = Backoff::new(
        BackoffConfig::exponential(ms(100), 3.0, Duration::from_secs(60)),
        0,
    );
    let first = take(&mut backoff, 5);
    backoff.reset();
    assert_eq!(take(&mut backoff, 5), first);
}

#[test]
fn boxed_dynamic_source_can_be_plugged_in() {
    let rng: Box<dyn RandomSource + Send> = Box::new(Fixed(u64::MAX));
    let config = BackoffConfig::constant(ms(100)).jitter(Jitter::Equal);
    let mut backoff = Backoff::with_rng(config, rng);
    assert_eq!(backoff.next_delay(Instant::now()), Some(ms(100)));
    let debug = format!("{backoff:?}");
    assert!(debug.contains("Backoff"));
}

#[test]
fn borrowed_source_is_shared_between_backoffs() {
    let mut rng = SeededRng::new(77);
    let config = BackoffConfig::constant(ms(1000)).jitter(Jitter::Full);
    let first = Backoff::with_rng(config.clone(), &mut rng).next_delay(Instant::now());
    let second = Backoff::with_rng(config, &mut rng).next_delay(Instant::now());
    assert_ne!(
        first, second,
        "the second backoff continued the shared sequence"
    );
    // Each backoff drew exactly once from the borrowed generator.
    let mut reference = SeededRng::new(77);
    reference.next_u64();
    reference.next_u64();
    assert_eq!(rng, reference);
}

#[test]
fn invalid_configs_are_rejected() {
    let cases = [
        (
            BackoffConfig::exponential(ms(1), 0.5, ms(10)),
            Error::InvalidFactor(0.5),
        ),
        (
            BackoffConfig::exponential(ms(1), f64::INFINITY, ms(10)),
            Error::InvalidFactor(f64::INFINITY),
        ),
        (
            BackoffConfig::exponential(Duration::ZERO, 2.0, ms(10)),
            Error::ZeroBase,
        ),
        (
            BackoffConfig::decorrelated(Duration::ZERO, ms(10)),
            Error::ZeroBase,
        ),
        (BackoffConfig::schedule(vec![]), Error::EmptySchedule),
        (
            BackoffConfig::constant(ms(1)).jitter(Jitter::Proportional(1.5)),
            Error::InvalidJitterRatio(1.5),
        ),
        (
            BackoffConfig::constant(ms(1)).jitter(Jitter::Proportional(-0.1)),
            Error::InvalidJitterRatio(-0.1),
        ),
        (
            BackoffConfig::constant(ms(1)).floor(ms(200)).cap(ms(100)),
            Error::FloorAboveCap {
                floor: ms(200),
                cap: ms(100),
            },
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(config.validate(), Err(expected.clone()));
        assert_eq!(Backoff::try_new(config, 0).unwrap_err(), expected);
    }
    let nan = BackoffConfig::exponential(ms(1), f64::NAN, ms(10)).validate();
    assert!(matches!(nan, Err(Error::InvalidFactor(f)) if f.is_nan()));
    assert!(BackoffConfig::default().validate().is_ok());
    assert!(Backoff::try_new(browser_config(), 0).is_ok());
    assert_eq!(
        Error::EmptySchedule.to_string(),
        "backoff schedule must have at least one entry"
    );
}

#[test]
#[should_panic(expected = "invalid BackoffConfig")]
fn new_panics_on_an_invalid_config() {
    let _ = Backoff::new(BackoffConfig::schedule(Vec::new()), 0);
}

#[test]
fn defaults_match_the_documented_table() {
    let config = BackoffConfig::default();
    assert_eq!(
        config.strategy,
        Strategy::Exponential {
            base: Duration::from_secs(1),
            factor: 2.0
        }
    );
    assert_eq!(config.jitter, Jitter::Full);
    assert_eq!(config.cap, Duration::from_secs(30));
    assert_eq!(config.floor, ms(100));
    assert_eq!(config.max_attempts, None);
    assert_eq!(config.max_elapsed, None);
    let plain = BackoffConfig::new(Strategy::Constant(ms(5)));
    assert_eq!(
        (
            plain.jitter,
            plain.cap,
            plain.floor,
            plain.max_attempts,
            plain.max_elapsed
        ),
        (Jitter::None, Duration::MAX, Duration::ZERO, None, None)
    );
}

#[test]
fn config_is_readable_from_the_backoff() {
    let backoff = Backoff::new(browser_config(), 0);
    assert_eq!(backoff.config(), &browser_config());
    assert_eq!(backoff.rng(), &SeededRng::new(0));
}

#[test]
fn types_are_send_sync_clone_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Backoff>();
    check::<BackoffConfig>();
    check::<Strategy>();
    check::<Jitter>();
    check::<SeededRng>();
    check::<Error>();
}
