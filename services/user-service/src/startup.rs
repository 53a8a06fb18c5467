//! Building the application: connect, migrate, bind; then serve and relay
//! until shutdown.

use std::sync::Arc;

use anyhow::{Context, Result};
use service_kit::serve::{Service, StopWorker, Worker};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
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
    let relay_pool = relay_pool(&config).await?;
    let nats = config.nats.connect().await?;
    let js = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(config.relay.publish_timeout)
        .build(nats.clone());
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {} (USER_SERVICE_ADDR)", config.addr))?;
    let relay_wake = Arc::new(Notify::new());
    let relay = Relay::new(
        relay_pool,
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

/// The relay's own connections ([`RELAY_CONNECTIONS`]), named
/// [`RELAY_APPLICATION_NAME`] in `pg_stat_activity`, which commit without
/// waiting for the disk (`synchronous_commit = off`, a startup option of
/// each connection): a stamp that a crash of PostgreSQL loses only makes its
/// rows go out again, and JetStream's duplicate window or the consumer's
/// version guard drops the copy. The users' writes keep the main pool's
/// durable commits.
///
/// # Errors
/// When `DATABASE_URL` does not parse or PostgreSQL is unreachable.
pub async fn relay_pool(config: &Config) -> Result<PgPool> {
    let options: PgConnectOptions = config
        .database_url
        .parse()
        .context("parsing DATABASE_URL")?;
    PgPoolOptions::new()
        .max_connections(RELAY_CONNECTIONS)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(
            options
                .application_name(RELAY_APPLICATION_NAME)
                .options([("synchronous_commit", "off")]),
        )
        .await
        .context("connecting the outbox relay to PostgreSQL (DATABASE_URL)")
}

/// The relay's connections: it drains, reports the backlog and prunes one
/// after another, but a connection goes back to the pool asynchronously.
pub const RELAY_CONNECTIONS: u32 = 2;
/// How the relay's connections name themselves to PostgreSQL.
pub const RELAY_APPLICATION_NAME: &str = "user-service outbox relay";

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
