//! Tools to check and mend the copy: `drift` (how many users differ from the
//! source), `replay` (rebuild from the stream) and `resync` (rebuild from
//! user-service's API, for when the stream no longer holds everything).
//!
//! Replay and resync write through [`Mode::Repair`]: only a newer state
//! replaces a copy, or the same version when the copy differs from it (a
//! copy edited by hand). Every update is a compare-and-set on the copy's
//! version, so they are safe while the service (any number of instances)
//! runs.

use std::time::Duration;

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, consumer::DeliverPolicy};
use chrono::{DateTime, Utc};
use events::{EventType, UserEvent, UserPayload, drift::Fields};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use service_kit::telemetry::FailuresInARow;

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

pub use events::Drift;

impl SourceUser {
    fn fields(&self) -> Fields<'_> {
        Fields {
            user_id: i64::from(self.id),
            name: &self.name,
            email: &self.email,
            updated_at: self.updated_at,
        }
    }
}

impl Notification {
    /// This copy on the contract's fields.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            user_id: self.user_id,
            name: &self.name,
            email: &self.email,
            updated_at: self.updated_at,
        }
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
    get_users(http, &url).await
}

/// `GET url` of user-service, read as a list of users.
async fn get_users(http: &reqwest::Client, url: &str) -> Result<Vec<SourceUser>> {
    http.get(url)
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
    let copies = store.list().await.context("reading the copy")?;
    let source = source_users(http, users_url, false).await?;
    Ok(Drift::between(
        source.iter().map(SourceUser::fields),
        copies.iter().map(Notification::fields),
    ))
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

/// Source users the drift gauge checks per tick.
pub const DRIFT_PAGE: usize = 1000;

/// The lease whose holder measures the drift (one instance of several).
pub const DRIFT_LEASE: &str = "drift-sweep";

/// Measures the drift a page at a time, one page every `interval`, and
/// exports it as `sync_drift_users{kind}` at the end of each sweep over the
/// source, until the task is dropped. A page is [`DRIFT_PAGE`] source users
/// (`GET /users?after_id=&limit=`), each compared with its copy read by key,
/// so a tick costs the same at any number of users; `extra` is counted once a
/// sweep (live copies not matched by a source user). With N users a sweep
/// takes N / 1000 intervals; `notification-service drift` compares all at once.
///
/// With several instances, only the one holding the [`DRIFT_LEASE`] sweeps
/// (`sync_drift_sweeping` is 1 there); the others export zeros and take over
/// when its lease runs out, three intervals after it stops renewing it.
pub async fn watch_drift(
    http: reqwest::Client,
    users_url: String,
    store: NotificationStore,
    interval: Duration,
) {
    // Unique to this process (its random part and a counter).
    let holder = mongodb::bson::oid::ObjectId::new().to_hex();
    let ttl = (interval * 3).max(Duration::from_secs(10));
    let mut sweep = Sweep::new(DRIFT_PAGE);
    let mut failures = FailuresInARow::default();
    loop {
        match store.hold_lease(DRIFT_LEASE, &holder, ttl).await {
            Ok(true) => {
                metrics::gauge!("sync_drift_sweeping").set(1.0);
                match sweep.next_page(&http, &users_url, &store).await {
                    Ok(page) => {
                        failures.succeeded();
                        if let Some(drift) = page {
                            export_drift(&drift);
                        }
                    }
                    Err(e) => {
                        let error = format!("{e:#}");
                        let retry_in_s = interval.as_secs();
                        if failures.failed() {
                            tracing::warn!(error, retry_in_s, "drift check failed again");
                        } else {
                            tracing::info!(error, retry_in_s, "drift check failed; trying again");
                        }
                        sweep = Sweep::new(DRIFT_PAGE);
                    }
                }
            }
            Ok(false) => {
                // Another instance sweeps: its figures are the ones to read.
                metrics::gauge!("sync_drift_sweeping").set(0.0);
                export_drift(&Drift::default());
                sweep = Sweep::new(DRIFT_PAGE);
            }
            // MongoDB is down: nothing can be measured; keep the last figures.
            Err(e) => tracing::warn!(error = %e, "cannot take the drift sweep's lease"),
        }
        tokio::time::sleep(interval).await;
    }
}

fn export_drift(drift: &Drift) {
    #[allow(clippy::cast_precision_loss)]
    for (kind, n) in [
        ("missing", drift.missing),
        ("stale", drift.stale),
        ("extra", drift.extra),
    ] {
        metrics::gauge!("sync_drift_users", "kind" => kind).set(n as f64);
    }
}

/// A drift measurement in progress: one pass over the source, a page at a time.
#[derive(Debug)]
pub struct Sweep {
    page: usize,
    after_id: i32,
    drift: Drift,
}

impl Sweep {
    /// A sweep that reads `page` source users at a time (at least 1).
    pub fn new(page: usize) -> Self {
        Self {
            page: page.max(1),
            after_id: 0,
            drift: Drift::default(),
        }
    }

    /// Checks the next page; at the end of the source, returns the sweep's
    /// drift and starts over.
    ///
    /// # Errors
    /// When user-service or MongoDB cannot be read (the page is not counted).
    pub async fn next_page(
        &mut self,
        http: &reqwest::Client,
        users_url: &str,
        store: &NotificationStore,
    ) -> Result<Option<Drift>> {
        let url = format!(
            "{users_url}/users?after_id={}&limit={}",
            self.after_id, self.page
        );
        let page = get_users(http, &url).await?;
        let mut copies = Vec::with_capacity(page.len());
        for user in &page {
            if let Some(copy) = store.get(user.id).await.context("reading the copy")? {
                copies.push(copy);
            }
        }
        let checked = Drift::between(
            page.iter().map(SourceUser::fields),
            copies.iter().map(Notification::fields),
        );
        self.drift.checked += checked.checked;
        self.drift.missing += checked.missing;
        self.drift.stale += checked.stale;
        if let Some(last) = page.last() {
            self.after_id = last.id;
        }
        if page.len() == self.page {
            return Ok(None);
        }
        let live = usize::try_from(store.count_live().await.context("counting the copy")?)
            .unwrap_or(usize::MAX);
        let mut drift = std::mem::take(&mut self.drift);
        drift.extra = live.saturating_sub(drift.checked - drift.missing);
        self.after_id = 0;
        Ok(Some(drift))
    }
}

/// Describes the drift gauge and exports it at zero.
pub fn register_metrics() {
    metrics::describe_gauge!(
        "sync_drift_users",
        "Users whose copy differs from the source at the last drift check, by kind (missing, stale, extra)."
    );
    metrics::describe_gauge!(
        "sync_drift_sweeping",
        "1 on the instance that measures the drift (it holds the sweep's lease), 0 on the others."
    );
    metrics::gauge!("sync_drift_sweeping").set(0.0);
    for kind in ["missing", "stale", "extra"] {
        metrics::gauge!("sync_drift_users", "kind" => kind).set(0.0);
    }
}
