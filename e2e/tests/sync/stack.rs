use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{Names, Running, shared, wait::eventually};

/// Both services wired to the same, test-private subject and stream.
pub struct Stack {
    pub http: reqwest::Client,
    users_config: user_service::Config,
    notifications_config: notification_service::Config,
    users: Running,
    notifications: Running,
    /// Further instances of each service on the same databases, stream and
    /// durable consumer ([`Stack::start_scaled_out`]).
    more_users: Vec<Running>,
    more_notifications: Vec<Running>,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with_nats(shared::nats_url()).await
    }

    pub async fn start_with_nats(nats_url: String) -> Self {
        Self::start_with(nats_url, None).await
    }

    /// With the drift gauge measured every `interval` (the metrics registry is
    /// the process's: only one test may rely on it).
    pub async fn start_with_drift_check(interval: Duration) -> Self {
        Self::start_with(shared::nats_url(), Some(interval)).await
    }

    /// Two instances of each service: two relays on one outbox, two
    /// notification-services pulling from one durable consumer.
    pub async fn start_scaled_out() -> Self {
        let mut stack = Self::start().await;
        stack
            .more_users
            .push(start_users(stack.users_config.clone()).await);
        let mut config = stack.notifications_config.clone();
        config.user_service_url = stack.users.base.clone();
        stack
            .more_notifications
            .push(start_notifications(config).await);
        stack
    }

    /// The base URL of every user-service instance.
    pub fn users_bases(&self) -> Vec<String> {
        std::iter::once(&self.users)
            .chain(&self.more_users)
            .map(|running| running.base.clone())
            .collect()
    }

    async fn start_with(nats_url: String, drift_check: Option<Duration>) -> Self {
        testkit::init_tracing();
        let names = Names::new();
        let defaults = service_kit::env::Vars::from_pairs([]);

        let mut users_config = user_service::Config::from_vars(&defaults).expect("config");
        users_config.addr = "127.0.0.1:0".parse().expect("addr");
        users_config.database_url = shared::fresh_postgres(&names.postgres_database())
            .await
            .expect("database");
        users_config.nats.url = nats_url.clone();
        users_config.nats.subject = names.subject();
        users_config.nats.stream = names.stream();
        users_config.relay.sweep_interval = Duration::from_millis(200);

        let mut notifications_config =
            notification_service::Config::from_vars(&defaults).expect("config");
        notifications_config.addr = "127.0.0.1:0".parse().expect("addr");
        notifications_config.mongodb_uri = shared::mongodb_uri();
        notifications_config.database = names.mongodb_database();
        notifications_config.nats.url = nats_url;
        notifications_config.nats.subject = names.subject();
        notifications_config.nats.stream = names.stream();
        notifications_config.consumer.name = names.consumer();

        let users = start_users(users_config.clone()).await;
        notifications_config.user_service_url = users.base.clone();
        notifications_config.drift_check_interval = drift_check.unwrap_or(Duration::ZERO);
        let notifications = start_notifications(notifications_config.clone()).await;
        Self {
            http: reqwest::Client::new(),
            users_config,
            notifications_config,
            users,
            notifications,
            more_users: Vec::new(),
            more_notifications: Vec::new(),
        }
    }

    pub async fn stop_notifications(&mut self) {
        self.notifications.stop().await;
    }

    pub async fn restart_notifications(&mut self) {
        self.notifications.stop().await;
        self.notifications = start_notifications(self.notifications_config.clone()).await;
    }

    pub async fn restart_users(&mut self) {
        self.users.stop().await;
        self.users = start_users(self.users_config.clone()).await;
    }

    pub fn notifications_config(&self) -> &notification_service::Config {
        &self.notifications_config
    }

    /// The copy's store as the repair commands open it.
    pub async fn repair_store(&self) -> notification_service::store::NotificationStore {
        notification_service::store::NotificationStore::new(
            notification_service::startup::connect_database(&self.notifications_config)
                .await
                .expect("database"),
        )
    }

    pub fn users_url(&self, path: &str) -> String {
        format!("{}{path}", self.users.base)
    }

    pub fn notifications_url(&self, path: &str) -> String {
        format!("{}{path}", self.notifications.base)
    }

    pub async fn create_user(&self, name: &str, email: &str) -> Value {
        let response = self
            .http
            .post(self.users_url("/users"))
            .json(&json!({"name": name, "email": email}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json")
    }

    pub async fn update_user(&self, id: &Value, name: &str, email: &str) -> Value {
        self.update_user_at(&self.users.base, id, name, email).await
    }

    /// Updates a user through the user-service instance at `base`.
    pub async fn update_user_at(&self, base: &str, id: &Value, name: &str, email: &str) -> Value {
        let response = self
            .http
            .put(format!("{base}/users/{id}"))
            .json(&json!({"name": name, "email": email}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    pub async fn delete_user(&self, id: &Value) {
        let response = self
            .http
            .delete(self.users_url(&format!("/users/{id}")))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    async fn get_json(&self, url: String) -> Result<Value, String> {
        let response = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("status {}", response.status()));
        }
        response.json().await.map_err(|e| e.to_string())
    }

    /// What the copy should be: the source's users, renamed as the contract says.
    async fn expected_copy(&self) -> Result<Value, String> {
        let users = self.get_json(self.users_url("/users")).await?;
        let copies: Vec<Value> = users
            .as_array()
            .ok_or("not a list")?
            .iter()
            .map(|u| json!({"user_id": u["id"], "name": u["name"], "email": u["email"], "updated_at": u["updated_at"]}))
            .collect();
        Ok(Value::Array(copies))
    }

    /// Waits until `GET /notifications` equals `GET /users`, field for field,
    /// and returns the copy.
    pub async fn assert_converges(&self) -> Value {
        eventually(
            "the copy to equal the source",
            testkit::wait::DEFAULT_PATIENCE,
            || async {
                let expected = self.expected_copy().await?;
                let copy = self
                    .get_json(self.notifications_url("/notifications"))
                    .await?;
                if copy == expected {
                    Ok(copy)
                } else {
                    Err(format!("copy {copy}\nsource {expected}"))
                }
            },
        )
        .await
    }

    /// Waits until the copy of one user equals `expected`.
    pub async fn wait_for_copy(&self, id: &Value, expected: &Value) {
        eventually(
            &format!("the copy of user {id}"),
            testkit::wait::DEFAULT_PATIENCE,
            || async {
                let copy = self
                    .get_json(self.notifications_url(&format!("/notifications/user/{id}")))
                    .await?;
                if &copy == expected {
                    Ok(())
                } else {
                    Err(copy.to_string())
                }
            },
        )
        .await;
    }
}

async fn start_users(config: user_service::Config) -> Running {
    Running::start(
        user_service::build(config)
            .await
            .expect("user-service builds"),
    )
}

async fn start_notifications(config: notification_service::Config) -> Running {
    Running::start(
        notification_service::build(config)
            .await
            .expect("notification-service builds"),
    )
}
