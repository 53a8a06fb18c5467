//! Propagation latency: for acknowledged writes, the time from the 2xx
//! response until notification-service returns that state (or a later one),
//! polled outside goose's statistics and recorded in an HDR histogram.
//!
//! The observer has a fixed budget, so that it never becomes the load: at
//! most [`Budget::writes_per_s`] new writes are watched per second (a token
//! bucket holding one second's worth), at most [`Budget::reads_per_s`]
//! reads are sent, and no more users are watched at once than that, so each
//! is read at least once a second. A write to a user already watched joins the watch for
//! free; one that finds no token is not measured (it is counted as
//! unwatched; the consistency check still covers it). The sample is taken by
//! time, not by how fast earlier writes arrived, so it is not biased towards
//! fast ones. At the default 50 writes/s every write is watched; at the
//! unlimited rate the figures are those of a sample spread over the run. A
//! read on FerretDB costs about as much CPU as a write, so polling every
//! write of an unlimited run would measure the observer rather than the sync.

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
    /// Writes acknowledged when the watch budget was spent.
    pub unwatched: AtomicU64,
    /// Reads of the copy the observer sent: they are load on
    /// notification-service and MongoDB too, in the cost table's figures.
    pub reads: AtomicU64,
    pub in_flight: AtomicU64,
    pending: Mutex<HashMap<i64, Vec<Pending>>>,
    sampler: Mutex<Sampler>,
    pacer: Pacer,
    reads_per_s: u32,
}

/// How much the observer may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// New writes watched per second (0: none, with the sync stopped).
    pub writes_per_s: u32,
    /// Reads of the copy per second, all watchers together.
    pub reads_per_s: u32,
}

/// Picks the writes to watch: a token bucket of one second's worth.
struct Sampler {
    per_s: f64,
    tokens: f64,
    last: Instant,
}

impl Sampler {
    fn new(writes_per_s: u32) -> Self {
        let per_s = f64::from(writes_per_s);
        Self {
            per_s,
            tokens: per_s,
            last: Instant::now(),
        }
    }

