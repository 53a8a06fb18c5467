//! What goose's users do: the write mix (creates, updates, reads of the
//! copy), one `async fn` per transaction, and the state they share. Every
//! acknowledged write goes to the current [`Tracker`]; the capacity mode
//! swaps in a fresh one per step, and paces every request with its step's
//! [`Pacer`] instead of goose's throttle.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use anyhow::Result;
use goose::prelude::*;
use rand::seq::SliceRandom;
use serde_json::json;

use crate::{
    pacer::Pacer,
    propagation::{Tracker, Written, lock},
    settings::Settings,
    write_log::{Attempt, Fate, WriteLog},
};

/// State goose's transactions share (they are plain functions).
struct Shared {
    tracker: Mutex<Arc<Tracker>>,
    /// Paces every request when set (the capacity mode's steps).
    pacer: Mutex<Option<Arc<Pacer>>>,
    notifications_host: String,
    /// Users this run created, to update and read.
    users: Mutex<Vec<i64>>,
    run: String,
    counter: AtomicU64,
    write_log: Option<WriteLog>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get().expect("set before the attack starts")
}

/// Sets up the shared state, with `tracker` receiving the writes.
///
/// # Errors
/// When the write log cannot be created.
pub fn init(settings: &Settings, tracker: Arc<Tracker>) -> Result<()> {
    let _ = SHARED.set(Shared {
        tracker: Mutex::new(tracker),
        pacer: Mutex::new(None),
        notifications_host: settings.notifications_host.clone(),
        users: Mutex::new(Vec::new()),
        run: format!("{:08x}", rand::random::<u32>()),
        counter: AtomicU64::new(0),
        write_log: settings
            .write_log
            .as_deref()
            .map(WriteLog::create)
            .transpose()?,
    });
    Ok(())
}

/// Makes `tracker` receive the writes acknowledged from now on.
pub fn track_with(tracker: Arc<Tracker>) {
    *lock(&shared().tracker) = tracker;
}

fn tracker() -> Arc<Tracker> {
    Arc::clone(&lock(&shared().tracker))
}

/// Makes `pacer` pace every request from now on (None: goose's throttle, if
/// any, as goose documents it).
pub fn pace_with(pacer: Option<Arc<Pacer>>) {
    *lock(&shared().pacer) = pacer;
}

/// Waits for the pacer's next due time, if one is set.
async fn pace() {
    let pacer = lock(&shared().pacer).clone();
    if let Some(pacer) = pacer {
        pacer.wait().await;
    }
}

/// Writes out what the write log holds, if there is one.
///
/// # Errors
/// When the file cannot be written.
pub fn flush_write_log() -> Result<()> {
    match SHARED.get().and_then(|s| s.write_log.as_ref()) {
        Some(log) => log.flush(),
        None => Ok(()),
    }
}

/// The weights of the transactions as goose gets them: creates always run
/// (an update or read needs a user), so their weight is at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub create: usize,
    pub update: usize,
    pub read: usize,
}

impl Mix {
    pub fn of(settings: &Settings) -> Self {
        Self {
            create: settings.create_weight.max(1),
            update: settings.update_weight,
            read: settings.read_weight,
        }
    }

    /// The share of goose's requests that are writes (creates and updates).
    #[allow(clippy::cast_precision_loss)]
    pub fn write_share(&self) -> f64 {
        let writes = (self.create + self.update) as f64;
        writes / (writes + self.read as f64)
    }
}

/// The scenario every goose user runs.
///
/// # Errors
/// When goose refuses a weight.
pub fn scenario(mix: Mix) -> Result<Scenario> {
    let mut scenario = scenario!("Writes").register_transaction(
        transaction!(create_user)
            .set_name("create")
            .set_weight(mix.create)?,
    );
    if mix.update > 0 {
        scenario = scenario.register_transaction(
            transaction!(update_user)
                .set_name("update")
                .set_weight(mix.update)?,
        );
    }
    if mix.read > 0 {
        scenario = scenario.register_transaction(
            transaction!(read_copy)
                .set_name("read")
                .set_weight(mix.read)?,
        );
    }
    Ok(scenario)
}

