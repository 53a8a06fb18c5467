//! The MongoDB copy: one document per user in `user_notifications`, written
//! only by events newer than it (the version guard), and the dead letters.
//!
//! A document's `_id` is the user id, so every write and single read goes
//! through the primary key (FerretDB pushes only `_id` filters down to its
//! storage; any other filter scans the collection). A document is the
//! contract's `{user_id, name, email, updated_at}` plus
//! `version` (of the last applied event), `deleted` (a tombstone: a deleted
//! user keeps its document so that a late, older event cannot bring it
//! back), `event_id` and `synced_at`.

use chrono::{DateTime, SecondsFormat, Utc};
use events::{EventType, UserEvent};
use futures::TryStreamExt;
use mongodb::{
    Collection, Database, IndexModel,
    bson::{self, Bson, Document, doc},
    error::{ErrorKind, WriteFailure},
    options::IndexOptions,
};
use serde::Serialize;

use crate::config::{COLLECTION, DEAD_LETTER_COLLECTION};

const DUPLICATE_KEY: i32 = 11000;

/// A user's copy as the API returns it (the original demo's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// A message that could not be processed, kept for an operator.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub subject: &'a str,
    pub stream_sequence: u64,
    pub payload: &'a [u8],
    pub reason: String,
}

#[derive(Clone)]
pub struct NotificationStore {
    db: Database,
    copies: Collection<Document>,
    dead_letters: Collection<Document>,
}

impl NotificationStore {
    pub fn new(db: Database) -> Self {
        Self {
            copies: db.collection(COLLECTION),
            dead_letters: db.collection(DEAD_LETTER_COLLECTION),
            db,
        }
    }

    /// Creates the unique index on `user_id`, and adopts documents written by
    /// the original demo: they are re-keyed by user id and given version 0,
    /// so any event outranks them. Idempotent.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn prepare(&self) -> mongodb::error::Result<()> {
        let index = IndexModel::builder()
            .keys(doc! {"user_id": 1})
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("user_id_unique".to_owned())
                    .build(),
            )
            .build();
        let legacy: Vec<Document> = self
            .copies
            .find(doc! {"_id": {"$type": "objectId"}})
            .await?
            .try_collect()
            .await?;
        for mut document in legacy {
            let Some(user_id) = document.get("user_id").and_then(as_user_id) else {
                continue;
            };
            let old_id = document.insert("_id", user_id);
            if !document.contains_key("version") {
                document.insert("version", 0_i64);
            }
            self.copies.delete_one(doc! {"_id": old_id}).await?;
            match self.copies.insert_one(document).await {
                Err(e) if !is_duplicate_key(&e) => return Err(e),
                _ => {}
            }
        }
        self.copies.create_index(index).await?;
        self.copies
            .update_many(
                doc! {"version": {"$exists": false}},
                doc! {"$set": {"version": 0_i64}},
            )
            .await?;
        Ok(())
    }

    /// Answers when MongoDB does.
    ///
    /// # Errors
    /// When MongoDB does not answer.
    pub async fn ping(&self) -> mongodb::error::Result<()> {
        self.db.run_command(doc! {"ping": 1}).await.map(|_| ())
    }

    /// Applies `event` if it is newer than the copy.
    ///
    /// First a conditional update (`version < event.version`); if nothing
    /// matched, an insert, which the unique index on `user_id` refuses when a
    /// document with a newer or equal version exists: then the event is stale.
    /// Two writes of one user must not run at once (FerretDB does not make
    /// the conditional update atomic); the consumer guarantees that.
    ///
    /// # Errors
    /// When MongoDB fails; nothing is half-applied, so the event can be retried.
    pub async fn apply(&self, event: &UserEvent) -> mongodb::error::Result<Outcome> {
        let document = to_document(event);
        let newer = doc! {"_id": event.payload.id, "version": {"$lt": event.version}};
        let updated = self
            .copies
            .update_one(newer, doc! {"$set": document.clone()})
            .await?;
        if updated.matched_count > 0 {
            return Ok(Outcome::Applied);
        }
        match self.copies.insert_one(document).await {
            Ok(_) => Ok(Outcome::Applied),
            Err(e) if is_duplicate_key(&e) => Ok(Outcome::Stale),
            Err(e) => Err(e),
        }
    }

    /// All live copies, by user id.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn list(&self) -> mongodb::error::Result<Vec<Notification>> {
        let documents: Vec<Document> = self
            .copies
            .find(doc! {"deleted": {"$ne": true}})
            .sort(doc! {"_id": 1})
            .await?
            .try_collect()
            .await?;
        Ok(documents.iter().filter_map(from_document).collect())
    }

    /// The live copy of one user.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn get(&self, user_id: i32) -> mongodb::error::Result<Option<Notification>> {
        let document = self
            .copies
            .find_one(doc! {"_id": user_id, "deleted": {"$ne": true}})
            .await?;
        Ok(document.as_ref().and_then(from_document))
    }

    /// Keeps a message that cannot be applied, with the reason.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn dead_letter(&self, letter: &DeadLetter<'_>) -> mongodb::error::Result<()> {
        self.dead_letters
            .insert_one(doc! {
                "subject": letter.subject,
                "stream_sequence": i64::try_from(letter.stream_sequence).unwrap_or(i64::MAX),
                "payload": String::from_utf8_lossy(letter.payload).into_owned(),
                "reason": &letter.reason,
                "dead_lettered_at": bson::DateTime::now(),
            })
            .await
            .map(|_| ())
    }

    /// The dead letters, oldest first, as stored.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn dead_letters(&self) -> mongodb::error::Result<Vec<Document>> {
        self.dead_letters
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await?
            .try_collect()
            .await
    }
}

