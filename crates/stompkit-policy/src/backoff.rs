//! Retry delays: [`Strategy`], [`Jitter`], [`BackoffConfig`] and the [`Backoff`] state
//! machine.

use std::fmt;
use std::time::{Duration, Instant};

use crate::Error;
use crate::rng::{RandomSource, SeededRng, uniform_inclusive};

/// How the nominal delay of each attempt is computed, before jitter, floor and cap.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// `base * factor^attempt` (attempt counted from 0), saturating at the cap.
    Exponential {
        /// The first delay. Must be greater than zero.
        base: Duration,
        /// The growth factor between attempts. Must be finite and at least 1.
        factor: f64,
    },
    /// An explicit list of delays, one per attempt; the last entry repeats forever.
    /// Must not be empty.
    Schedule(Vec<Duration>),
    /// The same delay every time.
    Constant(Duration),
    /// AWS's "decorrelated jitter": `min(cap, random(base, previous * 3))`, starting from
    /// `previous = base`. The randomness is part of the strategy, so it is usually combined
    /// with [`Jitter::None`].
    DecorrelatedJitter {
        /// The smallest delay and the starting point. Must be greater than zero.
        base: Duration,
    },
}

/// Randomisation applied to the nominal delay `d` of a [`Strategy`].
///
/// Each mode defines a range around `d`; that range is intersected with `[floor, cap]` and
/// the delay is drawn uniformly from what is left, so a jittered delay never exceeds the cap
/// and never falls below the floor, and it still varies when `d` sits at the cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Exactly `d`.
    None,
    /// Uniform in `[0, d]` ("full jitter"): the widest spread.
    Full,
    /// Uniform in `[d/2, d]` ("equal jitter"): at least half of the nominal delay.
    Equal,
    /// Uniform in `[d - ratio*d, d + ratio*d]`; `Proportional(0.2)` is ±20 %. The ratio
    /// must be within `0.0..=1.0`.
    Proportional(f64),
}

/// Everything a [`Backoff`] needs: strategy, jitter, bounds and stop conditions.
///
/// Fields are public to read and to change; build one with [`BackoffConfig::new`], a preset
/// ([`exponential`](Self::exponential), [`schedule`](Self::schedule),
/// [`constant`](Self::constant), [`decorrelated`](Self::decorrelated)) or
/// [`Default`], then chain the setters.
///
/// | field | [`Default`] | [`new`](Self::new) and the presets |
/// |---|---|---|
/// | `strategy` | exponential, base 1 s, factor 2 | as given |
/// | `jitter` | [`Jitter::Full`] | [`Jitter::None`] |
/// | `cap` | 30 s | `Duration::MAX` (none), or the preset's `cap` |
/// | `floor` | 100 ms | zero |
/// | `max_attempts` | `None` (never stop) | `None` |
/// | `max_elapsed` | `None` (never stop) | `None` |
///
/// ```
/// use std::time::Duration;
/// use stompkit_policy::{BackoffConfig, Jitter};
///
/// // The browser client's reconnect policy: 1, 2, 4, 8, 12 s (then 12 s again), ±20 %,
/// // never above 12 s nor below 100 ms, give up after 8 attempts.
/// let config = BackoffConfig::schedule(
///     [1000, 2000, 4000, 8000, 12000].map(Duration::from_millis).to_vec(),
/// )
/// .jitter(Jitter::Proportional(0.2))
/// .cap(Duration::from_millis(12000))
/// .floor(Duration::from_millis(100))
/// .max_attempts(Some(8));
/// assert_eq!(config.validate(), Ok(()));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// The nominal delay of each attempt.
    pub strategy: Strategy,
    /// The randomisation around the nominal delay.
    pub jitter: Jitter,
    /// No delay is longer, hints included.
    pub cap: Duration,
    /// No delay is shorter, hints included. Must not be above `cap`.
    pub floor: Duration,
    /// Give up after this many delays (per [`Backoff::reset`]); `None` never gives up on
    /// this ground. `Some(0)` gives up at once.
    pub max_attempts: Option<u32>,
    /// Give up rather than hand out a delay that would end later than this long after the
    /// first [`Backoff::next_delay`] call (per reset); `None` never gives up on this ground.
    pub max_elapsed: Option<Duration>,
}

impl Default for BackoffConfig {
    /// A general-purpose reconnect policy: exponential from 1 s doubling, full jitter,
    /// between 100 ms and 30 s, never gives up.
    fn default() -> Self {
        Self {
            strategy: Strategy::Exponential {
                base: Duration::from_secs(1),
                factor: 2.0,
            },
            jitter: Jitter::Full,
            cap: Duration::from_secs(30),
            floor: Duration::from_millis(100),
            max_attempts: None,
            max_elapsed: None,
        }
    }
}

