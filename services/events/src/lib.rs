//! The event contract between user-service (producer) and notification-service
//! (consumer): the JSON shape published on `user.events`, the JetStream names,
//! and the rules for versioning it.
//!
//! The shape is the original demo's, `{"type": ..., "payload": {"id", "name",
//! "email", "updated_at"}}`, extended (never changed) with `event_id`,
//! `version` and `occurred_at`. Consumers must ignore fields they do not know,
//! so new fields can be added without breaking them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod drift;
mod stream;
pub use drift::Drift;
pub use stream::{DUPLICATE_WINDOW, StreamSpec, ensure_stream};

/// Subject every user change is published on.
pub const SUBJECT: &str = "user.events";
/// JetStream stream that captures [`SUBJECT`].
pub const STREAM: &str = "USER_EVENTS";
/// Durable consumer name used by notification-service.
pub const CONSUMER: &str = "notification-service";

/// What happened to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    UserCreated,
    UserUpdated,
    /// Extension: the user was deleted; `payload` holds its last state and
    /// `updated_at` is the time of deletion.
    UserDeleted,
}

impl EventType {
    /// The name used on the wire and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user_created",
            EventType::UserUpdated => "user_updated",
            EventType::UserDeleted => "user_deleted",
        }
    }
}

/// The user's state after the change, exactly as user-service stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPayload {
    pub id: i32,
    pub name: String,
    pub email: String,
    pub updated_at: DateTime<Utc>,
}

/// One change of one user, as published on [`SUBJECT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub payload: UserPayload,
    /// Unique per event; also the JetStream `Nats-Msg-Id`, so a republished
    /// event is dropped by the stream's duplicate window.
    pub event_id: Uuid,
    /// Per-user version, starting at 1 and increased by one on every change.
    /// A consumer applies an event only if it is newer than what it has, which
    /// makes delivery order and duplicates irrelevant to the final state.
    pub version: i64,
    /// When the change was committed in the source database; the start of the
    /// sync-latency measurement.
    pub occurred_at: DateTime<Utc>,
}

/// Why bytes could not be read as a [`UserEvent`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a user event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("version must be at least 1, got {0}")]
    Version(i64),
}

