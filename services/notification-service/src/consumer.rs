//! The durable JetStream consumer that keeps the copy in sync.
//!
//! A dispatcher pulls messages and hands each to one of N workers chosen by
//! user id (one by default: see [`crate::config::DEFAULT_WORKERS`]), so within
//! an instance the events of one user are applied one at a time and in
//! delivery order (no compare-and-set lost to a sibling worker). Several
//! instances may pull from the one durable consumer: each write is a
//! compare-and-set on the copy's version, so one user's events applied by two
//! instances at once still leave the newest. A message is acknowledged only
//! after MongoDB has its effect, or a newer event of its user is about to
//! replace it (see below). When MongoDB fails, the worker retries the same message
//! with backoff, telling JetStream it is still working on it, so nothing is
//! dropped and the user's later events wait behind it. Messages that can
//! never be applied (not JSON, unknown type) are stored as dead letters and
//! terminated; the consumer goes on.
//!
//! Under a backlog a worker takes up to 256 messages at once and writes only
//! the newest event of each user among them; the older ones are acknowledged
//! as stale (an event carries the whole state, and the newer one stays
//! unacknowledged until written). It writes them in at most two commands:
//! one insert of the creates of users it does not know, one update of the
//! rest, guarded so that only an older copy is replaced (or a missing one
//! inserted); a write those commands could not settle (a copy already there
//! for an insert, one as new or newer for an update) is applied one by one,
//! reading the copy first. A worker remembers the version of each copy
//! it wrote ([`Known`]), so a duplicate or superseded event costs no I/O.
//! Measured on FerretDB at 20,000 copies (its CPU per event): an insert
//! alone 0.68 ms, in a batch of 64 0.05 ms; an update 1.3 to 1.6 ms either
//! way, against 2.3 ms for the read and the update it replaces.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{
    self, AckKind, Message,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    stream::{ClusterInfo, Stream},
};
use chrono::Utc;
use events::{EventType, UserEvent};
use futures::StreamExt;
use service_kit::{nats::NatsConfig, telemetry::FailuresInARow};
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    config::ConsumerConfig,
    store::{BatchWrite, DeadLetter, NotificationStore, Outcome},
};

/// First and largest wait between retries of a failed MongoDB write.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Wait before trying again to reach JetStream at start-up.
const SETUP_RETRY: Duration = Duration::from_secs(1);
/// How long one attempt at the stream and consumer may take. A request NATS
/// refuses for want of permission (creating a stream user-service has not
/// created yet, where only it may) is never answered: the client would wait
/// its whole request timeout (10 s) before trying again.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the consumer's pending and redelivered counts are exported.
const INFO_INTERVAL: Duration = Duration::from_secs(2);
/// Each pull asks for up to this many messages and lasts at most
/// `PULL_EXPIRES`, with heartbeats from the server every `PULL_HEARTBEAT`.
/// A pull that reached a consumer whose leader had just died (a NATS cluster
/// electing another) is answered by no one; a short pull bounds how long an
/// instance waits before asking again (async-nats's default is 30 s).
const PULL_BATCH: usize = 200;
const PULL_EXPIRES: Duration = Duration::from_secs(5);
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);
/// Wait before a new pull after the last one failed.
const REPULL_DELAY: Duration = Duration::from_millis(250);

pub struct Consumer {
    js: jetstream::Context,
    nats: NatsConfig,
    config: ConsumerConfig,
    store: NotificationStore,
}

/// What a worker is handed.
enum Task {
    Event(Message, Box<UserEvent>),
    Poison(Message, String),
}

impl Consumer {
    pub fn new(
        js: jetstream::Context,
        nats: NatsConfig,
        config: ConsumerConfig,
        store: NotificationStore,
    ) -> Self {
        Self {
            js,
            nats,
            config,
            store,
        }
    }

    /// Creates the stream (if user-service has not yet) and the durable
    /// consumer (if absent). Idempotent.
    ///
    /// # Errors
    /// When JetStream is unreachable or refuses the configuration.
    pub async fn setup(&self) -> Result<(Stream, PullConsumer)> {
        let stream = events::ensure_stream(&self.js, &self.nats.stream_spec())
            .await
            .context("creating the stream")?;
        let consumer = stream
            .get_or_create_consumer(
                &self.config.name,
                pull::Config {
                    durable_name: Some(self.config.name.clone()),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: self.config.ack_wait,
                    max_ack_pending: self.config.max_ack_pending,
                    filter_subject: self.nats.subject.clone(),
                    ..Default::default()
                },
            )
            .await
            .context("creating the durable consumer")?;
        Ok((stream, consumer))
    }

