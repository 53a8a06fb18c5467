//! Which server holds the copy: MongoDB, or FerretDB standing in for it (the
//! stack without Nix, and the tests). The store writes the same way to both:
//! every update is a compare-and-set on the version, atomic per document on
//! MongoDB, and on FerretDB through `tools/ferretdb/write-lock.patch`.

use mongodb::{Database, bson::doc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    MongoDb,
    FerretDb,
}

impl Server {
    /// `FerretDb` when its `buildInfo` has a `ferretdbVersion`.
    ///
    /// # Errors
    /// When the server does not answer `buildInfo`.
    pub async fn detect(db: &Database) -> mongodb::error::Result<Self> {
        let info = db.run_command(doc! {"buildInfo": 1}).await?;
        Ok(if info.contains_key("ferretdbVersion") {
            Server::FerretDb
        } else {
            Server::MongoDb
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Server::MongoDb => "MongoDB",
            Server::FerretDb => "FerretDB",
        }
    }
}
