use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use events::{EventType, UserEvent, UserPayload};
use notification_service::{Config, store::NotificationStore};
use reqwest::StatusCode;
use serde_json::Value;
use testkit::{Names, Running, shared, wait::eventually};

/// A running notification-service on a random port, with its own database,
/// stream and consumer.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub config: Config,
    running: Running,
}

pub fn test_config(mongodb_uri: Option<String>, nats_url: Option<String>) -> Config {
    let names = Names::new();
    let mut config =
        Config::from_vars(&service_kit::env::Vars::from_pairs([])).expect("default config");
    config.addr = "127.0.0.1:0".parse().expect("addr");
    config.mongodb_uri = mongodb_uri.unwrap_or_else(shared::mongodb_uri);
    config.database = names.mongodb_database();
    config.nats.url = nats_url.unwrap_or_else(shared::nats_url);
    config.nats.subject = names.subject();
    config.nats.stream = names.stream();
    config.consumer.name = names.consumer();
    config.consumer.workers = 4;
    // No user-service here: the drift sweep would read whatever answers on
    // the default :8080 (a stack the user runs, say).
    config.drift_check_interval = std::time::Duration::ZERO;
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(test_config(None, None)).await
    }

    pub async fn spawn_with(config: Config) -> Self {
        testkit::init_tracing();
        let service = notification_service::build(config.clone())
            .await
            .expect("notification-service builds");
        let running = Running::start(service);
        Self {
            base: running.base.clone(),
            http: reqwest::Client::new(),
            config,
            running,
        }
    }

    /// Stops the service gracefully and waits for it to exit.
    pub async fn shutdown(mut self) {
        self.running.stop().await;
    }

    /// This app's `/metrics`.
    pub fn metrics(&self) -> testkit::http::Metrics {
        testkit::http::Metrics::of(&self.http, &self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    /// The copy of one user, or `None` on 404.
    pub async fn copy_of(&self, id: i32) -> Option<Value> {
        let response = self.get(&format!("/notifications/user/{id}")).await;
        match response.status() {
            StatusCode::OK => Some(response.json().await.expect("json")),
            StatusCode::NOT_FOUND => None,
            other => panic!("unexpected status {other}"),
        }
    }

    /// Waits until the copy of `id` has `name`.
    pub async fn wait_for_name(&self, id: i32, name: &str) -> Value {
        eventually(
            &format!("user {id} named {name:?}"),
            testkit::wait::DEFAULT_PATIENCE,
            || async {
                match self.copy_of(id).await {
                    Some(copy) if copy["name"] == name => Ok(copy),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
    }

    pub fn publisher(&self) -> Publisher {
        Publisher {
            nats_url: self.config.nats.url.clone(),
            subject: self.config.nats.subject.clone(),
            stream: self.config.nats.stream.clone(),
            consumer: self.config.consumer.name.clone(),
        }
    }

    pub async fn store(&self) -> NotificationStore {
        let client = mongodb::Client::with_uri_str(&self.config.mongodb_uri)
            .await
            .expect("mongo client");
        NotificationStore::new(client.database(&self.config.database))
    }
}

/// Publishes to the test's stream, as user-service would.
pub struct Publisher {
    nats_url: String,
    subject: String,
    stream: String,
    consumer: String,
}

impl Publisher {
    async fn js(&self) -> jetstream::Context {
        let client = async_nats::connect(&self.nats_url).await.expect("nats");
        let js = jetstream::new(client);
        let spec = events::StreamSpec {
            name: &self.stream,
            subject: &self.subject,
            max_age: Duration::from_secs(3600),
            replicas: 1,
        };
        events::ensure_stream(&js, &spec).await.expect("stream");
        js
    }

    pub async fn publish(&self, event: &UserEvent) {
        self.publish_raw(event.encode()).await;
    }

    pub async fn publish_raw(&self, bytes: Vec<u8>) {
        let js = self.js().await;
        js.publish(self.subject.clone(), bytes.into())
            .await
            .expect("publish")
            .await
            .expect("publish ack");
    }

    /// Waits until the consumer has acknowledged everything in the stream.
    pub async fn wait_until_consumed(&self) {
        let js = self.js().await;
        eventually(
            "the consumer to acknowledge every message",
            testkit::wait::DEFAULT_PATIENCE,
            || async {
                let mut consumer: jetstream::consumer::PullConsumer = js
                    .get_consumer_from_stream(&self.consumer, &self.stream)
                    .await
                    .map_err(|e| e.to_string())?;
                let info = consumer.info().await.map_err(|e| e.to_string())?;
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "pending {}, ack pending {}",
                        info.num_pending, info.num_ack_pending
                    ))
                }
            },
        )
        .await;
    }
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("timestamp")
        .with_timezone(&Utc)
}

/// An event for user `id` at `version`, named `name`.
pub fn event(kind: EventType, id: i32, version: i64, name: &str) -> UserEvent {
    let updated_at = at("2025-05-25T10:00:00Z") + chrono::Duration::seconds(version);
    UserEvent::new(
        kind,
        UserPayload {
            id,
            name: name.to_owned(),
            email: format!("user{id}@example.com"),
            updated_at,
        },
        version,
        Utc::now(),
    )
}
