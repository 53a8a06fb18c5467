//! The physical limit: the same writes, through user-service's own SQL
//! (`UserStore`: the user row and its outbox row in one transaction),
//! straight against the same PostgreSQL with the same concurrency, and no
//! HTTP, JSON or service in between. `write_efficiency` = service rate / this.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use rand::Rng;
use sqlx::postgres::PgPoolOptions;
use user_service::{domain::UserDraft, store::UserStore};

/// Writes per second the database sustains for this mix.
///
/// # Errors
/// When the database is unreachable or a write fails.
pub async fn raw_write_rate(
    database_url: &str,
    concurrency: usize,
    create_weight: usize,
    update_weight: usize,
    length: Duration,
) -> Result<f64> {
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency).unwrap_or(u32::MAX))
        .connect(database_url)
        .await
        .context("connecting to LOADTEST_DATABASE_URL for the baseline")?;
    let store = UserStore::new(pool);
    let run = format!("{:x}", rand::random::<u32>());
    // Users to update: one per worker, so updates do not queue on one row lock
    // any more than the HTTP run's random picks do.
    let mut targets = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let draft = UserDraft::parse(
            "baseline",
            &format!("baseline-{run}-seed{w}@loadtest.example"),
        )?;
        targets.push(store.create(&draft).await?.0.id);
    }
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for (w, target) in targets.into_iter().enumerate() {
        let (store, done, run) = (store.clone(), Arc::clone(&done), run.clone());
        workers.spawn(async move {
            let total = (create_weight + update_weight).max(1);
            let mut n = 0_u64;
            while start.elapsed() < length {
                n += 1;
                let create = rand::thread_rng().gen_range(0..total) < create_weight;
                if create {
                    let draft = UserDraft::parse(
                        "baseline",
                        &format!("baseline-{run}-{w}-{n}@loadtest.example"),
                    )?;
                    store.create(&draft).await?;
                } else {
                    let draft = UserDraft::parse(
                        &format!("baseline {n}"),
                        &format!("baseline-{run}-seed{w}@loadtest.example"),
                    )?;
                    store.update(target, &draft).await?;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = workers.join_next().await {
        result
            .context("baseline worker panicked")?
            .context("baseline write failed")?;
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}