impl BackoffConfig {
    /// The strategy as it is: no jitter, no floor, no cap, never gives up.
    #[must_use]
    pub const fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            jitter: Jitter::None,
            cap: Duration::MAX,
            floor: Duration::ZERO,
            max_attempts: None,
            max_elapsed: None,
        }
    }

    /// `base * factor^attempt`, at most `cap`; no jitter, no floor, never gives up.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use stompkit_policy::{Backoff, BackoffConfig};
    ///
    /// let config = BackoffConfig::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(1));
    /// let mut backoff = Backoff::new(config, 0);
    /// let now = Instant::now();
    /// let delays: Vec<_> = (0..6).map(|_| backoff.next_delay(now).unwrap().as_millis()).collect();
    /// assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    /// ```
    #[must_use]
    pub const fn exponential(base: Duration, factor: f64, cap: Duration) -> Self {
        Self::new(Strategy::Exponential { base, factor }).cap(cap)
    }

    /// The given delays in turn, the last one repeating; no jitter, floor or cap, never
    /// gives up.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use stompkit_policy::{Backoff, BackoffConfig};
    ///
    /// let seeds = [1, 2, 5, 10, 20, 30, 60].map(Duration::from_secs).to_vec();
    /// let mut backoff = Backoff::new(BackoffConfig::schedule(seeds), 0);
    /// let now = Instant::now();
    /// let delays: Vec<_> = (0..9).map(|_| backoff.next_delay(now).unwrap().as_secs()).collect();
    /// assert_eq!(delays, [1, 2, 5, 10, 20, 30, 60, 60, 60]);
    /// ```
    #[must_use]
    pub const fn schedule(delays: Vec<Duration>) -> Self {
        Self::new(Strategy::Schedule(delays))
    }

    /// The same delay every time; no jitter, floor or cap, never gives up.
    #[must_use]
    pub const fn constant(delay: Duration) -> Self {
        Self::new(Strategy::Constant(delay))
    }

    /// Decorrelated jitter from `base`, at most `cap`; never gives up.
    #[must_use]
    pub const fn decorrelated(base: Duration, cap: Duration) -> Self {
        Self::new(Strategy::DecorrelatedJitter { base }).cap(cap)
    }

    /// Replaces the strategy.
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the jitter mode.
    #[must_use]
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the largest delay.
    #[must_use]
    pub const fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// Sets the smallest delay.
    #[must_use]
    pub const fn floor(mut self, floor: Duration) -> Self {
        self.floor = floor;
        self
    }

    /// Sets the maximum number of delays before giving up (`None`: no limit).
    #[must_use]
    pub const fn max_attempts(mut self, max_attempts: Option<u32>) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets the total time budget before giving up (`None`: no limit).
    #[must_use]
    pub const fn max_elapsed(mut self, max_elapsed: Option<Duration>) -> Self {
        self.max_elapsed = max_elapsed;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFactor`], [`Error::ZeroBase`], [`Error::EmptySchedule`],
    /// [`Error::InvalidJitterRatio`] or [`Error::FloorAboveCap`].
    pub fn validate(&self) -> Result<(), Error> {
        match &self.strategy {
            Strategy::Exponential { base, factor } => {
                if !(factor.is_finite() && *factor >= 1.0) {
                    return Err(Error::InvalidFactor(*factor));
                }
                if base.is_zero() {
                    return Err(Error::ZeroBase);
                }
            }
            Strategy::DecorrelatedJitter { base } => {
                if base.is_zero() {
                    return Err(Error::ZeroBase);
                }
            }
            Strategy::Schedule(delays) => {
                if delays.is_empty() {
                    return Err(Error::EmptySchedule);
                }
            }
            Strategy::Constant(_) => {}
        }
        if let Jitter::Proportional(ratio) = self.jitter {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(Error::InvalidJitterRatio(ratio));
            }
        }
        if self.floor > self.cap {
            return Err(Error::FloorAboveCap {
                floor: self.floor,
                cap: self.cap,
            });
        }
        Ok(())
    }
}

/// Nanoseconds of `d`, saturating at `u64::MAX` (about 584 years).
#[inline]
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The per-strategy state that advances with each attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Progress {
    /// The current nominal delay in nanoseconds; multiplied by the factor after each use.
    /// Floating point so that huge attempt counts saturate to infinity instead of wrapping;
    /// multiplication by a factor >= 1 never decreases it.
    Exponential(f64),
    /// Nothing beyond the attempt counter.
    Stateless,
    /// The previous decorrelated delay in nanoseconds.
    Decorrelated(u64),
}

impl Progress {
    fn start(strategy: &Strategy) -> Self {
        match strategy {
            Strategy::Exponential { base, .. } => Self::Exponential(nanos(*base) as f64),
            Strategy::DecorrelatedJitter { base } => Self::Decorrelated(nanos(*base)),
            Strategy::Schedule(_) | Strategy::Constant(_) => Self::Stateless,
        }
    }
}

/// A retry-delay state machine: hands out one delay per attempt until a stop condition is
/// reached.
///
/// Sans-IO: it never sleeps and never reads a clock. The caller passes `now` and sleeps the
/// returned delay itself; randomness comes from the [`RandomSource`] the backoff owns
/// (a [`SeededRng`] with [`Backoff::new`]). For a given configuration and seed, the same
/// sequence of calls gives the same delays, on every platform and every run.
///
/// ```
/// use std::time::{Duration, Instant};
/// use stompkit_policy::{Backoff, BackoffConfig, Jitter};
///
/// let config = BackoffConfig::schedule(
///     [1000, 2000, 4000, 8000, 12000].map(Duration::from_millis).to_vec(),
/// )
/// .jitter(Jitter::Proportional(0.2))
/// .cap(Duration::from_millis(12000))
/// .floor(Duration::from_millis(100))
/// .max_attempts(Some(8));
///
/// let start = Instant::now();
/// let mut backoff = Backoff::new(config.clone(), 7);
/// let mut delays = Vec::new();
/// while let Some(delay) = backoff.next_delay(start) {
///     delays.push(delay);
/// }
/// assert_eq!(delays.len(), 8);
/// // ±20 % around 1 s for the first attempt, never above the 12 s cap for the last ones.
/// assert!(delays[0] >= Duration::from_millis(800) && delays[0] <= Duration::from_millis(1200));
/// assert!(delays.iter().all(|d| *d <= Duration::from_millis(12000)));
///
/// // The same seed replays the same delays.
/// let mut again = Backoff::new(config, 7);
/// let replay: Vec<_> = std::iter::from_fn(|| again.next_delay(start)).collect();
/// assert_eq!(replay, delays);
///
/// // After a success, start over.
/// backoff.reset();
/// assert_eq!(backoff.attempts(), 0);
/// assert!(backoff.next_delay(start).is_some());
/// ```
#[derive(Clone)]
pub struct Backoff<R = SeededRng> {
    config: BackoffConfig,
    rng: R,
    /// `config.floor` and `config.cap` in saturated nanoseconds.
    floor_ns: u64,
    cap_ns: u64,
    progress: Progress,
    attempts: u32,
    started: Option<Instant>,
    hint: Option<Duration>,
    exhausted: bool,
}

impl<R> fmt::Debug for Backoff<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("config", &self.config)
            .field("attempts", &self.attempts)
            .field("started", &self.started)
            .field("hint", &self.hint)
            .field("exhausted", &self.exhausted)
            .finish_non_exhaustive()
    }
}

