//! Which write guard suits the server: compare-and-set on MongoDB, a single
//! writer per user on FerretDB.

use mongodb::{Database, bson::doc};

/// How a write over a copy whose version is known (just read by
/// [`super::NotificationStore::apply`], or remembered by the consumer) makes sure it
/// replaces only that version. A write without a known version is guarded by
/// `{version: {$lt: <the event's>}}` under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteGuard {
    /// The filter carries the version just read: a compare-and-set, atomic on
    /// MongoDB, so several notification-service instances may write at once.
    CompareAndSet,
    /// The filter is the `_id` alone, which FerretDB pushes down to SQLite
    /// (for any other filter it decodes the whole collection in Go; and its
    /// updates are not atomic anyway). Correct because the consumer applies one user's
    /// events one at a time; so one instance only.
    SingleWriter,
}

impl WriteGuard {
    /// `SingleWriter` on FerretDB (its `buildInfo` has a `ferretdbVersion`),
    /// `CompareAndSet` on MongoDB.
    ///
    /// # Errors
    /// When the server does not answer `buildInfo`.
    pub async fn detect(db: &Database) -> mongodb::error::Result<Self> {
        let info = db.run_command(doc! {"buildInfo": 1}).await?;
        Ok(if info.contains_key("ferretdbVersion") {
            WriteGuard::SingleWriter
        } else {
            WriteGuard::CompareAndSet
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WriteGuard::CompareAndSet => "compare-and-set",
            WriteGuard::SingleWriter => "single-writer",
        }
    }
}
