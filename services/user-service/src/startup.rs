//! Building the application: connect, migrate, bind; then serve and relay
//! until shutdown.

use std::sync::Arc;

use anyhow::{Context, Result};
use service_kit::serve::{Service, StopWorker, Worker};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::{net::TcpListener, sync::Notify};

use crate::{
    config::Config,
    relay::Relay,
    routes::{AppState, router},
    store::UserStore,
};

/// Connects to PostgreSQL (and runs the migrations) and to NATS, and binds
/// the listen address. NATS may be down: the client keeps reconnecting and
/// events wait in the outbox. The service it returns serves HTTP and runs the
/// relay until shutdown; then stops accepting requests, finishes those in
/// flight, publishes what they committed, and returns.
///
/// # Errors
/// When PostgreSQL is unreachable, a migration fails, or the address
/// cannot be bound.
pub async fn build(config: Config) -> Result<Service> {
    // Install the metrics recorder before anything records.
    service_kit::metrics::handle();
    crate::relay::register_metrics();
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect(&config.database_url)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    migrate(&pool).await?;
    let nats = config.nats.connect().await?;
    let js = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(config.relay.publish_timeout)
        .build(nats.clone());
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {} (USER_SERVICE_ADDR)", config.addr))?;
    let relay_wake = Arc::new(Notify::new());
    let relay = Relay::new(
        pool.clone(),
        js,
        config.nats.clone(),
        config.relay.clone(),
        relay_wake.clone(),
    );
    let state = AppState {
        users: UserStore::new(pool),
        relay_wake,
        nats,
    };
    // The relay stops after the server, so that what the last requests
    // committed is published before the process exits.
    let relay = Worker::new("relay", StopWorker::AfterServer, move |stopped| {
        relay.run(stopped)
    });
    Ok(Service::new(
        "user-service",
        listener,
        router(state, config.request_timeout),
        relay,
    ))
}

/// Runs the idempotent migrations in `migrations/`.
///
/// # Errors
/// When a migration fails.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .context("running migrations")
}
