//! Messages that cannot be applied, kept for an operator in their own
//! collection.

use futures::TryStreamExt;
use mongodb::bson::{self, doc};
use serde::{Deserialize, Serialize};

use super::NotificationStore;

/// A message that could not be processed, kept for an operator.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub subject: &'a str,
    pub stream_sequence: u64,
    pub payload: &'a [u8],
    pub reason: String,
}

/// A dead letter as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDeadLetter {
    pub subject: String,
    pub stream_sequence: i64,
    /// The message's bytes as text (invalid UTF-8 replaced).
    pub payload: String,
    pub reason: String,
    pub dead_lettered_at: bson::DateTime,
}

impl From<&DeadLetter<'_>> for StoredDeadLetter {
    fn from(letter: &DeadLetter<'_>) -> Self {
        Self {
            subject: letter.subject.to_owned(),
            stream_sequence: i64::try_from(letter.stream_sequence).unwrap_or(i64::MAX),
            payload: String::from_utf8_lossy(letter.payload).into_owned(),
            reason: letter.reason.clone(),
            dead_lettered_at: bson::DateTime::now(),
        }
    }
}

impl NotificationStore {
    /// Keeps a message that cannot be applied, with the reason.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn dead_letter(&self, letter: &DeadLetter<'_>) -> mongodb::error::Result<()> {
        self.dead_letters
            .insert_one(StoredDeadLetter::from(letter))
            .await
            .map(|_| ())
    }

    /// The dead letters, oldest first.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn dead_letters(&self) -> mongodb::error::Result<Vec<StoredDeadLetter>> {
        self.dead_letters
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await?
            .try_collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_is_stored_as_text_with_its_reason() {
        let letter = DeadLetter {
            subject: "user.events",
            stream_sequence: u64::MAX,
            payload: b"{not json \xff",
            reason: "expected value".into(),
        };
        let stored = StoredDeadLetter::from(&letter);
        assert_eq!(stored.payload, "{not json \u{fffd}");
        assert_eq!(stored.stream_sequence, i64::MAX);
        let document = bson::to_document(&stored).expect("BSON");
        assert_eq!(
            document.keys().collect::<Vec<_>>(),
            [
                "subject",
                "stream_sequence",
                "payload",
                "reason",
                "dead_lettered_at"
            ]
        );
    }
}