impl Backoff<SeededRng> {
    /// Creates a backoff that owns a [`SeededRng`] seeded with `seed`.
    ///
    /// # Panics
    ///
    /// If `config` is invalid (see [`BackoffConfig::validate`]); use [`Backoff::try_new`] to
    /// get the error instead.
    #[must_use]
    pub fn new(config: BackoffConfig, seed: u64) -> Self {
        Self::with_rng(config, SeededRng::new(seed))
    }

    /// Creates a backoff that owns a [`SeededRng`] seeded with `seed`.
    ///
    /// # Errors
    ///
    /// The first problem [`BackoffConfig::validate`] finds.
    pub fn try_new(config: BackoffConfig, seed: u64) -> Result<Self, Error> {
        Self::try_with_rng(config, SeededRng::new(seed))
    }
}

impl<R: RandomSource> Backoff<R> {
    /// Creates a backoff drawing from the caller's random source, for instance a
    /// `Box<dyn RandomSource + Send>`.
    ///
    /// # Panics
    ///
    /// If `config` is invalid (see [`BackoffConfig::validate`]).
    #[must_use]
    pub fn with_rng(config: BackoffConfig, rng: R) -> Self {
        match Self::try_with_rng(config, rng) {
            Ok(backoff) => backoff,
            Err(err) => panic!("invalid BackoffConfig: {err}"),
        }
    }

