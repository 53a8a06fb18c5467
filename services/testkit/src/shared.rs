//! The servers `./scripts/test` started for the whole run.

use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with ./scripts/test, which starts the servers they need")
    })
}

/// PostgreSQL URL of a maintenance database on the shared server.
pub fn postgres_admin_url() -> String {
    var("TEST_DATABASE_URL")
}

pub fn mongodb_uri() -> String {
    var("TEST_MONGODB_URI")
}

pub fn nats_url() -> String {
    var("TEST_NATS_URL")
}

/// Creates an empty database on the shared PostgreSQL server and returns its URL.
///
/// # Errors
/// When the server is unreachable.
pub async fn fresh_postgres(name: &str) -> Result<String> {
    let admin = postgres_admin_url();
    let mut conn = PgConnection::connect(&admin)
        .await
        .context("connecting to TEST_DATABASE_URL")?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    let (base, _) = admin
        .rsplit_once('/')
        .context("TEST_DATABASE_URL has no database name")?;
    Ok(format!("{base}/{name}"))
}