/// Sends a write and, on 2xx, hands the returned state to the tracker; logs
/// the attempt when there is a write log.
async fn write(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    body: serde_json::Value,
    id: Option<i64>,
) -> TransactionResult {
    let created = method == GooseMethod::Post;
    let log = |status: Fate, acknowledged: Option<&Written>| {
        if let Some(log) = &shared().write_log {
            log.record(&Attempt {
                op: if created { "create" } else { "update" },
                id: acknowledged.map(|w| w.id).or(id),
                name: body["name"].as_str().unwrap_or_default(),
                email: body["email"].as_str().unwrap_or_default(),
                status,
                acknowledged,
                at_s: log.elapsed_s(),
            });
        }
    };
    let builder = user.get_request_builder(&method, path)?.json(&body);
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .set_request_builder(builder)
        .build();
    // Wait for the pacer or goose's throttle here, as `GooseUser::request`
    // would for the throttle, so that the latency measured below is the
    // service's, not the queue's.
    pace().await;
    let throttled = user.is_throttled;
    if throttled && let Some(throttle) = user.throttle.clone() {
        if throttle.send_async(true).await.is_err() {
            // The throttle closes when the attack ends: the write is never sent.
            return Ok(());
        }
        user.is_throttled = false;
    }
    let sent = Instant::now();
    let goose = user.request(request).await;
    let took = sent.elapsed();
    user.is_throttled = throttled;
    let mut goose = goose?;
    let response = match goose.response {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            let status = response.status();
            log(Fate::of_status(status.as_u16()), None);
            return user.set_failure(&format!("{path}: {status}"), &mut goose.request, None, None);
        }
        Err(e) => {
            log(Fate::of_error(&e), None);
            return user.set_failure(&format!("{path}: {e}"), &mut goose.request, None, None);
        }
    };
    match response.json::<Written>().await {
        Ok(written) => {
            log(Fate::Ok, Some(&written));
            if created {
                lock(&shared().users).push(written.id);
            }
            tracker().written(written, took);
            Ok(())
        }
        Err(e) => {
            // Acknowledged, but we cannot tell with what.
            log(Fate::Unknown, None);
            user.set_failure(
                &format!("{path}: unreadable body: {e}"),
                &mut goose.request,
                None,
                None,
            )
        }
    }
}

async fn create_user(user: &mut GooseUser) -> TransactionResult {
    let state = shared();
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let body = json!({"name": format!("Load {n}"), "email": format!("load-{}-{n}@loadtest.example", state.run)});
    write(user, GooseMethod::Post, "/users", body, None).await
}

async fn update_user(user: &mut GooseUser) -> TransactionResult {
    let state = shared();
    let picked = lock(&state.users).choose(&mut rand::thread_rng()).copied();
    let Some(id) = picked else {
        return create_user(user).await;
    };
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    // The email stays unique: it carries the user's own id.
    let body = json!({"name": format!("Load {n}"), "email": format!("load-{}-u{id}-{n}@loadtest.example", state.run)});
    write(
        user,
        GooseMethod::Put,
        &format!("/users/{id}"),
        body,
        Some(id),
    )
    .await
}

async fn read_copy(user: &mut GooseUser) -> TransactionResult {
    let state = shared();
    let picked = lock(&state.users).choose(&mut rand::thread_rng()).copied();
    let Some(id) = picked else { return Ok(()) };
    pace().await;
    // goose's `host` is user-service; the copy lives elsewhere.
    let url = format!("{}/notifications/user/{id}", state.notifications_host);
    let builder = user.client.get(&url);
    let request = GooseRequest::builder()
        .path(url.as_str())
        .set_request_builder(builder)
        .build();
    let _goose = user.request(request).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_share_leaves_out_reads_and_counts_creates_at_least_once() {
        let mix = |create, update, read| Mix {
            create,
            update,
            read,
        };
        assert!((mix(1, 3, 0).write_share() - 1.0).abs() < 1e-12);
        assert!((mix(1, 3, 4).write_share() - 0.5).abs() < 1e-12);
        let settings = Settings::from_vars(&service_kit::env::Vars::from_pairs([(
            "LOADTEST_CREATE_WEIGHT",
            "0",
        )]))
        .expect("settings");
        assert_eq!(Mix::of(&settings).create, 1);
    }
}
