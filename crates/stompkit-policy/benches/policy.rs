//! Cost of the policy decisions: one `next_delay`, one breaker acquire + report.
//!
//! `cargo bench -p stompkit-policy --bench policy`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use stompkit_policy::{
    Backoff, BackoffConfig, BreakerConfig, CircuitBreaker, Jitter, OpenDuration, Outcome, Window,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn backoff(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("next_delay");
    let configs = [
        (
            "exponential_none",
            BackoffConfig::exponential(ms(100), 2.0, ms(30_000)),
        ),
        (
            "exponential_full",
            BackoffConfig::exponential(ms(100), 2.0, ms(30_000))
                .jitter(Jitter::Full)
                .floor(ms(100)),
        ),
        (
            "schedule_proportional",
            BackoffConfig::schedule([1000, 2000, 4000, 8000, 12000].map(ms).to_vec())
                .jitter(Jitter::Proportional(0.2))
                .cap(ms(12_000))
                .floor(ms(100)),
        ),
        (
            "decorrelated",
            BackoffConfig::decorrelated(ms(100), ms(30_000)),
        ),
        (
            "default_max_elapsed",
            BackoffConfig::default().max_elapsed(Some(Duration::from_secs(u64::from(u32::MAX)))),
        ),
    ];
    for (name, config) in configs {
        let mut backoff = Backoff::new(config, 42);
        group.bench_function(name, |b| {
            b.iter(|| {
                // Restart now and then so the schedule does not just sit at the cap.
                if backoff.attempts() == 16 {
                    backoff.reset();
                }
                black_box(backoff.next_delay(black_box(now)))
            });
        });
    }
    group.finish();
}

fn breaker(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut group = c.benchmark_group("breaker");

    // Closed, consecutive-failure counting only: the common path.
    let mut breaker = CircuitBreaker::new(BreakerConfig::default());
    group.bench_function("acquire_success_closed", |b| {
        b.iter(|| {
            let permit = breaker.try_acquire(black_box(t0)).unwrap();
            black_box(breaker.report(permit, Outcome::Success, t0))
        });
    });

    let mut breaker = CircuitBreaker::new(BreakerConfig::default());
    group.bench_function("acquire_on_failure_closed_plain", |b| {
        // Alternating so that it never trips (5 consecutive failures needed).
        let mut fail = false;
        b.iter(|| {
            let _permit = breaker.try_acquire(black_box(t0)).unwrap();
            fail = !fail;
            black_box(if fail {
                breaker.on_failure(t0)
            } else {
                breaker.on_success(t0)
            })
        });
    });

    // Failure ratio over a count window, 1 in 4 calls failing (below the 50 % threshold).
    let config = BreakerConfig::default()
        .no_consecutive_failures()
        .failure_ratio(0.5, Window::Count(100), 20);
    let mut breaker = CircuitBreaker::new(config);
    group.bench_function("acquire_report_count_window", |b| {
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            let outcome = if i % 4 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            let permit = breaker.try_acquire(black_box(t0)).unwrap();
            black_box(breaker.report(permit, outcome, t0))
        });
    });

    // Failure ratio over a 10 s time window, the clock moving 1 ms per call.
    let config = BreakerConfig::default()
        .no_consecutive_failures()
        .failure_ratio(0.5, Window::Time(Duration::from_secs(10)), 20);
    let mut breaker = CircuitBreaker::new(config);
    group.bench_function("acquire_report_time_window", |b| {
        let mut now = t0;
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            now += ms(1);
            let outcome = if i % 4 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            let permit = breaker.try_acquire(black_box(now)).unwrap();
            black_box(breaker.report(permit, outcome, now))
        });
    });

    // Open: every call rejected.
    let config = BreakerConfig::default()
        .consecutive_failures(1)
        .open_for(OpenDuration::Fixed(Duration::from_secs(3600)));
    let mut breaker = CircuitBreaker::new(config);
    let _ = breaker.on_failure(t0);
    group.bench_function("acquire_rejected_open", |b| {
        b.iter(|| black_box(breaker.try_acquire(black_box(t0)).is_err()));
    });

    // A full open -> half-open -> trial success -> closed -> trip cycle.
    let config = BreakerConfig::default()
        .consecutive_failures(1)
        .open_for(OpenDuration::Fixed(ms(1)));
    let mut breaker = CircuitBreaker::new(config);
    group.bench_function("trip_and_recover_cycle", |b| {
        let mut now = t0;
        b.iter(|| {
            let _ = breaker.on_failure(now); // trips
            now += ms(1);
            let trial = breaker.try_acquire(now).unwrap();
            black_box(breaker.poll(now));
            black_box(breaker.report(trial, Outcome::Success, now))
        });
    });
    group.finish();
}

criterion_group!(benches, backoff, breaker);
criterion_main!(benches);
