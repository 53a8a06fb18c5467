//! User rows and their outbox rows, always written in one transaction.

use chrono::{DateTime, Utc};
use events::{EventType, UserEvent};
use sqlx::{PgPool, Postgres, Transaction};

use crate::{
    domain::{User, UserDraft},
    error::ApiError,
};

const COLUMNS: &str = "id, name, email, updated_at, version";

/// Reads and writes users. Every write also records its event in the outbox.
#[derive(Clone)]
pub struct UserStore {
    pool: PgPool,
}

impl UserStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// All users, by id.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn list(&self) -> Result<Vec<User>, ApiError> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY id");
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    /// At most `limit` users whose id is above `after_id`, by id.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn page(&self, after_id: i32, limit: i64) -> Result<Vec<User>, ApiError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
        Ok(sqlx::query_as(&sql)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// # Errors
    /// `NotFound` when there is no such user; otherwise when the database fails.
    pub async fn get(&self, id: i32) -> Result<User, ApiError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(ApiError::NotFound(id))
    }

    /// Inserts a user and its `user_created` event.
    ///
    /// # Errors
    /// `EmailTaken` when another user has the email (in any case); otherwise
    /// when the database fails.
    pub async fn create(&self, draft: &UserDraft) -> Result<(User, UserEvent), ApiError> {
        let email = draft.email.as_str();
        let mut tx = self.pool.begin().await?;
        // clock_timestamp(), not now(): concurrent transactions on one user
        // must see updated_at rise with the version.
        let sql = format!(
            "INSERT INTO users (name, email, updated_at) VALUES ($1, $2, clock_timestamp()) RETURNING {COLUMNS}"
        );
        let user: User = sqlx::query_as(&sql)
            .bind(draft.name.as_str())
            .bind(email)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| ApiError::from_write(e, email))?;
        let event = record(&mut tx, EventType::UserCreated, &user, user.updated_at).await?;
        tx.commit()
            .await
            .map_err(|e| ApiError::from_write(e, email))?;
        committed(&event);
        Ok((user, event))
    }

    /// Replaces a user's name and email and records `user_updated`.
    ///
    /// # Errors
    /// `NotFound`, `EmailTaken`, or when the database fails.
    pub async fn update(&self, id: i32, draft: &UserDraft) -> Result<(User, UserEvent), ApiError> {
        let email = draft.email.as_str();
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE users SET name = $2, email = $3, updated_at = clock_timestamp(), version = version + 1 \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let user: User = sqlx::query_as(&sql)
            .bind(id)
            .bind(draft.name.as_str())
            .bind(email)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| ApiError::from_write(e, email))?
            .ok_or(ApiError::NotFound(id))?;
        let event = record(&mut tx, EventType::UserUpdated, &user, user.updated_at).await?;
        tx.commit()
            .await
            .map_err(|e| ApiError::from_write(e, email))?;
        committed(&event);
        Ok((user, event))
    }

    /// Deletes a user and records `user_deleted` with the next version, so
    /// that it outranks every earlier event of that user.
    ///
    /// # Errors
    /// `NotFound`, or when the database fails.
    pub async fn delete(&self, id: i32) -> Result<UserEvent, ApiError> {
        let mut tx = self.pool.begin().await?;
        let sql = "DELETE FROM users WHERE id = $1 \
             RETURNING id, name, email, clock_timestamp() AS updated_at, version + 1 AS version";
        let user: User = sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApiError::NotFound(id))?;
        let event = record(&mut tx, EventType::UserDeleted, &user, user.updated_at).await?;
        tx.commit().await?;
        committed(&event);
        Ok(event)
    }
}

/// Writes the event of a change into the outbox, inside the change's transaction.
async fn record(
    tx: &mut Transaction<'_, Postgres>,
    kind: EventType,
    user: &User,
    occurred_at: DateTime<Utc>,
) -> Result<UserEvent, ApiError> {
    let event = UserEvent::new(kind, user.payload(), user.version, occurred_at);
    sqlx::query(
        "INSERT INTO outbox (event_id, user_id, version, event_type, event) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event.event_id)
    .bind(user.id)
    .bind(event.version)
    .bind(kind.as_str())
    .bind(sqlx::types::Json(&event))
    .execute(&mut **tx)
    .await?;
    Ok(event)
}

/// Counts a committed change (`user_writes_total`, by event type).
fn committed(event: &UserEvent) {
    metrics::counter!("user_writes_total", "type" => event.kind.as_str()).increment(1);
}
