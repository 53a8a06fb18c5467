//! A copy's stored form: the document an event's state becomes, and the
//! copy read back from one (also the original demo's documents).

use chrono::{DateTime, SecondsFormat, Utc};
use events::{EventType, UserEvent};
use mongodb::{
    bson::{self, Bson, Document, doc},
    error::{ErrorKind, WriteFailure},
};

use super::Notification;

/// MongoDB's error code for a unique index violated.
pub(super) const DUPLICATE_KEY: i32 = 11000;

/// The stored form of an event's state. `updated_at` is kept as the exact
/// RFC 3339 text (microseconds), which a BSON date would round to milliseconds.
pub fn to_document(event: &UserEvent) -> Document {
    let p = &event.payload;
    doc! {
        "_id": key(p.id),
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

/// Whether `current` holds the state `wanted` describes (contract fields and
/// the deletion mark).
pub(super) fn same_state(current: &Document, wanted: &Document) -> bool {
    ["name", "email", "updated_at", "deleted"]
        .iter()
        .all(|field| current.get(field) == wanted.get(field))
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
        assert_eq!(document.get_str("_id").unwrap(), "1");
        assert_eq!(document.get_i32("user_id").unwrap(), 1);
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
