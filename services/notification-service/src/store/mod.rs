//! The MongoDB copy: one document per user in `user_notifications`, written
//! only by events newer than it (the version guard), and the dead letters.
//!
//! A document's `_id` is the user id as a string (`"42"`), so every write and
//! single read filters on `{_id: <string>}` alone: that is the one filter
//! FerretDB 1.x pushes down to its storage; with any other filter, or a
//! numeric `_id`, it decodes the whole collection for each query, and a write
//! costs time proportional to the number of users. A document is the
//! contract's `{user_id, name, email, updated_at}` plus `version` (of the
//! last applied event), `deleted` (a tombstone: a deleted user keeps its
//! document so that a late, older event cannot bring it back), `event_id`
//! and `synced_at`.

use chrono::{DateTime, Utc};
use events::{EventType, UserEvent};
use futures::TryStreamExt;
use mongodb::{
    Collection, Database,
    bson::{self, Bson, Document, doc},
    error::ErrorKind,
    options::WriteConcern,
};
use serde::Serialize;

use crate::config::{COLLECTION, DEAD_LETTER_COLLECTION};

mod dead_letters;
mod document;
mod lease;
mod legacy;
mod server;

pub use dead_letters::{DeadLetter, StoredDeadLetter};
use document::{Bookkeeping, DUPLICATE_KEY, as_user_id, is_duplicate_key};
pub use document::{StoredCopy, StoredInstant, from_document, key, to_document};
pub use server::Server;

/// A user's copy as the API returns it (the original demo's shape; its
/// OpenAPI schema is derived from this type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub updated_at: DateTime<Utc>,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The copy now holds the event's state.
    Applied,
    /// The copy already held this or a newer version; nothing changed.
    Stale,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Stale => "stale",
        }
    }
}

/// How [`NotificationStore::apply_as`] treats a copy as new as the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Leaves it: live delivery, where the same version means the same state.
    Live,
    /// Overwrites it if it differs: replay and resync, which also mend copies
    /// edited by hand.
    Repair,
}

/// What [`NotificationStore::apply_as`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Inserted,
    Updated,
    Unchanged,
}

/// A copy's bookkeeping, for repairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyVersion {
    pub user_id: i32,
    pub version: i64,
    pub deleted: bool,
    /// Unix milliseconds of the last write.
    pub synced_at: i64,
}

/// The copy. Every write is guarded by the copy's version in its filter
/// (a compare-and-set, atomic per document), so any number of writers, such
/// as several notification-service instances and a repair, may write at once.
#[derive(Clone)]
pub struct NotificationStore {
    db: Database,
    copies: Collection<Document>,
    dead_letters: Collection<StoredDeadLetter>,
    /// The write concern the batched update asks for (`db`'s, which
    /// collection writes use too; `majority` when it has none).
    write_concern: Document,
}

/// The widest window of user ids [`NotificationStore::page`] reads as the
/// list of their keys (FerretDB pushes down at most 10,000; its filter in Go
/// compares each copy it reads with every key, so a window of 10,000 cost
/// 3.3 to 3.7 s on this machine, and one of 1,000 at most 0.31 s through
/// `GET /notifications`).
pub const MAX_KEY_WINDOW: i64 = 10_000;

