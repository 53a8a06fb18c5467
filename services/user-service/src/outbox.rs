//! Reading the outbox: the relay's side of the table.
//!
//! Several user-service instances may relay at once. An event handed to the
//! relay by the request that committed it is published first and its row
//! stamped afterwards ([`stamp`], skipping rows another relay holds). Rows
//! no hand-off stamped are claimed: a batch of unpublished rows inside a
//! transaction (`FOR UPDATE SKIP LOCKED`), stamped published in the same
//! statement, published, and committed only once JetStream acknowledged them
//! (rows it did not acknowledge are unstamped first): rows another relay
//! holds are skipped, so each claimed row is published by one relay, and a
//! relay that dies releases its rows, stamps undone, with its connection.
//! Other transactions never see a row stamped before its ack.

use std::time::Duration;

use chrono::{DateTime, Utc};
use events::UserEvent;
use sqlx::{PgConnection, PgPool, types::Json};
use uuid::Uuid;

/// An event waiting to be published.
#[derive(Debug, sqlx::FromRow)]
pub struct Pending {
    pub id: i64,
    pub event: Json<UserEvent>,
    pub created_at: DateTime<Utc>,
}

/// How far behind the relay is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    pub unpublished: i64,
    pub oldest_age: Duration,
}

/// Claims the oldest unpublished events no other relay holds, written at
/// least `min_age` ago (any age when it is zero, whatever the clock did),
/// at most `limit`, and stamps them published, in one statement; returns
/// them in outbox order (`id`, the order of their inserts). They stay
/// locked until the caller's transaction ends, and the stamps are seen by
/// others only if it commits: call [`unstamp`] first for the rows that were
/// not published.
///
/// # Errors
/// When the database fails.
pub async fn claim(
    tx: &mut PgConnection,
    limit: i64,
    min_age: Duration,
) -> sqlx::Result<Vec<Pending>> {
    let mut rows: Vec<Pending> = sqlx::query_as(
        "UPDATE outbox SET published_at = clock_timestamp() WHERE id IN ( \
           SELECT id FROM outbox WHERE published_at IS NULL \
           AND ($2 = 0 OR created_at <= (SELECT clock_timestamp() - make_interval(secs => $2))) \
           ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, event, created_at",
    )
    .bind(limit)
    .bind(min_age.as_secs_f64())
    .fetch_all(tx)
    .await?;
    rows.sort_unstable_by_key(|row| row.id);
    Ok(rows)
}

/// Takes the stamp back from claimed rows JetStream did not acknowledge, so
/// that committing the claim leaves them for the next drain.
///
/// # Errors
/// When the database fails; the transaction must then be rolled back, which
/// leaves every row of the claim unpublished (the acknowledged ones go out
/// again, and are dropped as duplicates).
pub async fn unstamp(tx: &mut PgConnection, ids: &[i64]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE outbox SET published_at = NULL WHERE id = ANY($1)")
        .bind(ids)
        .execute(tx)
        .await?;
    Ok(())
}

/// Stamps published, in one statement of its own, the rows of the events
/// `event_ids` (JetStream acknowledged them) that are still unpublished and
/// that no other relay holds: one another relay claimed meanwhile is left to
/// it (it publishes the event again, a duplicate that JetStream drops within
/// its window and the consumer's version guard after it, and stamps the
/// row). Returns how many rows were stamped.
///
/// # Errors
/// When the database fails; the rows stay unpublished and go out again.
pub async fn stamp(pool: &PgPool, event_ids: &[Uuid]) -> sqlx::Result<u64> {
    if event_ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE outbox SET published_at = clock_timestamp() WHERE id IN ( \
           SELECT id FROM outbox WHERE event_id = ANY($1) AND published_at IS NULL \
           FOR UPDATE SKIP LOCKED)",
    )
    .bind(event_ids)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Counts unpublished rows and the age of the oldest.
///
/// # Errors
/// When the database fails.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<Backlog> {
    let (unpublished, oldest_age_secs): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM clock_timestamp() - min(created_at))::float8 \
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(Backlog {
        unpublished,
        oldest_age: Duration::from_secs_f64(oldest_age_secs.unwrap_or(0.0).max(0.0)),
    })
}

/// Deletes rows published longer than `retention` ago; returns how many.
///
/// # Errors
/// When the database fails.
pub async fn prune(pool: &PgPool, retention: Duration) -> sqlx::Result<u64> {
    let secs = retention.as_secs_f64();
    let done = sqlx::query(
        "DELETE FROM outbox WHERE published_at IS NOT NULL \
         AND published_at < clock_timestamp() - make_interval(secs => $1)",
    )
    .bind(secs)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