    /// Whether the write acknowledged at `now` is watched.
    fn take(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * self.per_s;
        self.tokens = (self.tokens + earned).min(self.per_s);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Spaces the reads of all watchers evenly, at most `reads_per_s`.
struct Pacer {
    every: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(reads_per_s: u32) -> Self {
        Self {
            every: Duration::from_secs(1) / reads_per_s.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// The instant a read may be sent, reserving it.
    fn reserve(&self, now: Instant) -> Instant {
        let mut next = lock(&self.next);
        let at = (*next).max(now);
        *next = at + self.every;
        at
    }
}

/// A write waiting to be seen in the copy.
struct Pending {
    written: Written,
    acked: Instant,
    at_s: f64,
}

/// The slowest a pending write is polled.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// An empty histogram of microseconds.
pub fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Tracker {
    pub fn new(
        notifications_host: String,
        poll: Duration,
        timeout: Duration,
        budget: Budget,
    ) -> Arc<Self> {
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
            unwatched: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            sampler: Mutex::new(Sampler::new(budget.writes_per_s)),
            pacer: Pacer::new(budget.reads_per_s),
            reads_per_s: budget.reads_per_s.max(1),
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records an acknowledged write that took `took` and, within the
    /// budget, watches for its arrival in the copy. One watcher polls per
    /// user, however many of its writes are pending.
    pub fn written(self: &Arc<Self>, written: Written, took: Duration) {
        let acked = Instant::now();
        let at_s = self.start.elapsed().as_secs_f64();
        record(&self.write_latency, took);
        self.writes.fetch_add(1, Ordering::Relaxed);
        lock(&self.write_times).push(at_s);
        let id = written.id;
        let first = {
            let mut pending = lock(&self.pending);
            // At most as many users as reads per second, so that each is
            // read at least once a second.
            let room = pending.len() < usize::try_from(self.reads_per_s).unwrap_or(usize::MAX);
            let watched = pending.contains_key(&id) || (room && lock(&self.sampler).take(acked));
            if !watched {
                self.unwatched.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let queue = pending.entry(id).or_default();
            queue.push(Pending {
                written,
                acked,
                at_s,
            });
            queue.len() == 1
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
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
            tokio::time::sleep_until(self.pacer.reserve(Instant::now()).into()).await;
            let copy = self.fetch(&url).await;
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
        self.reads.fetch_add(1, Ordering::Relaxed);
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

/// A progress line every two seconds while the load runs.
pub async fn progress(tracker: Arc<Tracker>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.tick().await;
    loop {
        tick.tick().await;
        let writes = tracker.writes.load(Ordering::Relaxed);
        let (p50, p99) = {
            let h = lock(&tracker.propagation);
            (percentile_ms(&h, 0.5), percentile_ms(&h, 0.99))
        };
        #[allow(clippy::cast_precision_loss)]
        let rate = writes as f64 / tracker.elapsed().as_secs_f64();
        eprintln!(
            "[{:>4.0}s] writes {writes} ({rate:.0}/s)  propagation p50 {p50:.2} ms p99 {p99:.2} ms  watching {}  timeouts {}",
            tracker.elapsed().as_secs_f64(),
            tracker.in_flight.load(Ordering::Relaxed),
            tracker.timeouts.load(Ordering::Relaxed),
        );
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
    fn reads_are_spaced_to_the_budget() {
        let pacer = Pacer::new(200);
        let now = Instant::now();
        let first = pacer.reserve(now);
        let second = pacer.reserve(now);
        let third = pacer.reserve(now);
        assert_eq!(first, now);
        assert_eq!(second - first, Duration::from_millis(5));
        assert_eq!(third - second, Duration::from_millis(5));
        // After a quiet spell, no burst of saved-up reads.
        let later = now + Duration::from_secs(10);
        assert_eq!(pacer.reserve(later), later);
        assert_eq!(pacer.reserve(later) - later, Duration::from_millis(5));
    }

    #[test]
    fn a_second_of_writes_is_watched_then_the_rate() {
        let mut sampler = Sampler::new(2);
        let now = sampler.last;
        assert!(sampler.take(now));
        assert!(sampler.take(now));
        assert!(!sampler.take(now), "the second's worth is spent");
        assert!(!sampler.take(now + Duration::from_millis(400)));
        assert!(
            sampler.take(now + Duration::from_millis(600)),
            "half a second earns one"
        );
        let later = now + Duration::from_secs(60);
        assert!(sampler.take(later) && sampler.take(later));
        assert!(
            !sampler.take(later),
            "a quiet minute saves no more than a second"
        );
    }

    /// A tracker watching at most `writes_per_s` new writes a second, with
    /// no copy to read (nothing listens on port 9).
    fn tracker_watching(writes_per_s: u32) -> Arc<Tracker> {
        Tracker::new(
            "http://127.0.0.1:9".into(),
            Duration::from_millis(5),
            Duration::from_secs(30),
            Budget {
                writes_per_s,
                reads_per_s: 10,
            },
        )
    }

    /// An acknowledged write of user `id`.
    fn write(id: i64) -> Written {
        Written {
            id,
            name: "a".into(),
            email: "a@example.com".into(),
            updated_at: at("2025-05-25T10:00:01Z"),
        }
    }

    #[tokio::test]
    async fn writes_beyond_the_budget_are_counted_not_watched() {
        let tracker = tracker_watching(2);
        for id in [1, 2, 1, 3, 4] {
            tracker.written(write(id), Duration::from_millis(1));
        }
        assert_eq!(tracker.writes.load(Ordering::Relaxed), 5);
        assert_eq!(
            tracker.in_flight.load(Ordering::Relaxed),
            3,
            "1, 2 and 1 again"
        );
        assert_eq!(tracker.unwatched.load(Ordering::Relaxed), 2, "3 and 4");
    }

    #[tokio::test]
    async fn a_budget_of_no_writes_watches_none() {
        let tracker = tracker_watching(0);
        for id in [1, 2, 1] {
            tracker.written(write(id), Duration::from_millis(1));
        }
        assert_eq!(tracker.writes.load(Ordering::Relaxed), 3);
        assert_eq!(tracker.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(tracker.unwatched.load(Ordering::Relaxed), 3);
        assert_eq!(tracker.reads.load(Ordering::Relaxed), 0);
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
