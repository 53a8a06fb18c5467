//! Messages that cannot be applied, kept for an operator in their own
//! collection.

use futures::TryStreamExt;
use mongodb::bson::{self, Document, doc};

use super::NotificationStore;

/// A message that could not be processed, kept for an operator.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub subject: &'a str,
    pub stream_sequence: u64,
    pub payload: &'a [u8],
    pub reason: String,
}

impl NotificationStore {
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
