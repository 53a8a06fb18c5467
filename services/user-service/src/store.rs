//! User rows and their outbox rows, always written in one transaction: one
//! statement each.

use std::sync::LazyLock;

use events::{EventType, UserEvent};
use sqlx::PgPool;
use uuid::Uuid;

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
            sqlx::Error::Database(ref db) if is_shutting_down(db.code().as_deref()) => {
                StoreError::Unavailable(err)
            }
            other => StoreError::Database(other),
        }
    }
}

/// PostgreSQL's class 57P, "operator intervention": the server is shutting
/// down or starting up (`admin_shutdown`, `crash_shutdown`,
/// `cannot_connect_now`, `database_dropped`). A pooled connection meets
/// these when PostgreSQL restarted while it idled: worth retrying later.
fn is_shutting_down(code: Option<&str>) -> bool {
    code.is_some_and(|code| code.starts_with("57P"))
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
        static SQL: LazyLock<String> = LazyLock::new(|| {
            // clock_timestamp(), not now(): concurrent transactions on one
            // user must see updated_at rise with the version.
            with_event(
                "INSERT INTO users (name, email, updated_at) VALUES ($3, $4, clock_timestamp())",
                COLUMNS,
            )
        });
        let email = draft.email.as_str();
        let event_id = Uuid::now_v7();
        let user: User = sqlx::query_as(&SQL)
            .bind(event_id)
            .bind(EventType::UserCreated.as_str())
            .bind(draft.name.as_str())
            .bind(email)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::from_write(e, email))?;
        let event = committed(EventType::UserCreated, &user, event_id);
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
        static SQL: LazyLock<String> = LazyLock::new(|| {
            with_event(
                "UPDATE users SET name = $4, email = $5, updated_at = clock_timestamp(), \
                 version = version + 1 WHERE id = $3",
                COLUMNS,
            )
        });
        let email = draft.email.as_str();
        let event_id = Uuid::now_v7();
        let user: User = sqlx::query_as(&SQL)
            .bind(event_id)
            .bind(EventType::UserUpdated.as_str())
            .bind(id)
            .bind(draft.name.as_str())
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::from_write(e, email))?
            .ok_or(StoreError::NotFound(id))?;
        let event = committed(EventType::UserUpdated, &user, event_id);
        Ok((user, event))
    }

    /// Deletes a user and records `user_deleted` with the next version, so
    /// that it outranks every earlier event of that user.
    ///
    /// # Errors
    /// `NotFound`, or when the database fails.
    pub async fn delete(&self, id: i32) -> Result<UserEvent, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            with_event(
                "DELETE FROM users WHERE id = $3",
                "id, name, email, clock_timestamp() AS updated_at, version + 1 AS version",
            )
        });
        let event_id = Uuid::now_v7();
        let user: User = sqlx::query_as(&SQL)
            .bind(event_id)
            .bind(EventType::UserDeleted.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound(id))?;
        Ok(committed(EventType::UserDeleted, &user, event_id))
    }
}

/// One statement that makes a change and records its event in the outbox:
/// `change` (a data-modifying statement whose parameters start at `$3`)
/// returns `returning` as `u`, the outbox row is built from `u`, and the
/// statement returns `u`. One statement is one transaction and one round trip
/// (the four of BEGIN, the change, the outbox insert and COMMIT before). `$1`
/// is the event's id, `$2` its type; the event's JSON is the contract's
/// (`events::UserEvent`), with `occurred_at` the change's `updated_at`.
fn with_event(change: &str, returning: &str) -> String {
    format!(
        "WITH u AS ({change} RETURNING {returning}), \
         o AS (INSERT INTO outbox (event_id, user_id, version, event_type, event) \
               SELECT $1::uuid, u.id, u.version, $2::text, jsonb_build_object( \
                 'type', $2::text, \
                 'payload', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email, \
                                               'updated_at', u.updated_at), \
                 'event_id', $1::uuid, 'version', u.version, 'occurred_at', u.updated_at) \
               FROM u) \
         SELECT {COLUMNS} FROM u"
    )
}

/// The event a committed change recorded (the same as its outbox row's), and
/// counts it (`user_writes_total`, by event type).
fn committed(kind: EventType, user: &User, event_id: Uuid) -> UserEvent {
    metrics::counter!("user_writes_total", "type" => kind.as_str()).increment(1);
    UserEvent {
        kind,
        payload: user.payload(),
        event_id,
        version: user.version,
        occurred_at: user.updated_at,
    }
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

    #[test]
    fn a_server_shutting_down_or_starting_is_told_apart_from_other_sqlstates() {
        for code in ["57P01", "57P02", "57P03"] {
            assert!(is_shutting_down(Some(code)), "{code}");
        }
        // unique_violation, query_canceled (57014: class 57, not 57P), none
        for code in [Some("23505"), Some("57014"), None] {
            assert!(!is_shutting_down(code), "{code:?}");
        }
    }
}
