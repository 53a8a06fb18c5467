//! Tools to check and mend the copy: `drift` (how many users differ from the
//! source), `replay` (rebuild from the stream) and `resync` (rebuild from
//! user-service's API, for when the stream no longer holds everything).
//!
//! Replay and resync write through [`Mode::Repair`]: only a newer state
//! replaces a copy, or the same version when the copy differs from it (a
//! copy edited by hand). Under compare-and-set (MongoDB) they are safe while
//! the service runs. On FerretDB, whose updates are not atomic, a user
//! changed during the repair may need a second one; `drift` tells.

use std::{collections::HashMap, time::Duration};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, consumer::DeliverPolicy};
use chrono::{DateTime, Utc};
use events::{EventType, UserEvent, UserPayload};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::store::{Mode, Notification, NotificationStore, Write};

/// A user as user-service's `GET /users` returns it (the contract's fields,
/// and `version` when asked with `?include=version`).
#[derive(Debug, Clone, Deserialize)]
struct SourceUser {
    id: i32,
    name: String,
    email: String,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    version: Option<i64>,
}

/// How the copy differs from the source, by users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub checked: usize,
    /// In the source, not in the copy.
    pub missing: usize,
    /// In both, with another name, email or `updated_at`.
    pub stale: usize,
    /// In the copy, not in the source.
    pub extra: usize,
}

impl Drift {
    pub fn total(&self) -> usize {
        self.missing + self.stale + self.extra
    }
}

/// What a replay or resync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Events read (replay) or source users read (resync).
    pub read: usize,
    pub created: usize,
    pub fixed: usize,
    pub unchanged: usize,
    /// Copies of users the source no longer has, now tombstones (resync).
    pub removed: usize,
    /// Messages that are not user events, skipped (replay).
    pub skipped: usize,
}

impl Report {
    fn count(&mut self, write: Write) {
        match write {
            Write::Inserted => self.created += 1,
            Write::Updated => self.fixed += 1,
            Write::Unchanged => self.unchanged += 1,
        }
    }
}

/// An HTTP client for user-service.
pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")
}

async fn source_users(
    http: &reqwest::Client,
    users_url: &str,
    with_version: bool,
) -> Result<Vec<SourceUser>> {
    let url = if with_version {
        format!("{users_url}/users?include=version")
    } else {
        format!("{users_url}/users")
    };
    http.get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url} (USER_SERVICE_URL)"))?
        .json()
        .await
        .with_context(|| format!("reading GET {url}"))
}

/// Compares the copy with the source on the contract's fields.
///
/// # Errors
/// When user-service or MongoDB cannot be read.
pub async fn drift(
    http: &reqwest::Client,
    users_url: &str,
    store: &NotificationStore,
) -> Result<Drift> {
    let copies: HashMap<i64, Notification> = store
        .list()
        .await
        .context("reading the copy")?
        .into_iter()
        .map(|n| (n.user_id, n))
        .collect();
    let source = source_users(http, users_url, false).await?;
    let mut drift = Drift {
        checked: source.len(),
        ..Drift::default()
    };
    let mut seen = 0;
    for user in &source {
        match copies.get(&i64::from(user.id)) {
            None => drift.missing += 1,
            Some(copy) => {
                seen += 1;
                if copy.name != user.name
                    || copy.email != user.email
                    || copy.updated_at != user.updated_at
                {
                    drift.stale += 1;
                }
            }
        }
    }
    drift.extra = copies.len() - seen;
    Ok(drift)
}

/// Rebuilds the copy from every event the stream still holds, up to the last
/// one published when it starts.
///
/// # Errors
/// When JetStream or MongoDB fails (what was applied stays applied; running
/// it again is safe).
pub async fn replay(
    js: &jetstream::Context,
    stream_name: &str,
    subject: &str,
    store: &NotificationStore,
) -> Result<Report> {
    let mut stream = js
        .get_stream(stream_name)
        .await
        .with_context(|| format!("finding the stream {stream_name} (NATS_STREAM)"))?;
    let state = stream
        .info()
        .await
        .context("reading the stream")?
        .state
        .clone();
    let mut report = Report::default();
    if state.messages == 0 {
        return Ok(report);
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            filter_subject: subject.to_owned(),
            ..Default::default()
        })
        .await
        .context("creating a replay consumer")?;
    let mut messages = consumer.messages().await.context("reading the stream")?;
    tracing::info!(
        events = state.messages,
        first = state.first_sequence,
        last = state.last_sequence,
        "replaying"
    );
    while let Some(message) = messages.next().await {
        let message = message.context("reading the stream")?;
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        report.read += 1;
        match UserEvent::decode(&message.payload) {
            Ok(event) => report.count(
                store
                    .apply_as(&event, Mode::Repair)
                    .await
                    .context("writing to MongoDB")?,
            ),
            Err(_) => report.skipped += 1,
        }
        if report.read % 1000 == 0 {
            tracing::info!(read = report.read, of = state.messages, "replaying");
        }
        if sequence >= state.last_sequence {
            break;
        }
    }
    Ok(report)
}

/// Rebuilds the copy from user-service's API: creates missing copies, fixes
/// differing ones, and turns copies of users the source no longer has into
/// tombstones (unless written after the source was read).
///
/// # Errors
/// When user-service or MongoDB fails (running it again is safe).
pub async fn resync(
    http: &reqwest::Client,
    users_url: &str,
    store: &NotificationStore,
) -> Result<Report> {
    let started = Utc::now().timestamp_millis();
    let source = source_users(http, users_url, true).await?;
    let mut report = Report::default();
    for user in &source {
        let version = user
            .version
            .context("user-service did not return versions: it predates ?include=version")?;
        let event = UserEvent::new(
            EventType::UserUpdated,
            UserPayload {
                id: user.id,
                name: user.name.clone(),
                email: user.email.clone(),
                updated_at: user.updated_at,
            },
            version,
            Utc::now(),
        );
        report.read += 1;
        report.count(
            store
                .apply_as(&event, Mode::Repair)
                .await
                .context("writing to MongoDB")?,
        );
    }
    let known: std::collections::HashSet<i32> = source.iter().map(|u| u.id).collect();
    for copy in store.versions().await.context("reading the copy")? {
        if !copy.deleted
            && !known.contains(&copy.user_id)
            && store
                .remove(copy.user_id, started)
                .await
                .context("writing to MongoDB")?
        {
            report.removed += 1;
        }
    }
    Ok(report)
}

/// Measures the drift every `interval` and exports it as
/// `sync_drift_users{kind}`, until the task is dropped.
pub async fn watch_drift(
    http: reqwest::Client,
    users_url: String,
    store: NotificationStore,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        match drift(&http, &users_url, &store).await {
            Ok(d) => {
                #[allow(clippy::cast_precision_loss)]
                for (kind, n) in [
                    ("missing", d.missing),
                    ("stale", d.stale),
                    ("extra", d.extra),
                ] {
                    metrics::gauge!("sync_drift_users", "kind" => kind).set(n as f64);
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "drift check failed"),
        }
    }
}

/// Describes the drift gauge and exports it at zero.
pub fn register_metrics() {
    metrics::describe_gauge!(
        "sync_drift_users",
        "Users whose copy differs from the source at the last drift check, by kind (missing, stale, extra)."
    );
    for kind in ["missing", "stale", "extra"] {
        metrics::gauge!("sync_drift_users", "kind" => kind).set(0.0);
    }
}
