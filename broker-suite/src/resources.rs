//! What a process holds now: resident memory, open file descriptors and live tokio tasks,
//! read from `/proc/self` and the runtime, for the leak checks of the chaos and soak runs.

use std::time::Duration;

use serde::Serialize;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Resident set size, in KiB (`VmRSS` of `/proc/self/status`; 0 if unreadable).
    pub rss_kib: u64,
    /// Entries of `/proc/self/fd` (0 if unreadable).
    pub fds: u64,
    /// Tasks alive on the current tokio runtime.
    pub tasks: u64,
}

impl Sample {
    /// Reads now. Must run inside a tokio runtime.
    pub fn now() -> Self {
        Self {
            rss_kib: rss_kib(),
            fds: open_fds(),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks() as u64,
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64)
}

/// Waits (at most `bound`, polling) until the task and fd counts are back at `baseline`'s,
/// since a closed client's tasks and sockets go away a moment after it returns; the last
/// reading either way.
pub async fn settle(baseline: Sample, bound: Duration) -> Sample {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let now = Sample::now();
        if (now.tasks <= baseline.tasks && now.fds <= baseline.fds)
            || tokio::time::Instant::now() >= deadline
        {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The least-squares slope of `ys` against `xs` (units of y per unit of x); 0 with fewer
/// than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in points {
        num += (x - mean_x) * (y - mean_y);
        den += (x - mean_x) * (x - mean_x);
    }
    if den == 0.0 { 0.0 } else { num / den }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_nothing() {
        let line: Vec<(f64, f64)> = (0..10)
            .map(|x| (f64::from(x), 3.0 * f64::from(x) + 1.0))
            .collect();
        assert!((slope(&line) - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 7.0)]), 0.0);
    }

    #[tokio::test]
    async fn a_sample_sees_this_process() {
        let sample = Sample::now();
        assert!(sample.rss_kib > 0, "{sample:?}");
        assert!(
            sample.fds >= 3,
            "stdin, stdout, stderr at least: {sample:?}"
        );
    }
}
