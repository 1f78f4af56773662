//! Bounded sliding windows of call outcomes for the failure-ratio trip.

use std::time::{Duration, Instant};

/// Number of buckets a time window is divided into. The window slides one bucket at a time,
/// so a call counts for between `(BUCKETS - 1) / BUCKETS` and all of the window length.
pub(crate) const TIME_BUCKETS: usize = 20;

/// Calls and failures currently in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
}

/// The last `capacity` outcomes, one bit each.
#[derive(Debug, Clone)]
pub(crate) struct CountWindow {
    /// Bit `i` set: the outcome in slot `i` was a failure.
    bits: Vec<u64>,
    capacity: usize,
    /// Slot of the next outcome.
    next: usize,
    counts: Counts,
}

impl CountWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            bits: vec![0; capacity.div_ceil(64)],
            capacity,
            next: 0,
            counts: Counts::default(),
        }
    }

    pub(crate) fn record(&mut self, failure: bool) {
        let (word, mask) = (self.next / 64, 1u64 << (self.next % 64));
        if self.counts.calls as usize == self.capacity {
            // Full: the slot holds the oldest outcome, which leaves the window.
            if self.bits[word] & mask != 0 {
                self.counts.failures -= 1;
            }
        } else {
            self.counts.calls += 1;
        }
        if failure {
            self.bits[word] |= mask;
            self.counts.failures += 1;
        } else {
            self.bits[word] &= !mask;
        }
        self.next += 1;
        if self.next == self.capacity {
            self.next = 0;
        }
    }

    pub(crate) const fn counts(&self) -> Counts {
        self.counts
    }

    pub(crate) fn clear(&mut self) {
        self.bits.fill(0);
        self.next = 0;
        self.counts = Counts::default();
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Absolute bucket number (time since the origin divided by the bucket width).
    index: u64,
    counts: Counts,
}

/// Outcomes of roughly the last `length`, in [`TIME_BUCKETS`] buckets: constant memory,
/// whatever the call rate.
///
/// A call at time `t` falls in bucket `(t - origin) / width`, where the origin is the time
/// of the first call after creation or a clear. Time never runs backwards here: a call
/// stamped before the latest one counts in the latest bucket. The window at bucket `n`
/// holds buckets `n - TIME_BUCKETS + 1 ..= n`.
#[derive(Debug, Clone)]
pub(crate) struct TimeWindow {
    /// Bucket width in nanoseconds (u64 so that finding a bucket is one 64-bit division).
    width_ns: u64,
    origin: Option<Instant>,
    latest: u64,
    buckets: [Bucket; TIME_BUCKETS],
    counts: Counts,
}

impl TimeWindow {
    pub(crate) fn new(length: Duration) -> Self {
        Self {
            width_ns: u64::try_from(length.as_nanos() / TIME_BUCKETS as u128)
                .unwrap_or(u64::MAX)
                .max(1),
            origin: None,
            latest: 0,
            buckets: [Bucket::default(); TIME_BUCKETS],
            counts: Counts::default(),
        }
    }

    /// The bucket number of `now`, never below the latest one seen.
    fn index_of(&self, now: Instant) -> u64 {
        match self.origin {
            None => 0,
            Some(origin) => {
                let elapsed = now.saturating_duration_since(origin);
                let elapsed_ns = elapsed
                    .as_secs()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(u64::from(elapsed.subsec_nanos()));
                (elapsed_ns / self.width_ns).max(self.latest)
            }
        }
    }

    /// Moves the window forward to `now`, dropping buckets that left it.
    fn advance(&mut self, now: Instant) {
        if self.origin.is_none() {
            self.origin = Some(now);
        }
        let index = self.index_of(now);
        if index == self.latest {
            return;
        }
        if index - self.latest >= TIME_BUCKETS as u64 {
            self.buckets = [Bucket::default(); TIME_BUCKETS];
            self.counts = Counts::default();
        } else {
            for n in self.latest + 1..=index {
                let bucket = &mut self.buckets[(n % TIME_BUCKETS as u64) as usize];
                self.counts.calls -= bucket.counts.calls;
                self.counts.failures -= bucket.counts.failures;
                *bucket = Bucket::default();
            }
        }
        self.latest = index;
    }

