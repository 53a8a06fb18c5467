//! Building the application: connect, prepare indexes, bind; then consume and
//! serve until shutdown.

use std::time::Duration;

use anyhow::{Context, Result};
use mongodb::options::{ClientOptions, DatabaseOptions, WriteConcern};
use service_kit::serve::{Service, StopWorker, Worker};
use tokio::net::TcpListener;

use crate::{
    config::Config,
    consumer::Consumer,
    routes::{AppState, router},
    store::{NotificationStore, Server},
};

/// How long a MongoDB operation waits for a reachable server before failing
/// (and being retried, for the consumer; a 503, for the API).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to MongoDB (creating the indexes) and to NATS, and binds the
/// listen address. NATS may be down: the consumer waits for it. The service
/// it returns consumes and serves until shutdown; then stops pulling,
/// finishes the messages in hand, finishes the requests in flight, and
/// returns.
///
/// # Errors
/// When MongoDB is unreachable, `MONGODB_URI` is invalid, the HTTP client
/// for the drift check cannot be built, or the address cannot be bound.
pub async fn build(config: Config) -> Result<Service> {
    // Install the metrics recorder before anything records.
    service_kit::metrics::handle();
    crate::consumer::register_metrics();
    crate::repair::register_metrics();
    let store = connect_store(&config).await?;
    store
        .prepare()
        .await
        .context("preparing MongoDB (MONGODB_URI)")?;
    let nats = config.nats.connect().await?;
    let consumer = Consumer::new(
        async_nats::jetstream::new(nats.clone()),
        config.nats.clone(),
        config.consumer.clone(),
        store.clone(),
    );
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {} (NOTIFICATION_SERVICE_ADDR)", config.addr))?;
    // The drift gauge is measured beside the consumer, until it stops.
    let drift = if config.drift_check_interval.is_zero() {
        None
    } else {
        Some(crate::repair::watch_drift(
            crate::repair::http_client()?,
            config.user_service_url.clone(),
            store.clone(),
            config.drift_check_interval,
        ))
    };
    // The consumer stops pulling at once; the requests in flight still finish.
    let consumer = Worker::new("consumer", StopWorker::First, move |stopped| async move {
        let drift = drift.map(tokio::spawn);
        consumer.run(stopped).await;
        if let Some(drift) = drift {
            drift.abort();
        }
    });
    Ok(Service::new(
        "notification-service",
        listener,
        router(AppState { store, nats }, config.request_timeout),
        consumer,
    ))
}

/// A client for `MONGODB_URI`, on the database `MONGODB_DATABASE`, whose
/// writes ask for the URI's write concern, or `w: majority` when it names
/// none (a write acknowledged by one member of a replica set can be rolled
/// back when it fails over, and the event would be acknowledged all the same).
///
/// # Errors
/// When `MONGODB_URI` is invalid.
pub async fn connect_database(config: &Config) -> Result<mongodb::Database> {
    let mut options = ClientOptions::parse(&config.mongodb_uri)
        .await
        .context("parsing MONGODB_URI")?;
    options.app_name = Some("notification-service".to_owned());
    options.server_selection_timeout = Some(SERVER_SELECTION_TIMEOUT);
    let write_concern = options
        .write_concern
        .clone()
        .unwrap_or_else(WriteConcern::majority);
    let client = mongodb::Client::with_options(options).context("creating the MongoDB client")?;
    Ok(client.database_with_options(
        &config.database,
        DatabaseOptions::builder()
            .write_concern(write_concern)
            .build(),
    ))
}

/// The store on [`connect_database`], once the server answers.
///
/// # Errors
/// When `MONGODB_URI` is invalid or the server does not answer.
pub async fn connect_store(config: &Config) -> Result<NotificationStore> {
    let db = connect_database(config).await?;
    let server = Server::detect(&db)
        .await
        .context("reaching MongoDB (MONGODB_URI)")?;
    tracing::info!(server = server.as_str(), "MongoDB reached");
    Ok(NotificationStore::new(db))
}
