//! The physical limit: the same writes, through user-service's own SQL
//! (`UserStore`: the user row and its outbox row in one transaction),
//! straight against the same PostgreSQL, with no HTTP, JSON or service in
//! between. `write_efficiency` = service rate / this.
//!
//! Like for like with the HTTP writes: as many connections as goose had
//! users, each a client sending one write after another; the same mix of
//! creates and updates (an update picks a random user this baseline created,
//! and changes name and email, as the load's do); by default once the copy
//! converged, so that notification-service syncs the baseline's own writes
//! as it synced the load's ([`When`]). Its own writes are relayed and
//! synced too (user-service's relay finds them on its sweep, as no handler
//! hands them over), and the copy is checked again after it. With
//! notification-service stopped for the whole run ([`SyncState::Stopped`],
//! `LOADTEST_SYNC=stopped`), neither the load's writes nor the baseline's are
//! applied: both are the write path alone, the relay's publishes included.
//!
//! The SQL is the service's own: the writes go through
//! `services/user-service/src/store.rs` (`UserStore::create` and
//! `UserStore::update`: one statement, the user `INSERT`/`UPDATE …
//! RETURNING` and the outbox `INSERT` in one `WITH`), the code
//! user-service's handlers call, so the
//! two cannot drift apart. If a handler ever sends more than that call,
//! send it here too.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use rand::{Rng, seq::SliceRandom};
use serde::Serialize;
use user_service::{domain::UserDraft, store::UserStore};

use crate::propagation::{histogram, lock, percentile_ms};

/// When the baseline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Right after the load, before the drain and the consistency check:
    /// the sync is still busy with the load's writes, as during the load.
    /// The convergence is then timed from the baseline's end.
    AfterLoad,
    /// Once the copy converged and the load's figures were read: only the
    /// baseline's own writes to sync, as the load had only its own. The
    /// default while the sync runs.
    AfterSettle,
}

/// Whether notification-service syncs during the run (`LOADTEST_SYNC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// It applies the events as they come: the load and the baseline
    /// share the cores with it.
    Running,
    /// It is stopped for the whole run (the user stopped it): the events
    /// wait in its durable consumer, and the load and the baseline measure
    /// the write path alone.
    Stopped,
}

/// What the baseline measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Writes per second.
    pub rps: f64,
    pub writes: u64,
    /// Time per write as the client sees it (BEGIN to COMMIT's answer).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub duration_s: f64,
}

/// Runs the mix at `concurrency` clients for `length`.
///
/// # Errors
/// When the database is unreachable or a write fails.
pub async fn run(
    database_url: &str,
    concurrency: usize,
    create_weight: usize,
    update_weight: usize,
    length: Duration,
) -> Result<Baseline> {
    // The service's pool options: its pings are part of its SQL's cost.
    let pool = user_service::startup::pool_options()
        .max_connections(u32::try_from(concurrency).unwrap_or(u32::MAX))
        .connect(database_url)
        .await
        .context("connecting to LOADTEST_DATABASE_URL for the baseline")?;
    // Open every connection before the clock starts, as the service's pool
    // had them open during the load.
    drop(open_connections(&pool, concurrency).await?);
    let store = UserStore::new(pool);
    let run = format!("{:x}", rand::random::<u32>());
    let created = Arc::new(Mutex::new(Vec::<i32>::new()));
    let start = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..concurrency {
        let (store, run, created) = (store.clone(), run.clone(), Arc::clone(&created));
        clients.spawn(async move {
            let total = (create_weight + update_weight).max(1);
            let mut latency = histogram();
            let mut n = 0_u64;
            while start.elapsed() < length {
                n += 1;
                let create = rand::thread_rng().gen_range(0..total) < create_weight;
                let target = if create {
                    None
                } else {
                    lock(&created).choose(&mut rand::thread_rng()).copied()
                };
                let sent = Instant::now();
                match target {
                    // As the load does: an update with no user yet creates one.
                    None => {
                        let draft = UserDraft::parse(
                            &format!("Baseline {n}"),
                            &format!("baseline-{run}-{client}-{n}@loadtest.example"),
                        )?;
                        let (user, _) = store.create(&draft).await?;
                        lock(&created).push(user.id);
                    }
                    Some(id) => {
                        let draft = UserDraft::parse(
                            &format!("Baseline {n}"),
                            &format!("baseline-{run}-u{id}-{client}-{n}@loadtest.example"),
                        )?;
                        store.update(id, &draft).await?;
                    }
                }
                let took = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                latency.saturating_record(took.max(1));
            }
            anyhow::Ok(latency)
        });
    }
    let mut latency = histogram();
    while let Some(result) = clients.join_next().await {
        let client = result
            .context("baseline client panicked")?
            .context("baseline write failed")?;
        latency
            .add(&client)
            .context("merging the baseline's latencies")?;
    }
    let duration = start.elapsed();
    Ok(summarise(&latency, duration))
}

/// Opens `n` connections of `pool` at once, and hands them back.
async fn open_connections(
    pool: &sqlx::PgPool,
    n: usize,
) -> Result<Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>> {
    let mut connections = Vec::with_capacity(n);
    for _ in 0..n {
        connections.push(
            pool.acquire()
                .await
                .context("opening the baseline's connections")?,
        );
    }
    Ok(connections)
}

#[allow(clippy::cast_precision_loss)]
fn summarise(latency: &Histogram<u64>, duration: Duration) -> Baseline {
    let writes = latency.len();
    Baseline {
        rps: writes as f64 / duration.as_secs_f64().max(f64::MIN_POSITIVE),
        writes,
        p50_ms: percentile_ms(latency, 0.5),
        p99_ms: percentile_ms(latency, 0.99),
        duration_s: duration.as_secs_f64(),
    }
}

