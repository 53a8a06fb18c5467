//! Propagation latency: for each acknowledged write, the time from its 2xx
//! response until notification-service returns that state (or a later one),
//! polled outside goose's statistics and recorded in an HDR histogram.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::sync::Semaphore;

/// What a write returned: the state the copy must reach.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Written {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Copy {
    name: String,
    email: String,
    updated_at: DateTime<Utc>,
}

impl Copy {
    /// The copy has the written state, or a later one (another write to the
    /// same user overtook it: then this one has arrived too, and been
    /// superseded). Uses only the contract's fields.
    fn has_reached(&self, written: &Written) -> bool {
        self.updated_at > written.updated_at
            || (self.updated_at == written.updated_at
                && self.name == written.name
                && self.email == written.email)
    }
}

/// One sample for the plot: when the write was acknowledged (seconds since
/// the start) and how long it took to arrive (milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at_s: f64,
    pub latency_ms: f64,
}

/// Everything measured while the load runs, shared by goose's users.
pub struct Tracker {
    start: Instant,
    http: reqwest::Client,
    notifications_host: String,
    poll: Duration,
    timeout: Duration,
    pub propagation: Mutex<Histogram<u64>>,
    pub write_latency: Mutex<Histogram<u64>>,
    pub samples: Mutex<Vec<Sample>>,
    /// Seconds since the start at which each write was acknowledged.
    pub write_times: Mutex<Vec<f64>>,
    pub writes: AtomicU64,
    pub timeouts: AtomicU64,
    pub in_flight: AtomicU64,
    pending: Mutex<HashMap<i64, Vec<Pending>>>,
    polls: Semaphore,
}

/// A write waiting to be seen in the copy.
struct Pending {
    written: Written,
    acked: Instant,
    at_s: f64,
}

/// How many arrival polls may be in flight at once.
pub const MAX_CONCURRENT_POLLS: usize = 64;
/// The slowest a pending write is polled.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(100);

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Tracker {
    pub fn new(notifications_host: String, poll: Duration, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("an HTTP client"),
            notifications_host,
            poll,
            timeout,
            propagation: Mutex::new(histogram()),
            write_latency: Mutex::new(histogram()),
            samples: Mutex::new(Vec::new()),
            write_times: Mutex::new(Vec::new()),
            writes: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            polls: Semaphore::new(MAX_CONCURRENT_POLLS),
        })
    }

    pub fn notifications_host(&self) -> &str {
        &self.notifications_host
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records an acknowledged write that took `took` and watches for its
    /// arrival in the copy. One watcher polls per user, however many of its
    /// writes are pending, and at most [`MAX_CONCURRENT_POLLS`] polls run at
    /// once: the measurement must not become the load.
    pub fn written(self: &Arc<Self>, written: Written, took: Duration) {
        let acked = Instant::now();
        let at_s = self.start.elapsed().as_secs_f64();
        record(&self.write_latency, took);
        self.writes.fetch_add(1, Ordering::Relaxed);
        lock(&self.write_times).push(at_s);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let id = written.id;
        let first = {
            let mut pending = lock(&self.pending);
            let queue = pending.entry(id).or_default();
            queue.push(Pending {
                written,
                acked,
                at_s,
            });
            queue.len() == 1
        };
        if first {
            let tracker = Arc::clone(self);
            tokio::spawn(async move { tracker.watch(id).await });
        }
    }

    /// Polls one user's copy until none of its writes is pending.
    async fn watch(&self, id: i64) {
        let url = format!("{}/notifications/user/{id}", self.notifications_host);
        let started = Instant::now();
        loop {
            let copy = {
                let _permit = self.polls.acquire().await.ok();
                self.fetch(&url).await
            };
            let now = Instant::now();
            let mut arrived = Vec::new();
            let mut timed_out = 0_u64;
            let done = {
                let mut pending = lock(&self.pending);
                let Some(queue) = pending.get_mut(&id) else {
                    return;
                };
                queue.retain(|p| {
                    if copy.as_ref().is_some_and(|c| c.has_reached(&p.written)) {
                        arrived.push((p.at_s, now - p.acked));
                        false
                    } else if now - p.acked >= self.timeout {
                        timed_out += 1;
                        false
                    } else {
                        true
                    }
                });
                let done = queue.is_empty();
                if done {
                    pending.remove(&id);
                }
                done
            };
            for (at_s, latency) in &arrived {
                record(&self.propagation, *latency);
                lock(&self.samples).push(Sample {
                    at_s: *at_s,
                    latency_ms: latency.as_secs_f64() * 1e3,
                });
            }
            self.timeouts.fetch_add(timed_out, Ordering::Relaxed);
            let finished = u64::try_from(arrived.len()).unwrap_or(0) + timed_out;
            self.in_flight.fetch_sub(finished, Ordering::Relaxed);
            if done {
                return;
            }
            // Poll fast at first; a write that takes long is measured to
            // within a tenth of its latency, and costs fewer requests.
            let interval = self.poll.max(started.elapsed() / 10).min(MAX_POLL_INTERVAL);
            tokio::time::sleep(interval).await;
        }
    }

    async fn fetch(&self, url: &str) -> Option<Copy> {
        let response = self.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json::<Copy>().await.ok()
    }

    /// Waits until every watcher has finished (arrived or timed out).
    pub async fn drain(&self) {
        while self.in_flight.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A watcher panicking mid-record leaves the data usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn record(histogram: &Mutex<Histogram<u64>>, took: Duration) {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
    lock(histogram).saturating_record(micros);
}

/// A percentile of a microsecond histogram, in milliseconds.
#[allow(clippy::cast_precision_loss)]
pub fn percentile_ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.value_at_quantile(q) as f64 / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_copy_reaches_a_write_when_equal_or_newer() {
        let written = Written {
            id: 1,
            name: "b".into(),
            email: "b@example.com".into(),
            updated_at: at("2025-05-25T10:00:01Z"),
        };
        let copy = |name: &str, t: &str| Copy {
            name: name.into(),
            email: "b@example.com".into(),
            updated_at: at(t),
        };
        assert!(copy("b", "2025-05-25T10:00:01Z").has_reached(&written));
        assert!(
            copy("c", "2025-05-25T10:00:02Z").has_reached(&written),
            "superseded"
        );
        assert!(
            !copy("a", "2025-05-25T10:00:00Z").has_reached(&written),
            "older"
        );
        assert!(
            !copy("x", "2025-05-25T10:00:01Z").has_reached(&written),
            "same time, other state"
        );
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = histogram();
        for micros in 1..=1000 {
            h.record(micros * 10).unwrap();
        }
        let p50 = percentile_ms(&h, 0.5);
        assert!((4.9..=5.1).contains(&p50), "{p50}");
        assert!(percentile_ms(&histogram(), 0.99).abs() < f64::EPSILON);
    }
}