impl NotificationStore {
    pub fn new(db: Database) -> Self {
        let concern = db
            .write_concern()
            .cloned()
            .unwrap_or_else(WriteConcern::majority);
        Self {
            copies: db.collection(COLLECTION),
            dead_letters: db.collection(DEAD_LETTER_COLLECTION),
            write_concern: bson::to_document(&concern).unwrap_or_else(|_| doc! {"w": "majority"}),
            db,
        }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Answers when MongoDB does.
    ///
    /// # Errors
    /// When MongoDB does not answer.
    pub async fn ping(&self) -> mongodb::error::Result<()> {
        self.db.run_command(doc! {"ping": 1}).await.map(|_| ())
    }

    /// Applies `event` if it is newer than the copy (see [`Self::apply_as`]).
    ///
    /// # Errors
    /// When MongoDB fails; nothing is half-applied, so the event can be retried.
    pub async fn apply(&self, event: &UserEvent) -> mongodb::error::Result<Outcome> {
        self.apply_seen(event).await.map(|(outcome, _)| outcome)
    }

    /// [`Self::apply`], also returning the copy's version afterwards.
    ///
    /// # Errors
    /// When MongoDB fails; nothing is half-applied, so the event can be retried.
    pub async fn apply_seen(&self, event: &UserEvent) -> mongodb::error::Result<(Outcome, i64)> {
        Ok(match self.write(event, Mode::Live).await? {
            (Write::Inserted | Write::Updated, version) => (Outcome::Applied, version),
            (Write::Unchanged, version) => (Outcome::Stale, version),
        })
    }

    /// Inserts the copies of users that have none, in one command: the
    /// creates of a batch, which are usually their users' first events. For
    /// each event, whether it was inserted (`false`: a copy exists, and
    /// [`Self::apply`] must decide).
    ///
    /// # Errors
    /// When MongoDB fails otherwise than by a duplicate `_id`; some copies may
    /// be written, and applying the events again is harmless.
    pub async fn insert_new(&self, events: &[&UserEvent]) -> mongodb::error::Result<Vec<bool>> {
        let mut inserted = vec![true; events.len()];
        if events.is_empty() {
            return Ok(inserted);
        }
        let documents = events.iter().map(|event| to_document(event));
        match self.copies.insert_many(documents).ordered(false).await {
            Ok(_) => Ok(inserted),
            Err(e) => {
                let ErrorKind::InsertMany(failure) = e.kind.as_ref() else {
                    return Err(e);
                };
                let duplicates = failure.write_errors.as_deref().unwrap_or_default();
                if failure.write_concern_error.is_some()
                    || duplicates.is_empty()
                    || duplicates.iter().any(|w| w.code != DUPLICATE_KEY)
                {
                    return Err(e);
                }
                for duplicate in duplicates {
                    if let Some(slot) = inserted.get_mut(duplicate.index) {
                        *slot = false;
                    }
                }
                Ok(inserted)
            }
        }
    }

    /// Writes each event's state over its copy if that is older, or as a new
    /// copy if there is none, in one `update` command (on FerretDB a command
    /// costs more than a statement in it), with the store's write concern.
    /// Each statement is `{_id, version: {$lt: event's}}` with the whole copy
    /// as its replacement and `upsert`: a compare-and-set that also inserts a
    /// missing copy, and fails with a duplicate `_id` when the copy is as new
    /// or newer. (A replacement, not `$set`: the copy's fields are all the
    /// event's, and FerretDB as we build it writes such a command without
    /// reading the copies first: tools/ferretdb/writes-guarded.patch.) For
    /// each event, in order: whether the command wrote it
    /// ([`BatchWrite::Written`]), or it
    /// must be applied one by one ([`BatchWrite::Unsettled`]: its copy was
    /// not older, or its statement or the command's write concern failed;
    /// see `batch_writes`), which reads first and retries.
    ///
    /// `run_command` applies no default write concern and is never retried
    /// by the driver, which is why the concern is in the command and the
    /// reply is checked here.
    ///
    /// # Errors
    /// When MongoDB fails; some copies may be written, and applying the
    /// events again is harmless.
    pub async fn update_newer(
        &self,
        events: &[&UserEvent],
    ) -> mongodb::error::Result<Vec<BatchWrite>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let statements: Vec<Document> = events
            .iter()
            .map(|event| {
                let copy = StoredCopy::of(event).fields();
                let filter = doc! {"_id": key(event.payload.id), "version": {"$lt": event.version}};
                doc! {"q": filter, "u": copy, "upsert": true}
            })
            .collect();
        let reply = self
            .db
            .run_command(doc! {
                "update": COLLECTION,
                "updates": statements,
                "ordered": false,
                "writeConcern": self.write_concern.clone(),
            })
            .await?;
        Ok(batch_writes(&reply, events.len()))
    }

