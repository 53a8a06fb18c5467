//! An open-loop pacer for `LOADTEST_RATE` and the capacity mode: request `n` is due at
//! `start + n / rate`, whatever became of the requests before it, so that the
//! offered rate is the rate asked for.
//!
//! goose's own throttle is a leaky bucket ticking with `tokio::time::sleep`:
//! each tick sleeps at least a whole millisecond more than asked and loses
//! it, and a tick that finds no user waiting is lost too. Here, at 195
//! requests/s it let through 150 (a tick of 5.1 ms that took 6 to 7), so a
//! capacity step failed for the load generator's sake. The pacer's due times
//! are absolute: a late wake-up delays one request, not every later one, and
//! a user that falls behind sends at once until it is back on schedule.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Hands out due times at a fixed rate; the first call starts the clock.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    start: OnceLock<Instant>,
    issued: AtomicU64,
}

impl Pacer {
    /// A pacer of `per_second` requests a second (above 0).
    pub fn new(per_second: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / per_second.max(f64::MIN_POSITIVE)),
            start: OnceLock::new(),
            issued: AtomicU64::new(0),
        }
    }

    /// When the next request is due.
    #[allow(clippy::cast_precision_loss)]
    pub fn next_due(&self) -> Instant {
        let start = *self.start.get_or_init(Instant::now);
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        start + self.interval.mul_f64(n as f64)
    }

    /// Waits until the next request is due (not at all when it is overdue).
    pub async fn wait(&self) {
        tokio::time::sleep_until(self.next_due().into()).await;
    }

    /// When the first request was due, if one was asked for.
    pub fn started(&self) -> Option<Instant> {
        self.start.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_a_fixed_interval_apart_from_the_first() {
        let pacer = Pacer::new(200.0);
        assert_eq!(pacer.started(), None);
        let dues: Vec<Instant> = (0..1_000).map(|_| pacer.next_due()).collect();
        let start = pacer.started().expect("the first call starts the clock");
        assert_eq!(dues[0], start);
        for (n, due) in dues.iter().enumerate() {
            let expected = start + Duration::from_millis(5) * u32::try_from(n).expect("small");
            let off = if *due > expected {
                *due - expected
            } else {
                expected - *due
            };
            assert!(off < Duration::from_micros(1), "request {n} off by {off:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiters_together_go_at_the_rate_not_faster() {
        // 8 tasks share 96 requests at 400/s: the last is due 237.5 ms
        // after the first, however the tasks interleave.
        let pacer = std::sync::Arc::new(Pacer::new(400.0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let pacer = std::sync::Arc::clone(&pacer);
                tokio::spawn(async move {
                    let mut sent = Vec::new();
                    for _ in 0..12 {
                        pacer.wait().await;
                        sent.push(Instant::now());
                    }
                    sent
                })
            })
            .collect();
        let mut sent = Vec::new();
        for task in tasks {
            sent.extend(task.await.expect("task"));
        }
        sent.sort();
        let start = pacer.started().expect("started");
        let last = *sent.last().expect("96 sends");
        assert_eq!(sent.len(), 96);
        assert!(
            last - start >= Duration::from_micros(237_500),
            "96 requests at 400/s cannot end before 237.5 ms, ended after {:?}",
            last - start
        );
    }
}