    /// Consumes until `shutdown` completes: then stops pulling, lets the
    /// workers finish what they were handed, and returns. Messages pulled
    /// but not acknowledged are redelivered to the next run.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // The first failure is logged at `info`: on a cluster whose accounts
        // let only user-service create the stream, a notification-service
        // started first is refused until user-service has.
        let mut failures = FailuresInARow::default();
        let (stream, consumer) = loop {
            tokio::select! {
                () = &mut shutdown => return,
                setup = tokio::time::timeout(SETUP_TIMEOUT, self.setup()) => {
                    let error = match setup {
                        Ok(Ok(ready)) => break ready,
                        Err(_) => format!("JetStream did not answer within {SETUP_TIMEOUT:?}"),
                        Ok(Err(e)) => format!("{e:#}"),
                    };
                    if failures.failed() {
                        tracing::warn!(error, "JetStream still not ready; retrying");
                    } else {
                        tracing::info!(error, "JetStream not ready (the stream may not exist yet); retrying");
                    }
                    tokio::time::sleep(SETUP_RETRY).await;
                }
            }
        };
        tracing::info!(consumer = %self.config.name, stream = %self.nats.stream, "consuming");

        let (stop_workers, workers_stopped) = tokio::sync::watch::channel(false);
        let mut workers = JoinSet::new();
        let mut queues = Vec::with_capacity(self.config.workers);
        let capacity = usize::try_from(self.config.max_ack_pending)
            .unwrap_or(1024)
            .div_ceil(self.config.workers)
            .max(1);
        for _ in 0..self.config.workers {
            let (tx, rx) = mpsc::channel(capacity);
            queues.push(tx);
            workers.spawn(work(
                rx,
                self.store.clone(),
                workers_stopped.clone(),
                KNOWN_MAX / self.config.workers,
            ));
        }

        // Beside the pulls, never in their way: while NATS elects a new
        // leader, an info request can wait seconds for its answer.
        let info = tokio::spawn(watch_info(stream, consumer.clone()));
        'pull: loop {
            let pull = consumer
                .stream()
                .max_messages_per_batch(PULL_BATCH)
                .expires(PULL_EXPIRES)
                .heartbeat(PULL_HEARTBEAT);
            let mut messages = match pull.messages().await {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot pull from the consumer; retrying");
                    tokio::select! {
                        () = &mut shutdown => break 'pull,
                        () = tokio::time::sleep(SETUP_RETRY) => continue 'pull,
                    }
                }
            };
            loop {
                tokio::select! {
                    () = &mut shutdown => break 'pull,
                    next = messages.next() => match next {
                        Some(Ok(message)) => {
                            let (shard, task) = route(message, queues.len());
                            if queues[shard].send(task).await.is_err() {
                                break 'pull;
                            }
                        }
                        Some(Err(e)) => {
                            // No responders, missed heartbeats: the consumer's
                            // leader is gone or not yet elected. A fresh pull
                            // finds the new one; the old stream would wait out
                            // its pull (measured: 12 s with no message).
                            tracing::warn!(error = %e, "pulling messages; pulling again");
                            tokio::select! {
                                () = &mut shutdown => break 'pull,
                                () = tokio::time::sleep(REPULL_DELAY) => continue 'pull,
                            }
                        }
                        None => continue 'pull,
                    },
                }
            }
        }
        // Stop pulling; workers finish their current message (a retry loop
        // is cut short and its message redelivered later) and drain.
        info.abort();
        let _ = stop_workers.send(true);
        drop(queues);
        while workers.join_next().await.is_some() {}
        tracing::info!("consumer stopped");
    }
}

/// Decodes a message and picks its worker: by user id, so one user's events
/// are never applied concurrently.
fn route(message: Message, workers: usize) -> (usize, Task) {
    match UserEvent::decode(&message.payload) {
        Ok(event) => {
            metrics::histogram!("sync_delivery_seconds").record(since_commit(&event));
            let shard = usize::try_from(event.payload.id.unsigned_abs()).unwrap_or(0) % workers;
            (shard, Task::Event(message, Box::new(event)))
        }
        Err(e) => (0, Task::Poison(message, e.to_string())),
    }
}