    /// Writes `event`'s state if it is newer than the copy, or, under
    /// [`Mode::Repair`], as new but different (a copy edited by hand).
    ///
    /// A create is first tried as an insert. Otherwise: reads the copy; if it
    /// is newer (or as new, and not to be repaired), nothing is written. If
    /// there is no copy, inserts one (should another writer insert first, the
    /// `_id` clash sends us round again). Otherwise updates it if its version
    /// is still the one read (a compare-and-set: losing a race to another
    /// writer sends us round again).
    ///
    /// # Errors
    /// When MongoDB fails; nothing is half-applied, so the event can be retried.
    pub async fn apply_as(&self, event: &UserEvent, mode: Mode) -> mongodb::error::Result<Write> {
        self.write(event, mode).await.map(|(write, _)| write)
    }

    /// [`Self::apply_as`], also returning the copy's version afterwards.
    async fn write(&self, event: &UserEvent, mode: Mode) -> mongodb::error::Result<(Write, i64)> {
        let id = key(event.payload.id);
        let wanted = StoredCopy::of(event);
        if event.kind == EventType::UserCreated {
            // Usually the first of its user: one insert, no read (reads are
            // the costly part on FerretDB). If a copy exists, the read below
            // settles it.
            match self.copies.insert_one(wanted.document()).await {
                Ok(_) => return Ok((Write::Inserted, event.version)),
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(e),
            }
        }
        loop {
            let Some(current) = self.copies.find_one(doc! {"_id": &id}).await? else {
                match self.copies.insert_one(wanted.document()).await {
                    Ok(_) => return Ok((Write::Inserted, event.version)),
                    Err(e) if is_duplicate_key(&e) => continue,
                    Err(e) => return Err(e),
                }
            };
            // The stored version as the filter below will compare it.
            let seen = match current.get("version") {
                Some(Bson::Int64(v)) => *v,
                Some(Bson::Int32(v)) => i64::from(*v),
                _ => 0,
            };
            let unchanged = match mode {
                Mode::Live => seen >= event.version,
                // A document that does not read as a copy (edited by hand)
                // is not the same state: a repair overwrites it.
                Mode::Repair => {
                    seen > event.version
                        || (seen == event.version
                            && StoredCopy::read(current).is_some_and(|c| c.same_state(&wanted)))
                }
            };
            if unchanged {
                return Ok((Write::Unchanged, seen));
            }
            let updated = self
                .copies
                .update_one(
                    doc! {"_id": &id, "version": seen},
                    doc! {"$set": wanted.fields()},
                )
                .await?;
            if updated.matched_count > 0 {
                return Ok((Write::Updated, event.version));
            }
        }
    }

