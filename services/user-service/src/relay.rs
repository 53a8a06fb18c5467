//! The outbox relay: publishes committed events to JetStream.
//!
//! A handler hands the event it committed to the relay ([`Handoff`]), which
//! publishes it at once and stamps its row once JetStream acknowledged it (a
//! `duplicate` ack counts: the stream already has it): nothing is read before
//! the publish, and one statement after it stamps the rows of every
//! publish acknowledged within the stamp delay (`OUTBOX_STAMP_DELAY_MS`),
//! or of a batch's worth, whichever comes first; a drain or sweep stamps
//! the waiting rows first. A row whose stamp is lost (a crash, a failed
//! statement) is published again: a duplicate, dropped. Every row a
//! hand-off did not stamp still goes
//! out: at start-up the relay drains the whole outbox, and a periodic sweep
//! drains rows older than one sweep interval (younger ones may be a hand-off
//! in flight), so a crash between commit and publish, a request cancelled
//! between its commit and its hand-off, or another instance's death only
//! delays events. After a failed publish or stamp, or when the hand-offs
//! outrun the relay, it drains the whole outbox in outbox order (`id`)
//! instead of publishing hand-offs, until a drain succeeds. Events go out in
//! the order they were handed over, and a backlog in outbox order; if a
//! later event of a user overtakes an earlier one (two requests hand over in
//! the other order, a partial failure, two instances), the consumer's
//! version guard still keeps the newest state.

use std::{
    collections::HashSet,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, message::PublishMessage};
use chrono::{DateTime, Utc};
use events::{EventType, UserEvent};
use service_kit::nats::NatsConfig;
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::{config::RelayConfig, outbox};

/// How often the backlog gauges and the pruning of old rows run at most.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// How long the last drain may take when shutting down.
const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How many handed-over events may wait for the relay; more make it drain
/// the outbox instead.
pub const HANDOFF_CAPACITY: usize = 4096;

/// How handlers give the relay the events they committed. Never waits: when
/// the relay is that far behind, the event is left to the outbox and the
/// relay is told to drain it.
#[derive(Clone)]
pub struct Handoff {
    events: mpsc::Sender<UserEvent>,
    overflow: Arc<Notify>,
}

impl Handoff {
    /// Hands over an event whose change has committed.
    pub fn committed(&self, event: UserEvent) {
        if self.events.try_send(event).is_err() {
            metrics::counter!("outbox_handoff_overflows_total").increment(1);
            self.overflow.notify_one();
        }
    }
}

/// The relay's end of a [`Handoff`].
pub struct Inbox {
    events: mpsc::Receiver<UserEvent>,
    overflow: Arc<Notify>,
}

/// A hand-off holding at most `capacity` events, and the relay's end of it.
pub fn handoff(capacity: usize) -> (Handoff, Inbox) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let overflow = Arc::new(Notify::new());
    (
        Handoff {
            events: sender,
            overflow: overflow.clone(),
        },
        Inbox {
            events: receiver,
            overflow,
        },
    )
}

pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    nats: NatsConfig,
    config: RelayConfig,
    inbox: Inbox,
    stream_ready: bool,
    /// A publish, stamp or drain failed since the last drain of the whole
    /// outbox succeeded: hand-offs and sweeps drain the whole outbox.
    behind: bool,
    /// Events JetStream acknowledged whose rows are not stamped yet, and
    /// when they are to be.
    unstamped: Vec<Uuid>,
    stamp_due: Option<tokio::time::Instant>,
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
        inbox: Inbox,
    ) -> Self {
        Self {
            pool,
            js,
            nats,
            config,
            inbox,
            stream_ready: false,
            behind: true,
            unstamped: Vec::new(),
            stamp_due: None,
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
        let mut sweep = (!self.config.sweep_interval.is_zero()).then(|| {
            let period = self.config.sweep_interval;
            let mut sweep = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            sweep
        });
        let overflow = self.inbox.overflow.clone();
        let mut last_housekeeping: Option<Instant> = None;
        let mut last_prune = Instant::now();
        self.catch_up().await;
        loop {
            if last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_INTERVAL) {
                self.report_backlog().await;
                last_housekeeping = Some(Instant::now());
            }
            if last_prune.elapsed() >= PRUNE_INTERVAL {
                self.prune().await;
                last_prune = Instant::now();
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(first) = self.inbox.events.recv() => {
                    if self.behind {
                        self.catch_up().await;
                    } else {
                        self.publish_handed(first).await;
                    }
                }
                () = overflow.notified() => self.catch_up().await,
                () = until(self.stamp_due) => self.stamp_acknowledged().await,
                _ = tick(sweep.as_mut()) => {
                    if self.behind {
                        self.catch_up().await;
                    } else {
                        self.sweep().await;
                    }
                }
            }
        }
        self.inbox.events.close();
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

    /// Publishes `first` and the events handed over after it (a batch at
    /// most); the rows of those JetStream acknowledged are stamped with the
    /// next stamp (at once when a batch's worth waits, or a publish failed).
    async fn publish_handed(&mut self, first: UserEvent) {
        let mut events = vec![first];
        let limit = usize::try_from(self.config.batch_size).unwrap_or(usize::MAX);
        while events.len() < limit {
            match self.inbox.events.try_recv() {
                Ok(event) => events.push(event),
                Err(_) => break,
            }
        }
        let outgoing: Vec<Outgoing<'_>> = events
            .iter()
            .map(|event| Outgoing {
                event,
                committed_at: event.occurred_at,
            })
            .collect();
        let (acked, result) = self.publish(&outgoing).await;
        self.unstamped
            .extend(acked.indices.iter().map(|&i| events[i].event_id));
        if let Err(e) = result {
            tracing::warn!(
                error = format!("{e:#}"),
                "outbox relay could not publish handed-over events; draining the outbox instead"
            );
            self.behind = true;
            return self.stamp_acknowledged().await;
        }
        if self.unstamped.len() >= limit || self.config.stamp_delay.is_zero() {
            self.stamp_acknowledged().await;
        } else if self.stamp_due.is_none() {
            self.stamp_due = Some(tokio::time::Instant::now() + self.config.stamp_delay);
        }
    }

    /// Stamps, in one statement, the rows of the events JetStream
    /// acknowledged since the last stamp. When that fails they stay
    /// unpublished, and the relay drains the outbox (publishing them again,
    /// as duplicates) instead of publishing hand-offs.
    async fn stamp_acknowledged(&mut self) {
        self.stamp_due = None;
        let event_ids = std::mem::take(&mut self.unstamped);
        if let Err(e) = outbox::stamp(&self.pool, &event_ids).await {
            tracing::warn!(
                error = %e,
                "outbox relay could not stamp published rows; draining the outbox instead"
            );
            self.behind = true;
        }
    }

    /// Drains the whole outbox, dropping the hand-offs waiting (their rows
    /// are in it); the relay is no longer behind if that succeeds.
    async fn catch_up(&mut self) {
        while self.inbox.events.try_recv().is_ok() {}
        match self.drain().await {
            Ok(_) => self.behind = false,
            Err(e) => {
                self.behind = true;
                tracing::warn!(
                    error = format!("{e:#}"),
                    "outbox relay could not publish; retrying with the next hand-off or sweep"
                );
            }
        }
    }

    /// Publishes the rows a hand-off missed: those older than one sweep
    /// interval (a younger one may be in flight in a hand-off). The events
    /// handed over and still waiting go first, so that a relay lagging more
    /// than an interval behind its hand-offs does not publish them twice.
    async fn sweep(&mut self) {
        while let Ok(first) = self.inbox.events.try_recv() {
            self.publish_handed(first).await;
            if self.behind {
                return self.catch_up().await;
            }
        }
        if let Err(e) = self.drain_older_than(self.config.sweep_interval).await {
            self.behind = true;
            tracing::warn!(
                error = format!("{e:#}"),
                "outbox relay could not publish; retrying with the next hand-off or sweep"
            );
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
        self.drain_older_than(Duration::ZERO).await
    }

    /// [`Self::drain`], of the rows written at least `min_age` ago. The
    /// rows of acknowledged hand-offs are stamped first, so as not to be
    /// published again.
    async fn drain_older_than(&mut self, min_age: Duration) -> Result<Drained> {
        if !self.unstamped.is_empty() {
            self.stamp_acknowledged().await;
        }
        let mut total = Drained::default();
        loop {
            let mut tx = self.pool.begin().await.context("reading the outbox")?;
            let batch = outbox::claim(&mut tx, self.config.batch_size, min_age)
                .await
                .context("reading the outbox")?;
            if batch.is_empty() {
                tx.rollback().await.context("reading the outbox")?;
                return Ok(total);
            }
            let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= self.config.batch_size;
            let outgoing: Vec<Outgoing<'_>> = batch
                .iter()
                .map(|row| Outgoing {
                    event: &row.event.0,
                    committed_at: row.created_at,
                })
                .collect();
            let (acked, result) = self.publish(&outgoing).await;
            if acked.indices.is_empty() {
                tx.rollback().await.context("releasing unpublished rows")?;
            } else {
                let published: HashSet<usize> = acked.indices.iter().copied().collect();
                let unacked: Vec<i64> = batch
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !published.contains(i))
                    .map(|(_, row)| row.id)
                    .collect();
                outbox::unstamp(&mut tx, &unacked)
                    .await
                    .context("releasing unpublished rows")?;
                tx.commit().await.context("stamping published rows")?;
            }
            total.published += acked.indices.len();
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
    /// in order. Returns which of `batch` were acknowledged, and the first
    /// error, if any.
    async fn publish(&mut self, batch: &[Outgoing<'_>]) -> (Acked, Result<()>) {
        let mut acked = Acked::default();
        if let Err(e) = self.ensure_stream().await {
            return (acked, Err(e));
        }
        let mut in_flight = Vec::with_capacity(batch.len());
        let mut result = Ok(());
        for (index, outgoing) in batch.iter().enumerate() {
            let event = outgoing.event;
            let message = PublishMessage::build()
                .payload(event.encode().into())
                .message_id(event.event_id.to_string());
            match self
                .js
                .send_publish(self.nats.subject.clone(), message)
                .await
            {
                Ok(ack) => in_flight.push((index, outgoing, Instant::now(), ack)),
                Err(e) => {
                    result = Err(anyhow::Error::new(e).context("sending an event"));
                    break;
                }
            }
        }
        // Await the acks together: a batch costs one timeout at most, not
        // one per message, when JetStream is unreachable.
        let acks = futures::future::join_all(in_flight.into_iter().map(
            |(index, outgoing, sent, ack)| async move {
                let outcome = ack.await;
                (index, outgoing, sent.elapsed(), outcome)
            },
        ))
        .await;
        for (index, outgoing, took, outcome) in acks {
            match outcome {
                Ok(ack) => {
                    metrics::histogram!("outbox_publish_duration_seconds")
                        .record(took.as_secs_f64());
                    let since_commit = (Utc::now() - outgoing.committed_at)
                        .to_std()
                        .unwrap_or_default();
                    metrics::histogram!("outbox_commit_to_ack_seconds")
                        .record(since_commit.as_secs_f64());
                    if ack.duplicate {
                        acked.duplicates += 1;
                        metrics::counter!("outbox_duplicate_acks_total").increment(1);
                    }
                    metrics::counter!("outbox_published_total").increment(1);
                    acked.indices.push(index);
                }
                Err(e) => {
                    metrics::counter!("outbox_publish_errors_total").increment(1);
                    if result.is_ok() {
                        result = Err(anyhow::Error::new(e)
                            .context(format!("publishing event {}", outgoing.event.event_id)));
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
        "Outbox rows not yet stamped published (an acknowledged one waits up to the stamp delay)."
    );
    describe_gauge!(
        "outbox_oldest_unpublished_age_seconds",
        "Age of the oldest unpublished outbox row."
    );
    describe_counter!(
        "outbox_handoff_overflows_total",
        "Committed events the relay had no room for (left to the outbox, drained at once)."
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
    metrics::counter!("outbox_handoff_overflows_total").increment(0);
}

/// An event to publish, and when its change committed.
struct Outgoing<'a> {
    event: &'a UserEvent,
    committed_at: DateTime<Utc>,
}

/// Which events of a batch JetStream acknowledged (their indices), and how
/// many of those as duplicates.
#[derive(Default)]
struct Acked {
    indices: Vec<usize>,
    duplicates: usize,
}

/// Completes at `due`; never, when nothing is due (`None`).
async fn until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending::<()>().await,
    }
}

/// The sweep's next tick; never, when the sweep is off (`None`).
async fn tick(sweep: Option<&mut tokio::time::Interval>) {
    match sweep {
        Some(sweep) => {
            sweep.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}