/// Most tasks a worker takes from its queue at once.
const BATCH: usize = 256;

/// `known_max`: how many copies' versions it may remember.
async fn work(
    mut queue: mpsc::Receiver<Task>,
    store: NotificationStore,
    stopping: tokio::sync::watch::Receiver<bool>,
    known_max: usize,
) {
    let mut known = Known::new(known_max);
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let mut writes = Vec::new();
        // Users whose create this batch holds: their copy is most likely
        // yet to be inserted, whatever their newest event is.
        let mut created = HashSet::new();
        for task in coalesce(std::mem::take(&mut batch)) {
            match task {
                Work::Apply(message, event) => writes.push((message, event)),
                Work::Superseded(message, event) => {
                    if event.kind == EventType::UserCreated {
                        created.insert(event.payload.id);
                    }
                    // An event carries its user's whole state, and a newer
                    // one of the same user is in this batch, unacknowledged:
                    // if the process dies before writing it, JetStream
                    // redelivers it. So this one needs no write.
                    count(&event, Outcome::Stale);
                    ack(&message, AckKind::Ack).await;
                }
                Work::Poison(message, reason) => {
                    dead_letter(&store, &stopping, &message, reason).await;
                }
            }
        }
        write_batch(&store, &stopping, &mut known, writes, &created).await;
    }
}

/// Writes a batch's events, at most one per user: first events of unknown
/// users in one insert, the others in one guarded update (which also
/// inserts a missing copy), and one by one whatever those commands did not
/// settle: a copy that existed for an insert, a copy as new or newer than
/// an update (another instance or a repair got there first), a failed
/// statement or command.
async fn write_batch(
    store: &NotificationStore,
    stopping: &tokio::sync::watch::Receiver<bool>,
    known: &mut Known,
    writes: Vec<(Message, Box<UserEvent>)>,
    created: &HashSet<i32>,
) {
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    let mut one_by_one = Vec::new();
    for (message, event) in writes {
        let created_here = created.contains(&event.payload.id);
        match plan(known.get(event.payload.id), &event, created_here) {
            Plan::Skip => {
                count(&event, Outcome::Stale);
                ack(&message, AckKind::Ack).await;
            }
            Plan::Update => updates.push((message, event)),
            Plan::Insert => inserts.push((message, event)),
        }
    }

    if !inserts.is_empty() {
        let events: Vec<&UserEvent> = inserts.iter().map(|(_, event)| event.as_ref()).collect();
        let started = Instant::now();
        let inserted = store.insert_new(&events).await;
        record_write("insert", started);
        match inserted {
            Ok(inserted) => {
                for ((message, event), inserted) in inserts.into_iter().zip(inserted) {
                    if inserted {
                        applied(known, &message, &event).await;
                    } else {
                        one_by_one.push((message, event));
                    }
                }
            }
            Err(e) => {
                store_failed(&e);
                one_by_one.extend(inserts);
            }
        }
    }

    if !updates.is_empty() {
        let events: Vec<&UserEvent> = updates.iter().map(|(_, event)| event.as_ref()).collect();
        let started = Instant::now();
        let written = store.update_newer(&events).await;
        record_write("update", started);
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                store_failed(&e);
                vec![BatchWrite::Unsettled; updates.len()]
            }
        };
        for ((message, event), write) in updates.into_iter().zip(written) {
            match write {
                BatchWrite::Written => applied(known, &message, &event).await,
                BatchWrite::Unsettled => {
                    known.forget(event.payload.id);
                    one_by_one.push((message, event));
                }
            }
        }
    }

    for (message, event) in one_by_one {
        apply(store, stopping, known, &message, &event).await;
    }
}

/// How a worker writes an event, from what it knows of the user's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// The copy is at least as new: acknowledge as stale, write nothing.
    Skip,
    /// Write it over the copy if that is older, or as the copy if there is
    /// none ([`NotificationStore::update_newer`]).
    Update,
    /// Nothing known, and the user's first event (or its create was in the
    /// batch): insert.
    Insert,
}

/// `created_here`: the batch also held the user's create (superseded by
/// this event), so the copy most likely does not exist yet.
fn plan(known: Option<i64>, event: &UserEvent, created_here: bool) -> Plan {
    match known {
        Some(version) if version >= event.version => Plan::Skip,
        Some(_) => Plan::Update,
        None if event.kind == EventType::UserCreated || created_here => Plan::Insert,
        None => Plan::Update,
    }
}