    /// Every copy's user id, version, deletion mark and `synced_at`, for
    /// repairs.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn versions(&self) -> mongodb::error::Result<Vec<CopyVersion>> {
        let documents: Vec<Document> = self
            .copies
            .find(doc! {})
            .projection(Bookkeeping::projection())
            .await?
            .try_collect()
            .await?;
        Ok(documents
            .into_iter()
            .filter_map(Bookkeeping::read)
            .collect())
    }

    /// Marks the copy of `user_id` deleted (a tombstone, keeping its version)
    /// if it was last written before `written_before` (Unix milliseconds), so
    /// that a user created since the caller looked is left alone.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn remove(&self, user_id: i32, written_before: i64) -> mongodb::error::Result<bool> {
        let id = key(user_id);
        let Some(current) = self.copies.find_one(doc! {"_id": &id}).await? else {
            return Ok(false);
        };
        let Some(current) = Bookkeeping::read(current) else {
            return Ok(false);
        };
        if current.deleted || current.synced_at >= written_before {
            return Ok(false);
        }
        let version = current.version;
        let updated = self
            .copies
            .update_one(
                doc! {"_id": &id, "version": version},
                doc! {"$set": {"deleted": true, "synced_at": bson::DateTime::now()}},
            )
            .await?;
        Ok(updated.matched_count > 0)
    }

    /// All live copies, by user id.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn list(&self) -> mongodb::error::Result<Vec<Notification>> {
        let documents: Vec<Document> = self
            .copies
            .find(doc! {"deleted": {"$ne": true}})
            .sort(doc! {"user_id": 1})
            .await?
            .try_collect()
            .await?;
        Ok(documents.into_iter().filter_map(from_document).collect())
    }

    /// One page of live copies: at most `limit` whose user id is above
    /// `after_id` (and below `before_id`, if given), by user id.
    ///
    /// Without `before_id`, a range on `user_id`: MongoDB serves it from the
    /// collection's `user_id` index; FerretDB's SQLite backend selects it in
    /// SQL (tools/ferretdb/range-pushdown.patch), but still decodes every
    /// copy above `after_id` to sort them. With `before_id` at most
    /// [`MAX_KEY_WINDOW`] above `after_id`, the window is read as the list of
    /// its copies' keys (`_id: {$in: [...]}`, every copy being keyed by its
    /// user id: [`key`]), from the `_id` index on both: its cost does not
    /// grow with the collection. A wider window is a range.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn page(
        &self,
        after_id: i32,
        before_id: Option<i32>,
        limit: i64,
    ) -> mongodb::error::Result<Vec<Notification>> {
        let filter = match before_id {
            Some(before_id) if before_id <= after_id.saturating_add(1) => return Ok(Vec::new()),
            Some(before_id) if i64::from(before_id) - i64::from(after_id) - 1 <= MAX_KEY_WINDOW => {
                let keys: Vec<String> = (after_id + 1..before_id).map(key).collect();
                doc! {"_id": {"$in": keys}, "deleted": {"$ne": true}}
            }
            Some(before_id) => {
                doc! {"user_id": {"$gt": after_id, "$lt": before_id}, "deleted": {"$ne": true}}
            }
            None => doc! {"user_id": {"$gt": after_id}, "deleted": {"$ne": true}},
        };
        let documents: Vec<Document> = self
            .copies
            .find(filter)
            .sort(doc! {"user_id": 1})
            .limit(limit)
            .await?
            .try_collect()
            .await?;
        Ok(documents.into_iter().filter_map(from_document).collect())
    }

    /// How many live copies there are (one pass over the collection).
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn count_live(&self) -> mongodb::error::Result<u64> {
        self.copies
            .count_documents(doc! {"deleted": {"$ne": true}})
            .await
    }

    /// The live copy of one user.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn get(&self, user_id: i32) -> mongodb::error::Result<Option<Notification>> {
        let document = self.copies.find_one(doc! {"_id": key(user_id)}).await?;
        Ok(document.and_then(from_document))
    }
}

/// What the batched update did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchWrite {
    /// The copy now holds the event's state (updated or inserted).
    Written,
    /// Not written: the copy is as new or newer, or the statement failed, or
    /// the write may not be durable; apply it one by one.
    Unsettled,
}

