//! Sans-IO resilience policies: retry backoff with jitter, and a circuit breaker.
//!
//! Nothing here sleeps, reads a clock or touches a global random generator. Time comes in
//! as `now: Instant` arguments and goes out as `Duration`s and `Instant`s for the caller to
//! wait on; randomness comes from a [`RandomSource`] the policy owns (a [`SeededRng`]) or
//! that the caller hands in. So every schedule is reproducible in a test, and the crate
//! works with any runtime, or none. It has no dependencies.
//!
//! - [`Backoff`] hands out one delay per retry from a [`BackoffConfig`]: a [`Strategy`]
//!   (exponential, explicit schedule, constant, decorrelated jitter), a [`Jitter`] mode
//!   (none, full, equal, proportional), a cap and a floor that every delay respects, stop
//!   conditions (attempts, elapsed time, or never) and server hints (like `Retry-After`).
//! - [`CircuitBreaker`] stops calls to a failing service: it trips on consecutive failures
//!   or on a failure ratio over a count- or time-based [`Window`], stays open for a fixed
//!   time or a backoff, then admits a bounded number of half-open trials, reclaiming
//!   trials that never report. Every state change comes back as a [`Transition`].
//!
//! # Reconnecting with a backoff
//!
//! ```
//! use std::time::{Duration, Instant};
//! use stompkit_policy::{Backoff, BackoffConfig, Jitter};
//!
//! let config = BackoffConfig::exponential(Duration::from_millis(500), 2.0, Duration::from_secs(30))
//!     .jitter(Jitter::Equal)
//!     .floor(Duration::from_millis(100))
//!     .max_elapsed(Some(Duration::from_secs(300)));
//! let mut backoff = Backoff::new(config, 0x5EED);
//!
//! // A fake clock: the caller would sleep `delay` and try to connect.
//! let mut now = Instant::now();
//! let mut attempts = 0;
//! while let Some(delay) = backoff.next_delay(now) {
//!     assert!(delay >= Duration::from_millis(100) && delay <= Duration::from_secs(30));
//!     now += delay;
//!     attempts += 1;
//!     if attempts == 5 {
//!         // Connected: the next outage starts from the beginning.
//!         backoff.reset();
//!         break;
//!     }
//! }
//! assert_eq!(backoff.attempts(), 0);
//! ```
//!
//! # Guarding calls with a circuit breaker
//!
//! ```
//! use std::time::{Duration, Instant};
//! use stompkit_policy::{BreakerConfig, BreakerState, CircuitBreaker, Window};
//!
//! let config = BreakerConfig::default()
//!     .no_consecutive_failures()
//!     .failure_ratio(0.5, Window::Count(10), 4);
//! let mut breaker = CircuitBreaker::new(config);
//! let t0 = Instant::now();
//!
//! let mut transitions = Vec::new();
//! for ok in [true, false, true, false] {
//!     let permit = breaker.try_acquire(t0).expect("closed");
//!     assert!(!permit.is_trial());
//!     let event = if ok { breaker.on_success(t0) } else { breaker.on_failure(t0) };
//!     transitions.extend(event);
//! }
//! // 2 failures out of 4 calls: 50 %, and the minimum of 4 calls is reached.
//! assert_eq!(transitions.len(), 1);
//! assert!(matches!(breaker.state(), BreakerState::Open { .. }));
//! ```
//!
//! See the crate README for each strategy, the defaults, and a comparison of the jitter
//! modes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
mod breaker;
mod error;
mod rng;
mod window;

pub use backoff::{Backoff, BackoffConfig, Jitter, Strategy};
pub use breaker::{
    BreakerConfig, BreakerState, CircuitBreaker, OpenDuration, Outcome, Permit, RatioTrip,
    Rejected, Transition, TransitionCause, Window, WindowStats,
};
pub use error::Error;
pub use rng::{RandomSource, SeededRng};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