/// Most copies an instance's workers remember the version of, shared among
/// them (about 40 bytes each).
const KNOWN_MAX: usize = 1_600_000;

/// The version of each copy a worker last wrote or read.
///
/// A user's events all go to one worker, and a copy's version never goes
/// down (a delete keeps it, as a tombstone), so a version known here is at
/// most the copy's: an event no newer is stale, and a newer one goes into
/// the guarded update (`version < event's`). Should the copy have moved on
/// meanwhile (another instance, or a repair), that statement fails and the
/// event is applied after a read. Only a copy removed by hand
/// is not seen: events older than the known version are then skipped, as
/// they would have been; newer ones recreate the copy, and `resync` restores
/// the rest. When full, it starts afresh (unknown copies are only read).
struct Known {
    versions: HashMap<i32, i64>,
    max: usize,
}

impl Known {
    fn new(max: usize) -> Self {
        Self {
            versions: HashMap::new(),
            max: max.max(1),
        }
    }

    fn get(&self, user_id: i32) -> Option<i64> {
        self.versions.get(&user_id).copied()
    }

    fn set(&mut self, user_id: i32, version: i64) {
        if self.versions.len() >= self.max && !self.versions.contains_key(&user_id) {
            self.versions.clear();
        }
        let known = self.versions.entry(user_id).or_insert(version);
        *known = (*known).max(version);
    }

    fn forget(&mut self, user_id: i32) {
        self.versions.remove(&user_id);
    }
}

/// What a worker does with one message of a batch.
enum Work {
    /// Write the event (the newest of its user in the batch).
    Apply(Message, Box<UserEvent>),
    /// Acknowledge as stale: a newer event of the same user is in the batch.
    Superseded(Message, Box<UserEvent>),
    Poison(Message, String),
}

/// Under a backlog a worker's queue holds several events of one user: only
/// the newest version needs a write. Keeps the batch's order otherwise.
fn coalesce(batch: Vec<Task>) -> Vec<Work> {
    let keys: Vec<Option<(i32, i64)>> = batch
        .iter()
        .map(|task| match task {
            Task::Event(_, event) => Some((event.payload.id, event.version)),
            Task::Poison(..) => None,
        })
        .collect();
    batch
        .into_iter()
        .zip(writes_needed(&keys))
        .map(|(task, write)| match task {
            Task::Event(message, event) if write => Work::Apply(message, event),
            Task::Event(message, event) => Work::Superseded(message, event),
            Task::Poison(message, reason) => Work::Poison(message, reason),
        })
        .collect()
}

/// For each `(user id, version)` of a batch (`None`: not an event), whether
/// it needs a write: only the first event of its user's newest version does.
fn writes_needed(keys: &[Option<(i32, i64)>]) -> Vec<bool> {
    let mut newest: HashMap<i32, i64> = HashMap::new();
    for &(id, version) in keys.iter().flatten() {
        let seen = newest.entry(id).or_insert(version);
        *seen = (*seen).max(version);
    }
    let mut written = HashSet::new();
    keys.iter()
        .map(|key| match *key {
            Some((id, version)) => newest.get(&id) == Some(&version) && written.insert(id),
            None => false,
        })
        .collect()
}

/// Applies one event after reading its copy, retrying until MongoDB takes it.
async fn apply(
    store: &NotificationStore,
    stopping: &tokio::sync::watch::Receiver<bool>,
    known: &mut Known,
    message: &Message,
    event: &UserEvent,
) {
    let Some((outcome, version)) = retry(message, stopping, || store.apply_seen(event)).await
    else {
        return;
    };
    known.set(event.payload.id, version);
    if outcome == Outcome::Applied {
        record_latency(event);
    }
    count(event, outcome);
    tracing::debug!(
        user_id = event.payload.id,
        version = event.version,
        outcome = outcome.as_str(),
        "event"
    );
    ack(message, AckKind::Ack).await;
}

/// Books an event a batch command wrote.
async fn applied(known: &mut Known, message: &Message, event: &UserEvent) {
    known.set(event.payload.id, event.version);
    record_latency(event);
    count(event, Outcome::Applied);
    ack(message, AckKind::Ack).await;
}

fn record_latency(event: &UserEvent) {
    metrics::histogram!("sync_latency_seconds").record(since_commit(event));
}

