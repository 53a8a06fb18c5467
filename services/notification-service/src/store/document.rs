//! A copy's stored form, typed: the document an event's state becomes, and
//! the copy read back from one (also the original demo's documents).

use chrono::{DateTime, SecondsFormat, Utc};
use events::{EventType, UserEvent};
use mongodb::{
    bson::{self, Bson, Document, doc},
    error::{ErrorKind, WriteFailure},
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};

use super::{CopyVersion, Notification};

/// MongoDB's error code for a unique index violated.
pub(super) const DUPLICATE_KEY: i32 = 11000;

/// A copy as stored, without its `_id` (which is [`key`] of `user_id`; the
/// original demo's documents have an `ObjectId` there until start-up
/// re-keys them). The contract's fields must be of their types, or the
/// document is not a copy; the bookkeeping after them is read as its default
/// when missing (the demo's documents) or of another type (edited by hand).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StoredCopy {
    /// Stored as a 32-bit integer; the demo's 64-bit ones are read too.
    pub user_id: i32,
    pub name: String,
    pub email: String,
    pub updated_at: StoredInstant,
    /// The version of the last event applied (0: none known).
    #[serde(default, deserialize_with = "lenient")]
    pub version: i64,
    /// A tombstone: the user was deleted.
    #[serde(default, deserialize_with = "lenient")]
    pub deleted: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub event_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub synced_at: Option<bson::DateTime>,
}

/// `updated_at` as stored: the exact RFC 3339 text (microseconds, which a
/// BSON date would round to milliseconds), or the demo's BSON date.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StoredInstant {
    Text(String),
    Date(bson::DateTime),
}

impl StoredInstant {
    fn instant(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Text(text) => Some(DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc)),
            Self::Date(date) => DateTime::from_timestamp_millis(date.timestamp_millis()),
        }
    }
}

impl StoredCopy {
    /// The copy `event` asks for, written now.
    pub fn of(event: &UserEvent) -> Self {
        let p = &event.payload;
        Self {
            user_id: p.id,
            name: p.name.clone(),
            email: p.email.clone(),
            updated_at: StoredInstant::Text(
                p.updated_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ),
            version: event.version,
            deleted: event.kind == EventType::UserDeleted,
            event_id: Some(event.event_id.to_string()),
            synced_at: Some(bson::DateTime::now()),
        }
    }

    /// Reads a stored document; `None` if it is not a copy.
    pub fn read(document: Document) -> Option<Self> {
        bson::from_document(document).ok()
    }

    /// Everything but `_id`: what an update sets, or replaces the copy with.
    /// Spelled out rather than serialized, so that it can never come out
    /// empty (a replacement by an empty document would erase the copy).
    pub fn fields(&self) -> Document {
        let updated_at = match &self.updated_at {
            StoredInstant::Text(text) => Bson::String(text.clone()),
            StoredInstant::Date(date) => Bson::DateTime(*date),
        };
        let mut fields = doc! {
            "user_id": self.user_id,
            "name": &self.name,
            "email": &self.email,
            "updated_at": updated_at,
            "version": self.version,
            "deleted": self.deleted,
        };
        if let Some(event_id) = &self.event_id {
            fields.insert("event_id", event_id);
        }
        if let Some(synced_at) = self.synced_at {
            fields.insert("synced_at", synced_at);
        }
        fields
    }

    /// The whole document, `_id` first.
    pub fn document(&self) -> Document {
        let mut document = doc! {"_id": key(self.user_id)};
        document.extend(self.fields());
        document
    }

    /// As the API returns it; `None` for a tombstone or an unreadable date.
    pub fn live(&self) -> Option<Notification> {
        (!self.deleted).then_some(())?;
        Some(Notification {
            user_id: i64::from(self.user_id),
            name: self.name.clone(),
            email: self.email.clone(),
            updated_at: self.updated_at.instant()?,
        })
    }

    /// Whether `self` holds the state `wanted` describes (contract fields and
    /// the deletion mark).
    pub(super) fn same_state(&self, wanted: &Self) -> bool {
        self.name == wanted.name
            && self.email == wanted.email
            && self.updated_at == wanted.updated_at
            && self.deleted == wanted.deleted
    }
}

/// A copy's bookkeeping as stored: what [`NotificationStore::versions`]
/// projects.
///
/// [`NotificationStore::versions`]: super::NotificationStore::versions
#[derive(Debug, Deserialize)]
pub(super) struct Bookkeeping {
    user_id: i32,
    #[serde(default, deserialize_with = "lenient")]
    version: i64,
    #[serde(default, deserialize_with = "lenient")]
    deleted: bool,
    #[serde(default, deserialize_with = "lenient")]
    synced_at: Option<bson::DateTime>,
}

/// A bookkeeping field: its value if it is of its type, else its default.
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(bson::from_bson(Bson::deserialize(deserializer)?).unwrap_or_default())
}

