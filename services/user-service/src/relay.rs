//! The outbox relay: publishes committed events to JetStream.
//!
//! Handlers wake it right after a commit, so events leave within
//! milliseconds; a periodic sweep also looks for unpublished rows, so a crash
//! between commit and publish, or a NATS outage, only delays events. A row's
//! stamp is committed only after JetStream acknowledged it (a `duplicate` ack
//! counts: the stream already has it). Rows go out in commit order; if a
//! partial failure lets a later event of a user overtake an earlier one, the
//! consumer's version guard still keeps the newest state.

use std::{
    collections::HashSet,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, message::PublishMessage};
use events::EventType;
use service_kit::nats::NatsConfig;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::{config::RelayConfig, outbox};

/// How often the backlog gauges and the pruning of old rows run at most.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// How long the last drain may take when shutting down.
const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    nats: NatsConfig,
    config: RelayConfig,
    wake: Arc<Notify>,
    stream_ready: bool,
}

/// What one drain did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub published: usize,
    pub duplicates: usize,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        nats: NatsConfig,
        config: RelayConfig,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            pool,
            js,
            nats,
            config,
            wake,
            stream_ready: false,
        }
    }

    /// Publishes until `shutdown` completes, then drains once more so that
    /// changes committed just before the signal leave too.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        if let Err(e) = self.ensure_stream().await {
            tracing::warn!(
                error = format!("{e:#}"),
                "the stream is not ready; the first publish tries again"
            );
        }
        let mut last_housekeeping: Option<Instant> = None;
        let mut last_prune = Instant::now();
        loop {
            if let Err(e) = self.drain().await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "outbox relay could not publish; retrying on the next sweep"
                );
            }
            if last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_INTERVAL) {
                self.report_backlog().await;
                last_housekeeping = Some(Instant::now());
            }
            if last_prune.elapsed() >= PRUNE_INTERVAL {
                self.prune().await;
                last_prune = Instant::now();
            }
            let sweep = self.config.sweep_interval;
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = sleep_unless_zero(sweep) => {}
            }
        }
        match tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, self.drain()).await {
            Ok(Ok(_)) => tracing::info!("outbox relay stopped"),
            Ok(Err(e)) => tracing::warn!(
                error = format!("{e:#}"),
                "outbox relay stopped with events left; they go out on the next start"
            ),
            Err(_) => tracing::warn!(
                "outbox relay stopped mid-drain; the rest goes out on the next start"
            ),
        }
    }

    /// Publishes every unpublished row no other relay holds, oldest first,
    /// in batches: each claimed and stamped, published, and committed in one
    /// transaction (three statements when every event is acknowledged:
    /// BEGIN, the claim, COMMIT).
    ///
    /// # Errors
    /// When the database fails, or JetStream does not acknowledge an event;
    /// rows acknowledged before that are stamped published all the same.
    pub async fn drain(&mut self) -> Result<Drained> {
        let mut total = Drained::default();
        loop {
            let mut tx = self.pool.begin().await.context("reading the outbox")?;
            let batch = outbox::claim(&mut tx, self.config.batch_size)
                .await
                .context("reading the outbox")?;
            if batch.is_empty() {
                tx.rollback().await.context("reading the outbox")?;
                return Ok(total);
            }
            let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= self.config.batch_size;
            let (acked, result) = self.publish(&batch).await;
            if acked.ids.is_empty() {
                tx.rollback().await.context("releasing unpublished rows")?;
            } else {
                let published: HashSet<i64> = acked.ids.iter().copied().collect();
                let unacked: Vec<i64> = batch
                    .iter()
                    .map(|row| row.id)
                    .filter(|id| !published.contains(id))
                    .collect();
                outbox::unstamp(&mut tx, &unacked)
                    .await
                    .context("releasing unpublished rows")?;
                tx.commit().await.context("stamping published rows")?;
            }
            total.published += acked.ids.len();
            total.duplicates += acked.duplicates;
            result?;
            if !full {
                return Ok(total);
            }
        }
    }

    /// Makes sure the stream exists (and has its replicas), once: at start-up,
    /// so that the consumers find it before the first event, and again after
    /// a publish failed (the stream may have been deleted).
    ///
    /// # Errors
    /// When JetStream refuses, or does not answer within the publish timeout
    /// (while NATS is down the client's requests can wait for the reconnect
    /// far longer than their own timeout).
    async fn ensure_stream(&mut self) -> Result<()> {
        if self.stream_ready {
            return Ok(());
        }
        let spec = self.nats.stream_spec();
        let ensure = events::ensure_stream(&self.js, &spec);
        match tokio::time::timeout(self.config.publish_timeout, ensure).await {
            Ok(Ok(_)) => {
                self.stream_ready = true;
                Ok(())
            }
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("creating the stream")),
            Err(_) => Err(anyhow::anyhow!("timed out looking up the stream")),
        }
    }

    /// Sends a batch without waiting between messages, then collects the acks
    /// in order. Returns the acknowledged rows and the first error, if any.
    async fn publish(&mut self, batch: &[outbox::Pending]) -> (Acked, Result<()>) {
        let mut acked = Acked::default();
        if let Err(e) = self.ensure_stream().await {
            return (acked, Err(e));
        }
        let mut in_flight = Vec::with_capacity(batch.len());
        let mut result = Ok(());
        for row in batch {
            let event = &row.event.0;
            let message = PublishMessage::build()
                .payload(event.encode().into())
                .message_id(event.event_id.to_string());
            match self
                .js
                .send_publish(self.nats.subject.clone(), message)
                .await
            {
                Ok(ack) => in_flight.push((row, Instant::now(), ack)),
                Err(e) => {
                    result = Err(anyhow::Error::new(e).context("sending an event"));
                    break;
                }
            }
        }
        // Await the acks together: a batch costs one timeout at most, not
        // one per message, when JetStream is unreachable.
        let acks =
            futures::future::join_all(in_flight.into_iter().map(|(row, sent, ack)| async move {
                let outcome = ack.await;
                (row, sent.elapsed(), outcome)
            }))
            .await;
        for (row, took, outcome) in acks {
            match outcome {
                Ok(ack) => {
                    metrics::histogram!("outbox_publish_duration_seconds")
                        .record(took.as_secs_f64());
                    let since_commit = (chrono::Utc::now() - row.created_at)
                        .to_std()
                        .unwrap_or_default();
                    metrics::histogram!("outbox_commit_to_ack_seconds")
                        .record(since_commit.as_secs_f64());
                    if ack.duplicate {
                        acked.duplicates += 1;
                        metrics::counter!("outbox_duplicate_acks_total").increment(1);
                    }
                    metrics::counter!("outbox_published_total").increment(1);
                    acked.ids.push(row.id);
                }
                Err(e) => {
                    metrics::counter!("outbox_publish_errors_total").increment(1);
                    if result.is_ok() {
                        result = Err(anyhow::Error::new(e)
                            .context(format!("publishing outbox row {}", row.id)));
                    }
                    // The stream may be gone (deleted by an operator): look
                    // it up again before the next attempt.
                    self.stream_ready = false;
                }
            }
        }
        (acked, result)
    }

    async fn report_backlog(&self) {
        match outbox::backlog(&self.pool).await {
            Ok(backlog) => {
                #[allow(clippy::cast_precision_loss)]
                metrics::gauge!("outbox_unpublished").set(backlog.unpublished as f64);
                metrics::gauge!("outbox_oldest_unpublished_age_seconds")
                    .set(backlog.oldest_age.as_secs_f64());
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the outbox backlog"),
        }
    }

    async fn prune(&self) {
        match outbox::prune(&self.pool, self.config.retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned published outbox rows"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the outbox"),
        }
    }
}