/// Seconds since `event`'s change committed (0 if this clock is behind).
fn since_commit(event: &UserEvent) -> f64 {
    (Utc::now() - event.occurred_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64()
}

/// How long one batch command (`insert` or `update`) took MongoDB.
fn record_write(command: &'static str, started: Instant) {
    metrics::histogram!("sync_write_seconds", "command" => command)
        .record(started.elapsed().as_secs_f64());
}

fn store_failed(error: &mongodb::error::Error) {
    metrics::counter!("sync_store_errors_total").increment(1);
    tracing::warn!(error = %error, "MongoDB batch write failed; applying its events one by one");
}

fn count(event: &UserEvent, outcome: Outcome) {
    metrics::counter!("sync_events_total", "type" => event.kind.as_str(), "outcome" => outcome.as_str()).increment(1);
}

async fn dead_letter(
    store: &NotificationStore,
    stopping: &tokio::sync::watch::Receiver<bool>,
    message: &Message,
    reason: String,
) {
    let sequence = message
        .info()
        .map(|i| i.stream_sequence)
        .unwrap_or_default();
    let letter = DeadLetter {
        subject: message.subject.as_str(),
        stream_sequence: sequence,
        payload: &message.payload,
        reason: reason.clone(),
    };
    if retry(message, stopping, || store.dead_letter(&letter))
        .await
        .is_none()
    {
        return;
    }
    tracing::warn!(stream_sequence = sequence, %reason, "dead-lettered a message");
    metrics::counter!("sync_events_total", "type" => "unknown", "outcome" => "dead_lettered")
        .increment(1);
    ack(message, AckKind::Term).await;
}

/// Runs `op` until it succeeds, waiting longer after each failure and keeping
/// the message from being redelivered meanwhile. Returns `None` when told to
/// stop first; the message is then nak'ed, to be redelivered.
async fn retry<T, F, Fut>(
    message: &Message,
    stopping: &tokio::sync::watch::Receiver<bool>,
    mut op: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = mongodb::error::Result<T>>,
{
    let mut wait = RETRY_MIN;
    let mut stopping = stopping.clone();
    loop {
        match op().await {
            Ok(value) => return Some(value),
            Err(e) => {
                metrics::counter!("sync_store_errors_total").increment(1);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis(), "MongoDB write failed; retrying");
                ack(message, AckKind::Progress).await;
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stopped(&mut stopping) => {
                        ack(message, AckKind::Nak(None)).await;
                        return None;
                    }
                }
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Describes the consumer's metrics and exports its counters at zero, so
/// dashboards show 0 rather than no data before the first event.
pub fn register_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "sync_events_total",
        "Events handled, by type and outcome (applied, stale, dead_lettered)."
    );
    describe_histogram!(
        "sync_latency_seconds",
        "Time from the source commit to the MongoDB write."
    );
    describe_histogram!(
        "sync_delivery_seconds",
        "Time from the source commit to the event's arrival here."
    );
    describe_histogram!(
        "sync_write_seconds",
        "Time one batch command took MongoDB, by command (insert, update)."
    );
    describe_counter!(
        "sync_store_errors_total",
        "Failed MongoDB writes (each retried)."
    );
    describe_gauge!(
        "consumer_pending_messages",
        "Messages in the stream not yet delivered to the consumer."
    );
    describe_gauge!(
        "consumer_ack_pending_messages",
        "Messages delivered but not yet acknowledged."
    );
    describe_gauge!(
        "consumer_redelivered_messages",
        "Messages delivered more than once and not yet acknowledged."
    );
    describe_gauge!("nats_stream_messages", "Messages the stream holds.");
    for what in ["stream", "consumer"] {
        describe_gauge!(
            format!("nats_{what}_leader"),
            format!("1 on the NATS server that leads the {what}'s replica group, by peer.")
        );
        describe_gauge!(
            format!("nats_{what}_replica_current"),
            format!("1 when the peer's copy of the {what} is current (the leader is).")
        );
        describe_gauge!(
            format!("nats_{what}_replica_lag"),
            format!("Operations the peer's copy of the {what} is behind its leader.")
        );
    }
    for kind in [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDeleted,
    ] {
        for outcome in [Outcome::Applied, Outcome::Stale] {
            metrics::counter!("sync_events_total", "type" => kind.as_str(), "outcome" => outcome.as_str()).increment(0);
        }
    }
    metrics::counter!("sync_events_total", "type" => "unknown", "outcome" => "dead_lettered")
        .increment(0);
    metrics::counter!("sync_store_errors_total").increment(0);
}

/// Completes once the consumer is stopping.
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

async fn ack(message: &Message, kind: AckKind) {
    // A lost ack only means a redelivery, which the version guard absorbs.
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(error = %e, "could not acknowledge a message");
    }
}

/// Exports the consumer's counts and the cluster's state: which server
/// leads the stream and the consumer, and how far each replica of the stream
/// is behind.
/// Exports [`export_info`] every [`INFO_INTERVAL`], until aborted.
async fn watch_info(mut stream: Stream, mut consumer: PullConsumer) {
    let mut peers = Peers::default();
    let mut tick = tokio::time::interval(INFO_INTERVAL);
    loop {
        tick.tick().await;
        export_info(&mut stream, &mut consumer, &mut peers).await;
    }
}

async fn export_info(stream: &mut Stream, consumer: &mut PullConsumer, peers: &mut Peers) {
    let mut stream_cluster = None;
    match stream.info().await {
        Ok(info) => {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!("nats_stream_messages").set(info.state.messages as f64);
            stream_cluster = info.cluster.clone();
            peers.export("nats_stream", stream_cluster.as_ref());
        }
        Err(e) => tracing::debug!(error = %e, "cannot read stream info"),
    }
    match consumer.info().await {
        Ok(info) => {
            #[allow(clippy::cast_precision_loss)]
            {
                metrics::gauge!("consumer_pending_messages").set(info.num_pending as f64);
                metrics::gauge!("consumer_ack_pending_messages").set(info.num_ack_pending as f64);
                metrics::gauge!("consumer_redelivered_messages").set(info.num_redelivered as f64);
            }
            let cluster = consumer_cluster(info.cluster.as_ref(), stream_cluster.as_ref());
            peers.export("nats_consumer", cluster.as_ref());
        }
        Err(e) => tracing::debug!(error = %e, "cannot read consumer info"),
    }
}

/// The consumer's replica group. A server without clustering reports none for
/// a consumer (it does for the stream): the consumer then lives on, and is led
/// by, the stream's one server.
fn consumer_cluster(
    consumer: Option<&ClusterInfo>,
    stream: Option<&ClusterInfo>,
) -> Option<ClusterInfo> {
    match consumer {
        Some(cluster) if cluster.leader.is_some() || !cluster.replicas.is_empty() => {
            Some(cluster.clone())
        }
        _ => stream.map(|stream| ClusterInfo {
            leader: stream.leader.clone(),
            ..ClusterInfo::default()
        }),
    }
}

/// The servers seen in a stream's or consumer's replica group, so that one
/// no longer listed (or no longer leading) reads 0 rather than its last value.
#[derive(Default)]
struct Peers {
    seen: HashMap<&'static str, HashSet<String>>,
}

impl Peers {
    /// Sets `<prefix>_leader{peer}` (1 on the leader), `<prefix>_replica_current{peer}`
    /// and `<prefix>_replica_lag{peer}` (operations behind the leader) for every
    /// server of the group, the leader included (current, no lag).
    fn export(&mut self, prefix: &'static str, cluster: Option<&ClusterInfo>) {
        let mut now: Vec<PeerState> = Vec::new();
        if let Some(cluster) = cluster {
            if let Some(leader) = &cluster.leader {
                now.push(PeerState {
                    name: leader.clone(),
                    leader: true,
                    current: true,
                    lag: 0,
                });
            }
            now.extend(cluster.replicas.iter().map(|peer| PeerState {
                name: peer.name.clone(),
                leader: false,
                current: peer.current && !peer.offline,
                lag: peer.lag.unwrap_or(0),
            }));
        }
        let seen = self.seen.entry(prefix).or_default();
        for gone in seen
            .iter()
            .filter(|name| !now.iter().any(|p| &&p.name == name))
        {
            set_peer(
                prefix,
                &PeerState {
                    name: gone.clone(),
                    leader: false,
                    current: false,
                    lag: 0,
                },
            );
        }
        for peer in &now {
            set_peer(prefix, peer);
            seen.insert(peer.name.clone());
        }
    }
}

struct PeerState {
    name: String,
    leader: bool,
    current: bool,
    lag: u64,
}

fn set_peer(prefix: &str, peer: &PeerState) {
    let labels = [("peer", peer.name.clone())];
    metrics::gauge!(format!("{prefix}_leader"), &labels).set(if peer.leader { 1.0 } else { 0.0 });
    metrics::gauge!(format!("{prefix}_replica_current"), &labels).set(if peer.current {
        1.0
    } else {
        0.0
    });
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(format!("{prefix}_replica_lag"), &labels).set(peer.lag as f64);
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use events::{EventType, UserEvent, UserPayload};

    use async_nats::jetstream::stream::ClusterInfo;

    use super::{Known, Plan, consumer_cluster, plan, writes_needed};

    fn event(kind: EventType, version: i64) -> UserEvent {
        let at = Utc::now();
        let payload = UserPayload {
            id: 1,
            name: "Ann".into(),
            email: "ann@example.com".into(),
            updated_at: at,
        };
        UserEvent::new(kind, payload, version, at)
    }

    #[test]
    fn a_known_copy_is_updated_without_a_read_or_skipped_when_as_new() {
        let update = event(EventType::UserUpdated, 5);
        assert_eq!(plan(Some(4), &update, false), Plan::Update);
        assert_eq!(plan(Some(5), &update, false), Plan::Skip);
        assert_eq!(plan(Some(9), &update, true), Plan::Skip);
    }

    #[test]
    fn an_unknown_copy_is_inserted_for_a_create_and_updated_if_older_otherwise() {
        let update = event(EventType::UserUpdated, 2);
        assert_eq!(
            plan(None, &event(EventType::UserCreated, 1), false),
            Plan::Insert
        );
        assert_eq!(plan(None, &update, false), Plan::Update);
        assert_eq!(
            plan(None, &event(EventType::UserDeleted, 3), false),
            Plan::Update
        );
        // Its create was in the same batch, superseded by this update.
        assert_eq!(plan(None, &update, true), Plan::Insert);
        // A create redelivered after its user moved on is stale.
        assert_eq!(
            plan(Some(3), &event(EventType::UserCreated, 1), false),
            Plan::Skip
        );
    }

    #[test]
    fn a_known_version_never_goes_down() {
        let mut known = Known::new(10);
        known.set(1, 5);
        known.set(1, 3);
        assert_eq!(known.get(1), Some(5));
        known.forget(1);
        assert_eq!(known.get(1), None);
    }

    #[test]
    fn a_full_memory_starts_afresh_rather_than_growing() {
        let mut known = Known::new(2);
        known.set(1, 1);
        known.set(2, 1);
        known.set(2, 2);
        assert_eq!((known.get(1), known.get(2)), (Some(1), Some(2)));
        known.set(3, 1);
        assert_eq!(
            (known.get(1), known.get(2), known.get(3)),
            (None, None, Some(1))
        );
    }

    #[test]
    fn only_the_newest_event_of_each_user_in_a_batch_is_written() {
        let keys = [
            Some((1, 1)),
            Some((2, 1)),
            Some((1, 3)),
            None,
            Some((1, 2)),
            Some((2, 2)),
        ];
        assert_eq!(
            writes_needed(&keys),
            [false, false, true, false, false, true]
        );
    }

    #[test]
    fn a_duplicate_of_the_newest_event_is_written_once() {
        assert_eq!(writes_needed(&[Some((7, 4)), Some((7, 4))]), [true, false]);
    }

    #[test]
    fn a_lone_event_is_written_whatever_its_version() {
        assert_eq!(writes_needed(&[Some((3, 1))]), [true]);
        assert_eq!(writes_needed(&[Some((3, 9)), Some((4, 1))]), [true, true]);
    }

    #[test]
    fn a_consumer_without_a_replica_group_is_led_by_the_stream_server() {
        let stream = ClusterInfo {
            leader: Some("nats-1".into()),
            ..ClusterInfo::default()
        };
        let led = |c: Option<ClusterInfo>| c.and_then(|c| c.leader);
        assert_eq!(
            led(consumer_cluster(None, Some(&stream))),
            Some("nats-1".into())
        );
        assert_eq!(
            led(consumer_cluster(
                Some(&ClusterInfo::default()),
                Some(&stream)
            )),
            Some("nats-1".into())
        );
        let own = ClusterInfo {
            leader: Some("nats-2".into()),
            ..ClusterInfo::default()
        };
        assert_eq!(
            led(consumer_cluster(Some(&own), Some(&stream))),
            Some("nats-2".into())
        );
        assert_eq!(led(consumer_cluster(None, None)), None);
    }
}