    /// Creates a backoff drawing from the caller's random source.
    ///
    /// # Errors
    ///
    /// The first problem [`BackoffConfig::validate`] finds.
    pub fn try_with_rng(config: BackoffConfig, rng: R) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            floor_ns: nanos(config.floor),
            cap_ns: nanos(config.cap),
            progress: Progress::start(&config.strategy),
            config,
            rng,
            attempts: 0,
            started: None,
            hint: None,
            exhausted: false,
        })
    }

    /// The delay to wait before the next attempt, or `None` once a stop condition is
    /// reached (give up; it stays `None` until [`reset`](Self::reset)).
    ///
    /// The first call since creation or reset starts the elapsed-time clock at `now`.
    /// The delay always lies within `[floor, cap]`. With `max_elapsed`, a delay that would
    /// end later than `max_elapsed` after that first call is not handed out: the backoff
    /// gives up instead. A hint set with [`set_hint`](Self::set_hint) replaces this delay.
    pub fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        if self.exhausted {
            return None;
        }
        let started = *self.started.get_or_insert(now);
        if self
            .config
            .max_attempts
            .is_some_and(|max| self.attempts >= max)
        {
            self.exhausted = true;
            return None;
        }
        let computed = self.compute();
        let delay = match self.hint.take() {
            Some(hint) => hint.max(self.config.floor).min(self.config.cap),
            None => computed,
        };
        if let Some(budget) = self.config.max_elapsed {
            let elapsed = now.saturating_duration_since(started);
            if elapsed.saturating_add(delay) > budget {
                self.exhausted = true;
                return None;
            }
        }
        self.attempts = self.attempts.saturating_add(1);
        Some(delay)
    }

    /// The jittered, clamped delay of the current attempt; advances the strategy state.
    #[inline]
    fn compute(&mut self) -> Duration {
        let cap_ns = self.cap_ns;
        let nominal = match (&self.config.strategy, &mut self.progress) {
            (Strategy::Exponential { factor, .. }, Progress::Exponential(current)) => {
                // `as` saturates: infinity becomes u64::MAX.
                let value = *current as u64;
                *current *= *factor;
                value
            }
            (Strategy::Schedule(delays), _) => {
                let index = (self.attempts as usize).min(delays.len() - 1);
                nanos(delays[index])
            }
            (Strategy::Constant(delay), _) => nanos(*delay),
            (Strategy::DecorrelatedJitter { base }, Progress::Decorrelated(previous)) => {
                let base = nanos(*base);
                let high = previous.saturating_mul(3).max(base);
                let value = uniform_inclusive(&mut self.rng, base, high).min(cap_ns);
                *previous = value;
                value
            }
            // `Progress::start` pairs each strategy with its state; the config cannot change.
            (Strategy::Exponential { .. } | Strategy::DecorrelatedJitter { .. }, _) => cap_ns,
        }
        .min(cap_ns);

        let (low, high) = match self.config.jitter {
            Jitter::None => (nominal, nominal),
            Jitter::Full => (0, nominal),
            Jitter::Equal => (nominal - nominal / 2, nominal),
            Jitter::Proportional(ratio) => {
                let spread = (nominal as f64 * ratio) as u64;
                (
                    nominal.saturating_sub(spread),
                    nominal.saturating_add(spread),
                )
            }
        };
        let clamp = |v: u64| v.max(self.floor_ns).min(cap_ns);
        let value = uniform_inclusive(&mut self.rng, clamp(low), clamp(high));
        // Exact bounds in the Duration domain (they may exceed u64 nanoseconds).
        Duration::from_nanos(value)
            .max(self.config.floor)
            .min(self.config.cap)
    }

    /// Starts over after a success: attempts, elapsed clock, strategy state and any pending
    /// hint are cleared. The random source is not rewound, so the jitter after a reset
    /// differs from the first round (still deterministic for a given seed and call
    /// sequence).
    pub fn reset(&mut self) {
        self.progress = Progress::start(&self.config.strategy);
        self.attempts = 0;
        self.started = None;
        self.hint = None;
        self.exhausted = false;
    }

    /// Delays handed out since creation or the last reset.
    #[must_use]
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Makes the next delay `delay` (clamped to `[floor, cap]`) instead of the computed
    /// one, like an HTTP `Retry-After`. The strategy still advances, and the stop
    /// conditions still apply. A later hint replaces an unused earlier one.
    pub const fn set_hint(&mut self, delay: Duration) {
        self.hint = Some(delay);
    }

    /// Whether a stop condition has been reached (the last `next_delay` returned `None`).
    #[must_use]
    pub const fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// The random source.
    #[must_use]
    pub const fn rng(&self) -> &R {
        &self.rng
    }
}