/// The stored form of an event's state. `updated_at` is kept as the exact
/// RFC 3339 text (microseconds), which a BSON date would round to milliseconds.
pub fn to_document(event: &UserEvent) -> Document {
    let p = &event.payload;
    doc! {
        "_id": p.id,
        "user_id": p.id,
        "name": &p.name,
        "email": &p.email,
        "updated_at": p.updated_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "version": event.version,
        "deleted": event.kind == EventType::UserDeleted,
        "event_id": event.event_id.to_string(),
        "synced_at": bson::DateTime::now(),
    }
}

/// Reads a stored copy; also accepts the original demo's documents, whose
/// `updated_at` is a BSON date and `user_id` may be a 64-bit integer.
pub fn from_document(document: &Document) -> Option<Notification> {
    let user_id = i64::from(as_user_id(document.get("user_id")?)?);
    let updated_at = match document.get("updated_at")? {
        Bson::String(s) => DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc),
        Bson::DateTime(d) => DateTime::from_timestamp_millis(d.timestamp_millis())?,
        _ => return None,
    };
    Some(Notification {
        user_id,
        name: document.get_str("name").ok()?.to_owned(),
        email: document.get_str("email").ok()?.to_owned(),
        updated_at,
    })
}

/// A user id stored as a 32- or 64-bit integer (the original demo used 64).
fn as_user_id(value: &Bson) -> Option<i32> {
    match value {
        Bson::Int32(v) => Some(*v),
        Bson::Int64(v) => i32::try_from(*v).ok(),
        _ => None,
    }
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::UserPayload;

    fn event(kind: EventType) -> UserEvent {
        let at = DateTime::parse_from_rfc3339("2025-05-25T10:01:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        UserEvent::new(
            kind,
            UserPayload {
                id: 1,
                name: "John Doe Updated".into(),
                email: "john.updated@example.com".into(),
                updated_at: at,
            },
            4,
            at,
        )
    }

    #[test]
    fn a_document_reads_back_as_the_events_state() {
        let e = event(EventType::UserUpdated);
        let document = to_document(&e);
        assert_eq!(document.get_i64("version").unwrap(), 4);
        assert!(!document.get_bool("deleted").unwrap());
        assert_eq!(
            document.get_str("updated_at").unwrap(),
            "2025-05-25T10:01:00.123456Z"
        );
        assert_eq!(
            from_document(&document).unwrap(),
            Notification {
                user_id: 1,
                name: e.payload.name,
                email: e.payload.email,
                updated_at: e.payload.updated_at,
            }
        );
    }

    #[test]
    fn a_delete_is_stored_as_a_tombstone() {
        assert!(
            to_document(&event(EventType::UserDeleted))
                .get_bool("deleted")
                .unwrap()
        );
    }

    #[test]
    fn the_original_demos_documents_are_read() {
        let document = doc! {
            "user_id": 7_i64,
            "name": "John Doe",
            "email": "john@example.com",
            "updated_at": bson::DateTime::from_millis(1_748_167_200_000),
        };
        let copy = from_document(&document).unwrap();
        assert_eq!(copy.user_id, 7);
        assert_eq!(copy.updated_at.to_rfc3339(), "2025-05-25T10:00:00+00:00");
    }

    #[test]
    fn serializes_to_the_demo_shape() {
        let copy = from_document(&to_document(&event(EventType::UserCreated))).unwrap();
        assert_eq!(
            serde_json::to_value(copy).unwrap(),
            serde_json::json!({
                "user_id": 1,
                "name": "John Doe Updated",
                "email": "john.updated@example.com",
                "updated_at": "2025-05-25T10:01:00.123456Z"
            })
        );
    }
}