    pub(crate) fn record(&mut self, failure: bool, now: Instant) {
        self.advance(now);
        let latest = self.latest;
        let bucket = &mut self.buckets[(latest % TIME_BUCKETS as u64) as usize];
        if bucket.index != latest {
            // A slot cleared by `advance`, or never used: it now stands for `latest`.
            bucket.index = latest;
            bucket.counts = Counts::default();
        }
        bucket.counts.calls += 1;
        self.counts.calls += 1;
        if failure {
            bucket.counts.failures += 1;
            self.counts.failures += 1;
        }
    }

    /// The counts the window would hold at `now`, without moving it.
    pub(crate) fn counts_at(&self, now: Instant) -> Counts {
        let index = self.index_of(now);
        if index == self.latest {
            return self.counts;
        }
        let oldest = (index + 1).saturating_sub(TIME_BUCKETS as u64);
        let mut counts = Counts::default();
        for bucket in &self.buckets {
            if bucket.counts.calls > 0 && bucket.index >= oldest && bucket.index <= index {
                counts.calls += bucket.counts.calls;
                counts.failures += bucket.counts.failures;
            }
        }
        counts
    }

    pub(crate) fn clear(&mut self) {
        self.origin = None;
        self.latest = 0;
        self.buckets = [Bucket::default(); TIME_BUCKETS];
        self.counts = Counts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_forgets_the_oldest_outcome() {
        let mut window = CountWindow::new(3);
        for failure in [true, true, false] {
            window.record(failure);
        }
        assert_eq!(
            window.counts(),
            Counts {
                calls: 3,
                failures: 2
            }
        );
        window.record(false); // pushes out the first failure
        assert_eq!(
            window.counts(),
            Counts {
                calls: 3,
                failures: 1
            }
        );
        window.record(false);
        window.record(false);
        assert_eq!(
            window.counts(),
            Counts {
                calls: 3,
                failures: 0
            }
        );
        window.clear();
        assert_eq!(window.counts(), Counts::default());
    }

    #[test]
    fn count_window_spans_several_words() {
        let mut window = CountWindow::new(130);
        for i in 0..300 {
            window.record(i % 3 == 0);
        }
        // The last 130 of 0..300 are 170..300; multiples of 3 among them: 171..=297.
        assert_eq!(
            window.counts(),
            Counts {
                calls: 130,
                failures: 43
            }
        );
    }

    #[test]
    fn time_window_drops_buckets_that_slide_out() {
        let t0 = Instant::now();
        let mut window = TimeWindow::new(Duration::from_secs(20)); // 1 s buckets
        window.record(true, t0);
        window.record(false, t0 + Duration::from_millis(500));
        window.record(true, t0 + Duration::from_secs(5));
        assert_eq!(
            window.counts_at(t0 + Duration::from_secs(19)),
            Counts {
                calls: 3,
                failures: 2
            }
        );
        // At 20 s, bucket 0 (t0 and t0+0.5 s) has left the window.
        assert_eq!(
            window.counts_at(t0 + Duration::from_secs(20)),
            Counts {
                calls: 1,
                failures: 1
            }
        );
        window.record(false, t0 + Duration::from_secs(20));
        assert_eq!(
            window.counts_at(t0 + Duration::from_secs(20)),
            Counts {
                calls: 2,
                failures: 1
            }
        );
        // Far later everything is gone.
        assert_eq!(
            window.counts_at(t0 + Duration::from_secs(100)),
            Counts::default()
        );
        window.record(true, t0 + Duration::from_secs(100));
        assert_eq!(
            window.counts_at(t0 + Duration::from_secs(100)),
            Counts {
                calls: 1,
                failures: 1
            }
        );
    }

    #[test]
    fn time_window_treats_earlier_stamps_as_the_latest_bucket() {
        let t0 = Instant::now();
        let mut window = TimeWindow::new(Duration::from_secs(20));
        window.record(true, t0 + Duration::from_secs(10));
        window.record(true, t0);
        assert_eq!(
            window.counts_at(t0 + Duration::from_secs(10)),
            Counts {
                calls: 2,
                failures: 2
            }
        );
    }
}