impl Bookkeeping {
    /// The fields to project.
    pub(super) fn projection() -> Document {
        doc! {"user_id": 1, "version": 1, "deleted": 1, "synced_at": 1}
    }

    /// Reads a projected document; `None` if it has no usable `user_id`.
    pub(super) fn read(document: Document) -> Option<CopyVersion> {
        let stored: Self = bson::from_document(document).ok()?;
        Some(CopyVersion {
            user_id: stored.user_id,
            version: stored.version,
            deleted: stored.deleted,
            synced_at: stored.synced_at.map_or(0, |t| t.timestamp_millis()),
        })
    }
}

/// The stored form of an event's state (`_id` first).
pub fn to_document(event: &UserEvent) -> Document {
    StoredCopy::of(event).document()
}

/// Reads a stored live copy; also accepts the original demo's documents,
/// whose `updated_at` is a BSON date and `user_id` may be a 64-bit integer.
pub fn from_document(document: Document) -> Option<Notification> {
    StoredCopy::read(document)?.live()
}

/// A copy's `_id`: the user id, as a string (see the module's notes).
pub fn key(user_id: i32) -> String {
    user_id.to_string()
}

/// A user id stored as a 32- or 64-bit integer (the original demo used 64).
pub(super) fn as_user_id(value: &Bson) -> Option<i32> {
    match value {
        Bson::Int32(v) => Some(*v),
        Bson::Int64(v) => i32::try_from(*v).ok(),
        _ => None,
    }
}

pub(super) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
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
        assert_eq!(
            document.keys().collect::<Vec<_>>(),
            [
                "_id",
                "user_id",
                "name",
                "email",
                "updated_at",
                "version",
                "deleted",
                "event_id",
                "synced_at"
            ]
        );
        assert!(document.get_datetime("synced_at").is_ok());
        assert_eq!(document.get_str("_id").unwrap(), "1");
        assert_eq!(document.get_i32("user_id").unwrap(), 1);
        assert_eq!(document.get_i64("version").unwrap(), 4);
        assert!(!document.get_bool("deleted").unwrap());
        assert_eq!(
            document.get_str("updated_at").unwrap(),
            "2025-05-25T10:01:00.123456Z"
        );
        assert_eq!(
            from_document(document).unwrap(),
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
        let copy = from_document(document.clone()).unwrap();
        assert_eq!(copy.user_id, 7);
        assert_eq!(copy.updated_at.to_rfc3339(), "2025-05-25T10:00:00+00:00");
        let bookkeeping = Bookkeeping::read(document).unwrap();
        assert_eq!((bookkeeping.user_id, bookkeeping.version), (7, 0));
        assert!(!bookkeeping.deleted);
    }

    #[test]
    fn what_is_not_a_copy_is_not_read_as_one() {
        let good = to_document(&event(EventType::UserUpdated));
        for (field, value) in [
            ("user_id", Bson::String("1".into())),
            ("user_id", Bson::Int64(i64::from(i32::MAX) + 1)),
            ("name", Bson::Null),
            ("updated_at", Bson::Int32(5)),
        ] {
            let mut bad = good.clone();
            bad.insert(field, value.clone());
            assert_eq!(StoredCopy::read(bad), None, "{field}: {value}");
        }
        let mut unreadable_date = good.clone();
        unreadable_date.insert("updated_at", "yesterday");
        assert!(StoredCopy::read(unreadable_date.clone()).is_some());
        assert_eq!(from_document(unreadable_date), None);
        let mut tombstone = good;
        tombstone.insert("deleted", true);
        assert_eq!(from_document(tombstone), None);
    }

    #[test]
    fn bookkeeping_of_another_type_reads_as_its_default() {
        let mut edited = to_document(&event(EventType::UserUpdated));
        edited.insert("version", 4_i32);
        edited.insert("deleted", Bson::Null);
        edited.insert("synced_at", "yesterday");
        edited.insert("event_id", 7_i32);
        let copy = StoredCopy::read(edited.clone()).expect("still a copy");
        assert_eq!(
            (copy.version, copy.deleted, copy.event_id, copy.synced_at),
            (4, false, None, None)
        );
        assert!(from_document(edited.clone()).is_some());
        let bookkeeping = Bookkeeping::read(edited).expect("bookkeeping");
        assert_eq!(
            (
                bookkeeping.version,
                bookkeeping.deleted,
                bookkeeping.synced_at
            ),
            (4, false, 0)
        );
        // Of their types, they are read as they are.
        let written = to_document(&event(EventType::UserDeleted));
        let synced = *written.get_datetime("synced_at").expect("date");
        let copy = StoredCopy::read(written.clone()).expect("copy");
        assert_eq!((copy.synced_at, copy.deleted), (Some(synced), true));
        assert_eq!(
            Bookkeeping::read(written).expect("bookkeeping").synced_at,
            synced.timestamp_millis()
        );
    }

    #[test]
    fn serializes_to_the_demo_shape() {
        let copy = from_document(to_document(&event(EventType::UserCreated))).unwrap();
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