/// Each statement's fate from an `update` command's reply: written unless a
/// write error names it (an upsert meeting a copy as new or newer fails with
/// a duplicate `_id`; with `ordered: false` the other statements still run:
/// MongoDB does, and FerretDB does with `tools/ferretdb/writes-batched.patch`).
/// Each statement of ours that succeeds writes one document (its filter
/// needs an older version, its update sets a newer one, or it inserts), so
/// the reply's `n` must count exactly the statements no error names; a reply
/// that does not add up (stock FerretDB stops at the first failing statement
/// and reports it at index 0, with no `n`), or a write error that names no
/// statement of the command, settles none. A write concern error comes back
/// with `ok: 1` and every statement counted: such writes may be rolled back
/// (a replica set failing over), so none is settled; nor any when the command
/// itself failed.
fn batch_writes(reply: &Document, statements: usize) -> Vec<BatchWrite> {
    let ok = match reply.get("ok") {
        Some(Bson::Double(ok)) => *ok == 1.0,
        Some(Bson::Int32(ok)) => *ok == 1,
        Some(Bson::Int64(ok)) => *ok == 1,
        _ => false,
    };
    let none = vec![BatchWrite::Unsettled; statements];
    if !ok || reply.contains_key("writeConcernError") {
        return none;
    }
    let mut writes = vec![BatchWrite::Written; statements];
    let failed = match reply.get("writeErrors") {
        None => &Vec::new(),
        Some(Bson::Array(failed)) => failed,
        Some(_) => return none,
    };
    for error in failed {
        let index = count(error.as_document().and_then(|e| e.get("index")));
        match index.and_then(|i| writes.get_mut(i)) {
            Some(write) => *write = BatchWrite::Unsettled,
            None => return none,
        }
    }
    let written = writes.iter().filter(|w| **w == BatchWrite::Written).count();
    if count(reply.get("n")) == Some(written) {
        writes
    } else {
        none
    }
}

/// A count or an index in a reply (int32 or int64; the servers differ).
fn count(value: Option<&Bson>) -> Option<usize> {
    match value {
        Some(Bson::Int32(n)) => usize::try_from(*n).ok(),
        Some(Bson::Int64(n)) => usize::try_from(*n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::{BatchWrite::*, batch_writes};

    #[test]
    fn each_statement_is_written_unless_its_write_failed_or_the_concern_was_not_met() {
        let cases = [
            (
                doc! {"n": 3, "nModified": 2, "upserted": [{"index": 1, "_id": "7"}], "ok": 1.0},
                vec![Written, Written, Written],
                "two updated, one inserted",
            ),
            (
                doc! {"n": 3_i64, "ok": 1},
                vec![Written, Written, Written],
                "int64 n, int32 ok",
            ),
            (
                doc! {"n": 2, "ok": 1.0, "writeErrors": [{"index": 1, "code": 11000, "errmsg": "E11000 duplicate key"}]},
                vec![Written, Unsettled, Written],
                "the second's copy was as new: its _id clashed",
            ),
            (
                doc! {"n": 1, "ok": 1.0, "writeErrors": [{"index": 0_i64, "code": 2}, {"index": 2, "code": 11000}]},
                vec![Unsettled, Written, Unsettled],
                "two failed",
            ),
            (
                doc! {"ok": 1.0, "writeErrors": [{"index": 0, "code": 11000}]},
                vec![Unsettled, Unsettled, Unsettled],
                "stock FerretDB: the second failed, the third never ran, no n",
            ),
            (
                doc! {"n": 1, "ok": 1.0, "writeErrors": [{"index": 0, "code": 11000}]},
                vec![Unsettled, Unsettled, Unsettled],
                "n counts fewer writes than the errors leave",
            ),
            (
                doc! {"n": 2, "ok": 1.0},
                vec![Unsettled, Unsettled, Unsettled],
                "n counts fewer writes than statements",
            ),
            (
                doc! {"n": 2, "ok": 1.0, "writeErrors": [{"index": 9, "code": 11000}]},
                vec![Unsettled, Unsettled, Unsettled],
                "an error of no statement of the command",
            ),
            (
                doc! {"n": 3, "nModified": 3, "ok": 1.0,
                "writeConcernError": {"code": 64, "codeName": "WriteConcernFailed",
                    "errmsg": "waiting for replication timed out"}},
                vec![Unsettled, Unsettled, Unsettled],
                "the write concern was not met: they may be rolled back",
            ),
            (
                doc! {"n": 3, "ok": 0.0},
                vec![Unsettled, Unsettled, Unsettled],
                "not ok",
            ),
        ];
        for (reply, expected, why) in cases {
            assert_eq!(batch_writes(&reply, 3), expected, "{why}: {reply}");
        }
    }
}
