//! Building the application: connect, migrate, bind; then serve and relay
//! until shutdown.

use std::time::Duration;

use anyhow::{Context, Result};
use service_kit::serve::{Service, StopWorker, Worker};
use sqlx::{
    Connection as _, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::net::TcpListener;

use crate::{
    config::Config,
    relay::{self, Relay},
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
    let pool = pool_options()
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
    let (handoff, inbox) = relay::handoff(relay::HANDOFF_CAPACITY);
    let relay = Relay::new(
        relay_pool,
        js,
        config.nats.clone(),
        config.relay.clone(),
        inbox,
    );
    let state = AppState {
        users: UserStore::new(pool),
        relay: handoff,
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

/// How every pool of the service takes connections: a connection idle for
/// less than [`PING_IF_IDLE_FOR`] is used without a ping first. sqlx pings
/// by default on every acquire, and on every release too (always, in 0.8):
/// two round trips besides the write's one statement. The ping on release
/// already found the connection alive when it went back to the pool, so
/// only one that waited long enough for PostgreSQL to restart meanwhile is
/// pinged again (and, if dead, closed and replaced) before it is used.
/// The load test's raw SQL baseline takes its connections the same way.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// How long a pooled connection may sit idle and still be used unpinged:
/// shorter than a restart of PostgreSQL takes, longer than the gap between
/// two writes under any load worth saving a round trip for.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The relay's own connections ([`RELAY_CONNECTIONS`]), named
/// [`RELAY_APPLICATION_NAME`] in `pg_stat_activity`, whose transactions may
/// not idle longer than [`relay_idle_in_transaction`], and which commit without
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
    pool_options()
        .max_connections(RELAY_CONNECTIONS)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options.application_name(RELAY_APPLICATION_NAME).options([
            ("synchronous_commit", "off".to_owned()),
            (
                "idle_in_transaction_session_timeout",
                format!("{}ms", relay_idle_in_transaction(config).as_millis()),
            ),
        ]))
        .await
        .context("connecting the outbox relay to PostgreSQL (DATABASE_URL)")
}

/// How long PostgreSQL lets a relay's transaction sit idle before it ends
/// the session (`idle_in_transaction_session_timeout`): three publish
/// timeouts (the stream's lookup, the sends, the acks) and a second. A drain
/// holds its rows locked while it waits for JetStream, and every other relay
/// skips locked rows: a relay stuck there would hold its rows back from all
/// of them. Ended, its claim rolls back and its rows go out with the next
/// drain (those JetStream had acknowledged are dropped as duplicates).
pub fn relay_idle_in_transaction(config: &Config) -> Duration {
    config.relay.publish_timeout * 3 + Duration::from_secs(1)
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
