//! Configuration errors.

use std::fmt;
use std::time::Duration;

/// An invalid [`BackoffConfig`](crate::BackoffConfig) or
/// [`BreakerConfig`](crate::BreakerConfig), reported by their `validate` methods and by the
/// `try_new` constructors.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The exponential growth factor is below 1, infinite or NaN.
    InvalidFactor(f64),
    /// An exponential or decorrelated-jitter base of zero: the delay would never grow.
    ZeroBase,
    /// A [`Strategy::Schedule`](crate::Strategy::Schedule) without any entry.
    EmptySchedule,
    /// A [`Jitter::Proportional`](crate::Jitter::Proportional) ratio outside `0.0..=1.0`.
    InvalidJitterRatio(f64),
    /// The floor is above the cap, so no delay can satisfy both.
    FloorAboveCap {
        /// The configured floor.
        floor: Duration,
        /// The configured cap.
        cap: Duration,
    },
    /// A breaker failure ratio outside `(0.0, 1.0]`.
    InvalidFailureRatio(f64),
    /// A sliding window of zero calls or zero length.
    EmptyWindow,
    /// A count window longer than [`Window::MAX_COUNT`](crate::Window::MAX_COUNT) calls.
    WindowTooLarge {
        /// The configured window.
        window: usize,
        /// The largest window accepted.
        max: usize,
    },
    /// A count window shorter than the minimum number of calls: the ratio could never count.
    MinCallsAboveWindow {
        /// The configured minimum number of calls.
        min_calls: u32,
        /// The number of calls the window holds.
        window: usize,
    },
    /// A consecutive-failure threshold of zero.
    ZeroConsecutiveFailures,
    /// Zero half-open permits: the breaker could never close again.
    ZeroHalfOpenPermits,
    /// A zero permit timeout: every half-open trial would time out at once.
    ZeroPermitTimeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidFactor(factor) => {
                write!(
                    f,
                    "exponential factor must be finite and at least 1, got {factor}"
                )
            }
            Self::ZeroBase => f.write_str("backoff base must be greater than zero"),
            Self::EmptySchedule => f.write_str("backoff schedule must have at least one entry"),
            Self::InvalidJitterRatio(ratio) => {
                write!(
                    f,
                    "proportional jitter ratio must be within 0..=1, got {ratio}"
                )
            }
            Self::FloorAboveCap { floor, cap } => {
                write!(f, "backoff floor {floor:?} is above the cap {cap:?}")
            }
            Self::InvalidFailureRatio(ratio) => {
                write!(f, "failure ratio must be within (0, 1], got {ratio}")
            }
            Self::EmptyWindow => {
                f.write_str("sliding window must hold at least one call or nanosecond")
            }
            Self::WindowTooLarge { window, max } => {
                write!(
                    f,
                    "count window of {window} calls is above the maximum of {max}"
                )
            }
            Self::MinCallsAboveWindow { min_calls, window } => write!(
                f,
                "minimum of {min_calls} calls can never be reached in a window of {window} calls"
            ),
            Self::ZeroConsecutiveFailures => {
                f.write_str("consecutive-failure threshold must be at least 1")
            }
            Self::ZeroHalfOpenPermits => f.write_str("half-open permits must be at least 1"),
            Self::ZeroPermitTimeout => f.write_str("permit timeout must be greater than zero"),
        }
    }
}

impl std::error::Error for Error {}
