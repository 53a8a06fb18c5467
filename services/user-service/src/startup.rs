//! Building the application: connect, migrate, bind; then serve and relay
//! until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::{
    net::TcpListener,
    sync::{Notify, oneshot},
};

use crate::{
    config::Config,
    relay::Relay,
    routes::{AppState, router},
    store::UserStore,
};

/// A built, not yet running, user-service.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    relay: Relay,
    request_timeout: std::time::Duration,
}

impl Application {
    /// Connects to PostgreSQL (and runs the migrations) and to NATS, and binds
    /// the listen address. NATS may be down: the client keeps reconnecting and
    /// events wait in the outbox.
    ///
    /// # Errors
    /// When PostgreSQL is unreachable, a migration fails, or the address
    /// cannot be bound.
    pub async fn build(config: Config) -> Result<Self> {
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
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(config.nats.url.as_str())
            .await
            .context("connecting to NATS (NATS_URL)")?;
        let js = async_nats::jetstream::context::ContextBuilder::new()
            .timeout(config.nats.publish_timeout)
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
        Ok(Self {
            listener,
            state,
            relay,
            request_timeout: config.request_timeout,
        })
    }

    /// The bound address (tests bind port 0).
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves HTTP and runs the relay until `shutdown` completes; then stops
    /// accepting requests, finishes those in flight, publishes what they
    /// committed, and returns.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "user-service listening");
        let (http_stop, http_stopped) = oneshot::channel::<()>();
        let (relay_stop, relay_stopped) = oneshot::channel::<()>();
        let serve = axum::serve(self.listener, router(self.state, self.request_timeout))
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            });
        let mut server = tokio::spawn(async move { serve.await });
        let relay = tokio::spawn(self.relay.run(async {
            let _ = relay_stopped.await;
        }));
        let early_exit = tokio::select! {
            () = shutdown => None,
            served = &mut server => Some(served),
        };
        let served = match early_exit {
            Some(served) => served,
            None => {
                let _ = http_stop.send(());
                server.await
            }
        };
        // The relay stops after the server, so that what the last requests
        // committed is published before the process exits.
        let _ = relay_stop.send(());
        relay.await.context("relay task panicked")?;
        served
            .context("server task panicked")?
            .context("HTTP server failed")?;
        tracing::info!("user-service stopped");
        Ok(())
    }
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