/// Observer reads a second worth a word in the note: the least setting
/// (`LOADTEST_WATCH_RATE=1 LOADTEST_POLL_RATE=1`) reads about once a second.
const OBSERVER_READS_OF_NOTE: f64 = 2.0;

/// How the baseline was run, for `write_efficiency_conditions`.
#[derive(Debug, Clone, Serialize)]
pub struct Conditions {
    pub when: When,
    /// Whether notification-service synced during both runs.
    pub sync: SyncState,
    /// PostgreSQL connections, one client each: goose's users.
    pub connections: usize,
    pub create_weight: usize,
    pub update_weight: usize,
    pub writes: u64,
    pub duration_s: f64,
    /// The HTTP run's request rate limit, if any: then `write_efficiency`
    /// compares an offered rate with a capacity.
    pub http_rate_limit: Option<u64>,
    /// The observer's reads of the copy per second of the HTTP run; the
    /// baseline runs without them.
    pub http_observer_reads_per_s: f64,
    pub note: String,
}

impl Conditions {
    pub fn new(
        (when, sync): (When, SyncState),
        connections: usize,
        (create_weight, update_weight): (usize, usize),
        baseline: &Baseline,
        (http_rate_limit, http_observer_reads_per_s): (Option<u64>, f64),
    ) -> Self {
        let mut note = match (when, sync) {
            (_, SyncState::Stopped) => "raw SQL (user-service's UserStore, store.rs) right after the load, notification-service stopped during both (LOADTEST_SYNC=stopped): user-service's relay publishes both runs' events to NATS, nothing applies them",
            (When::AfterLoad, SyncState::Running) => "raw SQL (user-service's UserStore, store.rs) right after the load, before the drain and the consistency check: notification-service still syncing the load's backlog, and the baseline's own writes",
            (When::AfterSettle, SyncState::Running) => "raw SQL (user-service's UserStore, store.rs) after the copy converged: notification-service syncing only the baseline's own writes",
        }
        .to_owned();
        note.push_str(&format!(
            "; {connections} connections for {connections} goose users; mix {create_weight} create : {update_weight} update"
        ));
        if let Some(limit) = http_rate_limit {
            note.push_str(&format!(
                "; the HTTP writes were rate-limited ({limit} requests/s), so write_efficiency is not a ratio of capacities (LOADTEST_RATE=0 for that)"
            ));
        }
        if http_observer_reads_per_s >= OBSERVER_READS_OF_NOTE {
            note.push_str(&format!(
                "; the HTTP writes shared the cores with the observer's {http_observer_reads_per_s:.0} reads/s of the copy, the baseline with none (LOADTEST_WATCH_RATE=1 LOADTEST_POLL_RATE=1 for like for like)"
            ));
        }
        Self {
            when,
            sync,
            connections,
            create_weight,
            update_weight,
            writes: baseline.writes,
            duration_s: baseline.duration_s,
            http_rate_limit,
            http_observer_reads_per_s,
            note,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_and_latencies_come_from_the_clients_writes() {
        let mut h = histogram();
        for micros in [1_000, 2_000, 3_000, 4_000] {
            h.record(micros).unwrap();
        }
        let b = summarise(&h, Duration::from_secs(2));
        assert_eq!(b.writes, 4);
        assert!((b.rps - 2.0).abs() < 1e-9);
        assert!((b.p50_ms - 2.0).abs() < 0.01, "{b:?}");
        assert!((b.p99_ms - 4.0).abs() < 0.01, "{b:?}");
    }

    #[test]
    fn the_conditions_say_when_and_warn_of_a_rate_limit() {
        let b = summarise(&histogram(), Duration::from_secs(10));
        let c = Conditions::new(
            (When::AfterLoad, SyncState::Running),
            8,
            (1, 3),
            &b,
            (Some(50), 0.0),
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["when"], "after_load");
        assert_eq!(json["sync"], "running");
        assert_eq!(json["connections"], 8);
        assert!(c.note.contains("right after the load"), "{}", c.note);
        assert!(
            c.note.contains("rate-limited (50 requests/s)"),
            "{}",
            c.note
        );
        let c = Conditions::new(
            (When::AfterSettle, SyncState::Running),
            4,
            (1, 0),
            &b,
            (None, 0.0),
        );
        assert!(!c.note.contains("rate-limited"), "{}", c.note);
        assert_eq!(serde_json::to_value(&c).unwrap()["when"], "after_settle");
    }

    #[test]
    fn the_conditions_say_when_the_sync_was_stopped_for_both() {
        let b = summarise(&histogram(), Duration::from_secs(10));
        let c = Conditions::new(
            (When::AfterLoad, SyncState::Stopped),
            6,
            (1, 3),
            &b,
            (None, 0.0),
        );
        assert_eq!(serde_json::to_value(&c).unwrap()["sync"], "stopped");
        assert!(
            c.note.contains("notification-service stopped during both"),
            "{}",
            c.note
        );
        assert!(!c.note.contains("still syncing"), "{}", c.note);
    }

    #[test]
    fn the_conditions_name_the_observers_reads_when_they_loaded_the_http_run() {
        let b = summarise(&histogram(), Duration::from_secs(10));
        let conditions = |reads_per_s| {
            Conditions::new(
                (When::AfterSettle, SyncState::Running),
                6,
                (1, 3),
                &b,
                (None, reads_per_s),
            )
        };
        let loaded = conditions(221.6);
        assert!(
            loaded.note.contains("observer's 222 reads/s of the copy"),
            "{}",
            loaded.note
        );
        assert_eq!(
            serde_json::to_value(&loaded).unwrap()["http_observer_reads_per_s"],
            221.6
        );
        let quiet = conditions(1.2);
        assert!(!quiet.note.contains("observer"), "{}", quiet.note);
    }
}
