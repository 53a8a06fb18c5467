//! Start-up: the unique index on `user_id`, and adopting the documents that
//! the original demo and earlier versions of this service wrote.

use futures::TryStreamExt;
use mongodb::{
    IndexModel,
    bson::{Bson, Document, doc},
    options::IndexOptions,
};

use super::{NotificationStore, as_user_id, is_duplicate_key, key};

impl NotificationStore {
    /// Creates the unique index on `user_id`, and adopts documents keyed
    /// otherwise: the original demo's (an ObjectId `_id`, no version, which
    /// get version 0 so that any event outranks them) and those of earlier
    /// versions of this service (a numeric `_id`). Idempotent; a document is
    /// removed before its re-keyed copy is written, so a crash in between
    /// loses only a copy, which the stream or `resync` restores.
    ///
    /// # Errors
    /// When MongoDB fails.
    pub async fn prepare(&self) -> mongodb::error::Result<()> {
        // One pass finds every document to adopt. FerretDB cannot push these
        // filters down, so each pass decodes the whole collection in Go
        // (measured: four passes took 13 s of start-up at 34,000 copies).
        let misfiled: Vec<Document> = self
            .copies
            .find(doc! {"$or": [
                {"_id": {"$not": {"$type": "string"}}},
                {"version": {"$exists": false}},
            ]})
            .await?
            .try_collect()
            .await?;
        for mut document in misfiled {
            if let Some(id @ Bson::String(_)) = document.get("_id").cloned() {
                // Only if still without one: another instance starting
                // beside this one may have adopted it, and an event written
                // a version since.
                self.copies
                    .update_one(
                        doc! {"_id": id, "version": {"$exists": false}},
                        doc! {"$set": {"version": 0_i64}},
                    )
                    .await?;
                continue;
            }
            let Some(user_id) = document.get("user_id").and_then(as_user_id) else {
                continue;
            };
            let old_id = document.insert("_id", key(user_id));
            if !document.contains_key("version") {
                document.insert("version", 0_i64);
            }
            self.copies.delete_one(doc! {"_id": old_id}).await?;
            match self.copies.insert_one(document).await {
                Err(e) if !is_duplicate_key(&e) => return Err(e),
                _ => {}
            }
        }
        let index = IndexModel::builder()
            .keys(doc! {"user_id": 1})
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("user_id_unique".to_owned())
                    .build(),
            )
            .build();
        self.copies.create_index(index).await?;
        Ok(())
    }
}
