//! User rows and their outbox rows, always written in one transaction.

use chrono::{DateTime, Utc};
use events::{EventType, UserEvent};
use sqlx::{PgPool, Postgres, Transaction};

use crate::domain::{User, UserDraft};

const COLUMNS: &str = "id, name, email, updated_at, version";

/// What a read or write of users can fail with. The store knows nothing of
/// HTTP: `crate::error` decides what each becomes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("user {0} not found")]
    NotFound(i32),
    #[error("email {0:?} is already taken")]
    EmailTaken(String),
    /// The database could not be reached in time: worth retrying later.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("the database failed")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// Maps an error of a write, naming `email` when it is the unique key
    /// that was violated.
    fn from_write(err: sqlx::Error, email: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::EmailTaken(email.to_owned())
            }
            _ => Self::from(err),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(err)
            }
            other => StoreError::Database(other),
        }
    }
}

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
    pub async fn list(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY id");
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    /// At most `limit` users whose id is above `after_id`, by id.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn page(&self, after_id: i32, limit: i64) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
        Ok(sqlx::query_as(&sql)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// # Errors
    /// `NotFound` when there is no such user; otherwise when the database fails.
    pub async fn get(&self, id: i32) -> Result<User, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound(id))
    }

    /// Inserts a user and its `user_created` event.
    ///
    /// # Errors
    /// `EmailTaken` when another user has the email (in any case); otherwise
    /// when the database fails.
    pub async fn create(&self, draft: &UserDraft) -> Result<(User, UserEvent), StoreError> {
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
            .map_err(|e| StoreError::from_write(e, email))?;
        let event = record(&mut tx, EventType::UserCreated, &user, user.updated_at).await?;
        tx.commit()
            .await
            .map_err(|e| StoreError::from_write(e, email))?;
        committed(&event);
        Ok((user, event))
    }

    /// Replaces a user's name and email and records `user_updated`.
    ///
    /// # Errors
    /// `NotFound`, `EmailTaken`, or when the database fails.
    pub async fn update(
        &self,
        id: i32,
        draft: &UserDraft,
    ) -> Result<(User, UserEvent), StoreError> {
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
            .map_err(|e| StoreError::from_write(e, email))?
            .ok_or(StoreError::NotFound(id))?;
        let event = record(&mut tx, EventType::UserUpdated, &user, user.updated_at).await?;
        tx.commit()
            .await
            .map_err(|e| StoreError::from_write(e, email))?;
        committed(&event);
        Ok((user, event))
    }

    /// Deletes a user and records `user_deleted` with the next version, so
    /// that it outranks every earlier event of that user.
    ///
    /// # Errors
    /// `NotFound`, or when the database fails.
    pub async fn delete(&self, id: i32) -> Result<UserEvent, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = "DELETE FROM users WHERE id = $1 \
             RETURNING id, name, email, clock_timestamp() AS updated_at, version + 1 AS version";
        let user: User = sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound(id))?;
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
) -> Result<UserEvent, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_unavailable_and_other_failures_are_not() {
        let unavailable = [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        ];
        for err in unavailable {
            assert!(matches!(StoreError::from(err), StoreError::Unavailable(_)));
        }
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Database(_)
        ));
        // Only a unique violation names the email.
        assert!(matches!(
            StoreError::from_write(sqlx::Error::PoolTimedOut, "a@b.co"),
            StoreError::Unavailable(_)
        ));
    }
}
