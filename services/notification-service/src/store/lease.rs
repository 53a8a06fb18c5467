//! Leases: work that one instance of several should do at a time (the drift
//! sweep) is done by whoever holds its lease, a document in `leases` that its
//! holder renews and others may take once it has expired.

use std::time::Duration;

use mongodb::bson::{self, Document, doc};

use super::{NotificationStore, is_duplicate_key};
use crate::config::LEASE_COLLECTION;

impl NotificationStore {
    /// Takes the lease `name` for `holder` until `ttl` from now, or renews
    /// it; returns whether `holder` has it. Another holder's lease is taken
    /// only once it has expired. Each step is one atomic write.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> mongodb::error::Result<bool> {
        let leases = self.database().collection::<Document>(LEASE_COLLECTION);
        let now = bson::DateTime::now();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let until = bson::DateTime::from_millis(now.timestamp_millis().saturating_add(ttl_ms));
        let renewed = leases
            .update_one(
                doc! {"_id": name, "$or": [{"holder": holder}, {"until": {"$lt": now}}]},
                doc! {"$set": {"holder": holder, "until": until}},
            )
            .await?;
        if renewed.matched_count > 0 {
            return Ok(true);
        }
        match leases
            .insert_one(doc! {"_id": name, "holder": holder, "until": until})
            .await
        {
            Ok(_) => Ok(true),
            // Held by another, and not expired.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
