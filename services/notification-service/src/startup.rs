//! Building the application: connect, prepare indexes, bind; then consume and
//! serve until shutdown.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::{Context, Result};
use mongodb::options::ClientOptions;
use tokio::{net::TcpListener, sync::oneshot};

use crate::{
    config::Config,
    consumer::Consumer,
    routes::{AppState, router},
    store::NotificationStore,
};

/// How long a MongoDB operation waits for a reachable server before failing
/// (and being retried, for the consumer; a 503, for the API).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// A built, not yet running, notification-service.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    consumer: Consumer,
    request_timeout: Duration,
    /// Where the source is and how often to measure the drift, if at all.
    drift: Option<(String, Duration)>,
}

impl Application {
    /// Connects to MongoDB (creating the indexes) and to NATS, and binds the
    /// listen address. NATS may be down: the consumer waits for it.
    ///
    /// # Errors
    /// When MongoDB is unreachable, `MONGODB_URI` is invalid, or the address
    /// cannot be bound.
    pub async fn build(config: Config) -> Result<Self> {
        // Install the metrics recorder before anything records.
        service_kit::metrics::handle();
        crate::consumer::register_metrics();
        crate::repair::register_metrics();
        let store = connect_store(&config).await?;
        tracing::info!(write_guard = store.guard().as_str(), "MongoDB reached");
        store
            .prepare()
            .await
            .context("preparing MongoDB (MONGODB_URI)")?;
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(config.nats.url.as_str())
            .await
            .context("connecting to NATS (NATS_URL)")?;
        let consumer = Consumer::new(
            async_nats::jetstream::new(nats.clone()),
            config.nats.clone(),
            store.clone(),
        );
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {} (NOTIFICATION_SERVICE_ADDR)", config.addr))?;
        Ok(Self {
            listener,
            state: AppState { store, nats },
            consumer,
            request_timeout: config.request_timeout,
            drift: (!config.drift_check_interval.is_zero())
                .then(|| (config.user_service_url.clone(), config.drift_check_interval)),
        })
    }

    /// The bound address (tests bind port 0).
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Consumes and serves until `shutdown` completes; then stops pulling,
    /// finishes the messages in hand, finishes the requests in flight, and
    /// returns.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "notification-service listening");
        let (http_stop, http_stopped) = oneshot::channel::<()>();
        let (consumer_stop, consumer_stopped) = oneshot::channel::<()>();
        let store = self.state.store.clone();
        let serve = axum::serve(self.listener, router(self.state, self.request_timeout))
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            });
        let mut server = tokio::spawn(async move { serve.await });
        let drift = match self.drift {
            Some((users_url, interval)) => Some(tokio::spawn(crate::repair::watch_drift(
                crate::repair::http_client()?,
                users_url,
                store,
                interval,
            ))),
            None => None,
        };
        let consumer = tokio::spawn(self.consumer.run(async {
            let _ = consumer_stopped.await;
        }));
        let early_exit = tokio::select! {
            () = shutdown => None,
            served = &mut server => Some(served),
        };
        let _ = consumer_stop.send(());
        let served = match early_exit {
            Some(served) => served,
            None => {
                let _ = http_stop.send(());
                server.await
            }
        };
        if let Some(drift) = drift {
            drift.abort();
        }
        consumer.await.context("consumer task panicked")?;
        served
            .context("server task panicked")?
            .context("HTTP server failed")?;
        tracing::info!("notification-service stopped");
        Ok(())
    }
}

/// A client for `MONGODB_URI`, on the database `MONGODB_DATABASE`.
///
/// # Errors
/// When `MONGODB_URI` is invalid.
pub async fn connect_database(config: &Config) -> Result<mongodb::Database> {
    let mut options = ClientOptions::parse(&config.mongodb_uri)
        .await
        .context("parsing MONGODB_URI")?;
    options.app_name = Some("notification-service".to_owned());
    options.server_selection_timeout = Some(SERVER_SELECTION_TIMEOUT);
    let client = mongodb::Client::with_options(options).context("creating the MongoDB client")?;
    Ok(client.database(&config.database))
}

/// The store on [`connect_database`], with the write guard that suits the
/// server.
///
/// # Errors
/// When `MONGODB_URI` is invalid or the server does not answer.
pub async fn connect_store(config: &Config) -> Result<NotificationStore> {
    NotificationStore::open(connect_database(config).await?)
        .await
        .context("reaching MongoDB (MONGODB_URI)")
}