impl UserEvent {
    /// Builds the event for a change of `payload`.
    pub fn new(
        kind: EventType,
        payload: UserPayload,
        version: i64,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            kind,
            payload,
            event_id: Uuid::now_v7(),
            version,
            occurred_at,
        }
    }

    /// Serializes the event to its wire form.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs of strings, numbers and timestamps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads an event from its wire form.
    ///
    /// # Errors
    /// When the bytes are not JSON of this shape, the type is unknown, or the
    /// version is not positive.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let event: UserEvent = serde_json::from_slice(bytes)?;
        if event.version < 1 {
            return Err(DecodeError::Version(event.version));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> UserEvent {
        let at = DateTime::parse_from_rfc3339("2025-05-25T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        UserEvent {
            kind: EventType::UserUpdated,
            payload: UserPayload {
                id: 1,
                name: "John Doe".into(),
                email: "john@example.com".into(),
                updated_at: at,
            },
            event_id: Uuid::nil(),
            version: 2,
            occurred_at: at,
        }
    }

    #[test]
    fn encodes_the_original_contract_plus_extensions() {
        let value: serde_json::Value = serde_json::from_slice(&sample().encode()).unwrap();
        assert_eq!(
            value,
            json!({
                "type": "user_updated",
                "payload": {
                    "id": 1,
                    "name": "John Doe",
                    "email": "john@example.com",
                    "updated_at": "2025-05-25T10:00:00.123456Z"
                },
                "event_id": "00000000-0000-0000-0000-000000000000",
                "version": 2,
                "occurred_at": "2025-05-25T10:00:00.123456Z"
            })
        );
    }

    #[test]
    fn type_names_match_the_wire() {
        for kind in [
            EventType::UserCreated,
            EventType::UserUpdated,
            EventType::UserDeleted,
        ] {
            let wire = serde_json::to_value(kind).unwrap();
            assert_eq!(wire, json!(kind.as_str()), "{kind:?}");
        }
    }

    #[test]
    fn decode_round_trips_encode() {
        let event = sample();
        assert_eq!(UserEvent::decode(&event.encode()).unwrap(), event);
    }

    #[test]
    fn decode_ignores_unknown_fields() {
        let mut value: serde_json::Value = serde_json::from_slice(&sample().encode()).unwrap();
        value["trace_id"] = json!("abc");
        value["payload"]["nickname"] = json!("JD");
        let bytes = serde_json::to_vec(&value).unwrap();
        assert_eq!(UserEvent::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn decode_rejects_what_is_not_a_user_event() {
        let cases: [(&str, &[u8]); 5] = [
            ("not json", b"hello"),
            ("unknown type", br#"{"type":"user_renamed","payload":{"id":1,"name":"a","email":"a@b.c","updated_at":"2025-05-25T10:00:00Z"},"event_id":"00000000-0000-0000-0000-000000000000","version":1,"occurred_at":"2025-05-25T10:00:00Z"}"#),
            ("missing version", br#"{"type":"user_created","payload":{"id":1,"name":"a","email":"a@b.c","updated_at":"2025-05-25T10:00:00Z"},"event_id":"00000000-0000-0000-0000-000000000000","occurred_at":"2025-05-25T10:00:00Z"}"#),
            ("zero version", br#"{"type":"user_created","payload":{"id":1,"name":"a","email":"a@b.c","updated_at":"2025-05-25T10:00:00Z"},"event_id":"00000000-0000-0000-0000-000000000000","version":0,"occurred_at":"2025-05-25T10:00:00Z"}"#),
            ("id is a string", br#"{"type":"user_created","payload":{"id":"1","name":"a","email":"a@b.c","updated_at":"2025-05-25T10:00:00Z"},"event_id":"00000000-0000-0000-0000-000000000000","version":1,"occurred_at":"2025-05-25T10:00:00Z"}"#),
        ];
        for (what, bytes) in cases {
            assert!(UserEvent::decode(bytes).is_err(), "accepted {what}");
        }
    }

    #[test]
    fn new_events_get_distinct_ids() {
        let a = UserEvent::new(EventType::UserCreated, sample().payload, 1, Utc::now());
        let b = UserEvent::new(EventType::UserCreated, sample().payload, 1, Utc::now());
        assert_ne!(a.event_id, b.event_id);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_event() -> impl Strategy<Value = UserEvent> {
            (
                prop_oneof![
                    Just(EventType::UserCreated),
                    Just(EventType::UserUpdated),
                    Just(EventType::UserDeleted),
                ],
                any::<i32>(),
                ".{0,64}",
                ".{0,64}",
                // Microsecond timestamps, as PostgreSQL stores them.
                0_i64..4_102_444_800_000_000,
                1_i64..=i64::MAX,
                any::<u128>(),
            )
                .prop_map(|(kind, id, name, email, micros, version, uuid)| {
                    let at = DateTime::from_timestamp_micros(micros).unwrap_or_default();
                    UserEvent {
                        kind,
                        payload: UserPayload {
                            id,
                            name,
                            email,
                            updated_at: at,
                        },
                        event_id: Uuid::from_u128(uuid),
                        version,
                        occurred_at: at,
                    }
                })
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = UserEvent::decode(&bytes);
            }

            #[test]
            fn arbitrary_json_objects_never_panic(text in r#"\{("[a-z_]{1,10}": ?("[^"]{0,8}"|-?[0-9]{1,20}|null|\{\}|\[\]),? ?){0,8}\}"#) {
                let _ = UserEvent::decode(text.as_bytes());
            }

            #[test]
            fn valid_events_round_trip(event in any_event()) {
                prop_assert_eq!(UserEvent::decode(&event.encode()).unwrap(), event);
            }

            #[test]
            fn a_version_below_one_is_refused(event in any_event(), version in i64::MIN..1) {
                let bad = UserEvent { version, ..event };
                prop_assert!(matches!(UserEvent::decode(&bad.encode()), Err(DecodeError::Version(_))));
            }
        }
    }
}
