use std::time::Duration;

use async_nats::jetstream;
use events::UserEvent;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use testkit::{Names, Running, shared, wait::eventually};
use user_service::Config;

/// A running user-service on a random port, with its own database and stream.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub pool: sqlx::PgPool,
    pub config: Config,
    running: Running,
}

/// A config with fresh names on the shared servers (or the NATS given).
pub async fn test_config(nats_url: Option<String>) -> Config {
    let names = Names::new();
    let database_url = shared::fresh_postgres(&names.postgres_database())
        .await
        .expect("fresh database");
    let mut config =
        Config::from_vars(&service_kit::env::Vars::from_pairs([])).expect("default config");
    config.addr = "127.0.0.1:0".parse().expect("addr");
    config.database_url = database_url;
    config.nats.url = nats_url.unwrap_or_else(shared::nats_url);
    config.nats.subject = names.subject();
    config.nats.stream = names.stream();
    config.relay.sweep_interval = Duration::from_millis(200);
    config.relay.publish_timeout = Duration::from_millis(300);
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(test_config(None).await).await
    }

    pub async fn spawn_with(config: Config) -> Self {
        testkit::init_tracing();
        let service = user_service::build(config.clone())
            .await
            .expect("user-service builds");
        let pool = sqlx::PgPool::connect(&config.database_url)
            .await
            .expect("test pool");
        let running = Running::start(service);
        Self {
            base: running.base.clone(),
            http: reqwest::Client::new(),
            pool,
            config,
            running,
        }
    }

    /// Stops the service gracefully and waits for it to exit.
    pub async fn shutdown(mut self) {
        self.running.stop().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.http
            .delete(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Creates a user and returns its JSON.
    pub async fn create_user(&self, name: &str, email: &str) -> Value {
        let response = self
            .post_json("/users", &serde_json::json!({"name": name, "email": email}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json")
    }

    pub async fn outbox_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    pub async fn unpublished_rows(&self) -> i64 {
        unpublished(&self.pool).await
    }

    /// Waits until every outbox row is stamped published (`what` names the
    /// wait in its failure).
    pub async fn wait_for_outbox_drained(&self, what: &str) {
        wait_for_unpublished(&self.pool, 0, what).await;
    }

    /// This app's `/metrics`.
    pub fn metrics(&self) -> testkit::http::Metrics {
        testkit::http::Metrics::of(&self.http, &self.base)
    }

    /// Every event in the test's stream, in stream order.
    pub async fn stream_events(&self, nats_url: &str) -> Vec<UserEvent> {
        stream_events(nats_url, &self.config.nats.stream).await
    }

    /// Waits until the stream holds `n` events and returns them.
    pub async fn wait_for_events(&self, n: usize) -> Vec<UserEvent> {
        wait_for_stream_events(&self.config.nats.url, &self.config.nats.stream, n).await
    }
}

/// How many rows of the outbox on `pool` are not stamped published.
pub async fn unpublished(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Waits until exactly `n` rows of the outbox on `pool` are unpublished
/// (`what` names the wait in its failure). A row is stamped a moment after
/// the stream has its event: wait for the stamp, do not read it at once.
pub async fn wait_for_unpublished(pool: &sqlx::PgPool, n: i64, what: &str) {
    eventually(what, testkit::wait::DEFAULT_PATIENCE, || async {
        match unpublished(pool).await {
            left if left == n => Ok(()),
            left => Err(format!("{left} unpublished")),
        }
    })
    .await;
}

/// Waits until `stream` holds `n` events and returns them.
pub async fn wait_for_stream_events(nats_url: &str, stream: &str, n: usize) -> Vec<UserEvent> {
    eventually(
        &format!("{n} events in the stream"),
        testkit::wait::DEFAULT_PATIENCE,
        || async {
            let events = stream_events(nats_url, stream).await;
            if events.len() >= n {
                Ok(events)
            } else {
                Err(format!("{} events", events.len()))
            }
        },
    )
    .await
}

/// Reads a stream's events; an absent stream has none. NATS itself must
/// answer: an unreachable server is a test failure, never "no events".
pub async fn stream_events(nats_url: &str, stream: &str) -> Vec<UserEvent> {
    // One server, or a cluster's, comma-separated (as NATS_URL takes them).
    let servers: Vec<&str> = nats_url.split(',').collect();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(servers)
        .await
        .unwrap_or_else(|e| panic!("NATS at {nats_url} must answer to read the stream: {e}"));
    let js = jetstream::new(client);
    let mut stream = match js.get_stream(stream).await {
        Ok(stream) => stream,
        Err(e) if e.to_string().contains("not found") => return Vec::new(),
        Err(e) => panic!("reading the stream {stream}: {e}"),
    };
    let info = stream
        .info()
        .await
        .unwrap_or_else(|e| panic!("reading the stream's info: {e}"));
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut events = Vec::new();
    if info.state.messages == 0 {
        return events;
    }
    for seq in first..=last {
        if let Ok(message) = stream.get_raw_message(seq).await {
            events
                .push(UserEvent::decode(&message.payload).expect("every published event decodes"));
        }
    }
    events
}