/// Describes the relay's metrics and exports its counters at zero, so
/// dashboards show 0 rather than no data before the first event.
pub fn register_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "user_writes_total",
        "Committed user changes, by event type."
    );
    describe_counter!(
        "outbox_published_total",
        "Outbox events acknowledged by JetStream."
    );
    describe_counter!(
        "outbox_duplicate_acks_total",
        "Publishes JetStream acknowledged as duplicates."
    );
    describe_counter!(
        "outbox_publish_errors_total",
        "Publishes that failed or timed out (retried later)."
    );
    describe_gauge!(
        "outbox_unpublished",
        "Outbox rows not yet acknowledged by JetStream."
    );
    describe_gauge!(
        "outbox_oldest_unpublished_age_seconds",
        "Age of the oldest unpublished outbox row."
    );
    describe_histogram!(
        "outbox_publish_duration_seconds",
        "Time from sending an event to its JetStream ack."
    );
    describe_histogram!(
        "outbox_commit_to_ack_seconds",
        "Time from the commit of a change to the JetStream ack of its event."
    );
    for kind in [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDeleted,
    ] {
        metrics::counter!("user_writes_total", "type" => kind.as_str()).increment(0);
    }
    metrics::counter!("outbox_published_total").increment(0);
    metrics::counter!("outbox_duplicate_acks_total").increment(0);
    metrics::counter!("outbox_publish_errors_total").increment(0);
}

#[derive(Default)]
struct Acked {
    ids: Vec<i64>,
    duplicates: usize,
}

async fn sleep_unless_zero(period: Duration) {
    if period.is_zero() {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(period).await;
    }
}
