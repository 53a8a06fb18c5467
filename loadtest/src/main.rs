//! The load test: goose drives writes at user-service while every
//! acknowledged write is watched until notification-service returns it; then
//! the copy is checked against the source, and the raw SQL rate of the same
//! writes is measured against the same PostgreSQL.
//!
//! ```sh
//! cargo run --release -p loadtest -- --users 16 --run-time 60s
//! ```
//!
//! goose's flags (`--host`, `--users`, `--hatch-rate`, `--run-time`,
//! `--throttle-requests`, `--report-file`, …) work as documented by goose;
//! this tool's own settings are environment variables (see `settings.rs`).
//! Only the original contract's endpoints and fields are used, so any
//! implementation of it can be measured the same way.
//!
//! Exit status: 0 when the copy equals the source, 1 otherwise.

mod baseline;
mod consistency;
mod propagation;
mod report;
mod settings;
mod write_log;

use std::{
    process::ExitCode,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use goose::prelude::*;
use propagation::{Tracker, Written, lock, percentile_ms};
use rand::seq::SliceRandom;
use report::{HttpMs, PropagationMs, Summary};
use serde_json::json;
use settings::Settings;
use write_log::{Attempt, Fate, WriteLog};

/// State goose's transactions share (they are plain functions).
struct Shared {
    tracker: Arc<Tracker>,
    /// Users this run created, to update and read.
    users: std::sync::Mutex<Vec<i64>>,
    run: String,
    counter: AtomicU64,
    write_log: Option<WriteLog>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get().expect("set before the attack starts")
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    std::fs::create_dir_all(&settings.out_dir)
        .with_context(|| format!("creating {}", settings.out_dir.display()))?;
    let tracker = Tracker::new(
        settings.notifications_host.clone(),
        settings.poll_interval,
        settings.propagation_timeout,
        settings.watch,
    );
    let _ = SHARED.set(Shared {
        tracker: Arc::clone(&tracker),
        users: std::sync::Mutex::new(Vec::new()),
        run: format!("{:08x}", rand::random::<u32>()),
        counter: AtomicU64::new(0),
        write_log: settings
            .write_log
            .as_deref()
            .map(WriteLog::create)
            .transpose()?,
    });

    let report_file = settings.out_dir.join("report.html");
    let mut scenario = scenario!("Writes").register_transaction(
        transaction!(create_user)
            .set_name("create")
            .set_weight(settings.create_weight.max(1))?,
    );
    if settings.update_weight > 0 {
        scenario = scenario.register_transaction(
            transaction!(update_user)
                .set_name("update")
                .set_weight(settings.update_weight)?,
        );
    }
    if settings.read_weight > 0 {
        scenario = scenario.register_transaction(
            transaction!(read_copy)
                .set_name("read")
                .set_weight(settings.read_weight)?,
        );
    }
    let progress = tokio::spawn(progress(Arc::clone(&tracker)));
    let started = Instant::now();
    let mut attack = GooseAttack::initialize()?;
    if settings.rate > 0 {
        attack = *attack.set_default(
            GooseDefault::ThrottleRequests,
            usize::try_from(settings.rate).unwrap_or(usize::MAX),
        )?;
    }
    let rate_limit = arg_value(&["--throttle-requests"])
        .and_then(|v| v.parse::<u64>().ok())
        .or((settings.rate > 0).then_some(settings.rate));
    let metrics = attack
        .register_scenario(scenario)
        .set_default(GooseDefault::Host, "http://localhost:8080")?
        .set_default(GooseDefault::Users, 8)?
        .set_default(GooseDefault::HatchRate, "8")?
        .set_default(GooseDefault::RunTime, 50)?
        .set_default(
            GooseDefault::ReportFile,
            report_file.to_string_lossy().as_ref(),
        )?
        // Loopback only: no telnet or WebSocket controllers.
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?
        .execute()
        .await?;
    let load_time = started.elapsed();
    let load_ended = Instant::now();
    let users_host = users_host_from_args();
    if let Some(log) = &shared().write_log {
        log.flush()?;
    }

    eprintln!("waiting for the last writes to arrive…");
    tracker.drain().await;
    progress.abort();

    let http = reqwest::Client::new();
    let consistency = settle(&http, &users_host, &settings).await?;
    let converged_after_s = consistency
        .in_sync()
        .then(|| load_ended.elapsed().as_secs_f64());

    let writes = tracker.writes.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let write_rps = writes as f64 / load_time.as_secs_f64();
    let concurrency = metrics.maximum_users.max(1);
    let raw = if settings.baseline.is_zero() {
        None
    } else {
        eprintln!(
            "measuring the raw SQL baseline for {:?} with {concurrency} connections…",
            settings.baseline
        );
        match baseline::raw_write_rate(
            &settings.database_url,
            concurrency,
            settings.create_weight,
            settings.update_weight,
            settings.baseline,
        )
        .await
        {
            Ok(rate) => Some(rate),
            Err(e) => {
                eprintln!("baseline skipped: {e:#}");
                None
            }
        }
    };

    let summary = {
        let propagation = lock(&tracker.propagation);
        let http_latency = lock(&tracker.write_latency);
        Summary {
            writes,
            write_rps,
            http_ms: HttpMs {
                p50: percentile_ms(&http_latency, 0.5),
                p99: percentile_ms(&http_latency, 0.99),
            },
            propagation_ms: PropagationMs {
                p50: percentile_ms(&propagation, 0.5),
                p90: percentile_ms(&propagation, 0.9),
                p99: percentile_ms(&propagation, 0.99),
                p999: percentile_ms(&propagation, 0.999),
                #[allow(clippy::cast_precision_loss)]
                max: propagation.max() as f64 / 1e3,
            },
            propagation_timeouts: tracker.timeouts.load(Ordering::Relaxed),
            converged_after_s,
            unwatched_writes: tracker.unwatched.load(Ordering::Relaxed),
            consistency,
            write_efficiency: raw.map(|r| write_rps / r),
            raw_sql_rps: raw,
            users: concurrency,
            rate_limit,
            duration_s: load_time.as_secs_f64(),
        }
    };
    let summary_path = settings.out_dir.join("summary.json");
    std::fs::write(&summary_path, serde_json::to_vec_pretty(&summary)?)?;
    let series = report::series(&lock(&tracker.write_times), &lock(&tracker.samples));
    let plot_path = settings.out_dir.join("propagation.svg");
    let title = format!(
        "user-sync: {} writes at {:.0}/s, propagation p50 {:.1} ms, p99 {:.1} ms",
        summary.writes, summary.write_rps, summary.propagation_ms.p50, summary.propagation_ms.p99
    );
    std::fs::write(&plot_path, report::svg(&series, &title))?;
    print!("{}", summary.to_terminal());
    println!(
        "wrote {}, {} and {}",
        summary_path.display(),
        plot_path.display(),
        report_file.display()
    );
    Ok(consistency.in_sync())
}

/// goose's `--host`, as given on the command line (or its default).
fn users_host_from_args() -> String {
    arg_value(&["--host", "-H"])
        .unwrap_or_else(|| "http://localhost:8080".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// The last value given to one of goose's flags `names` (as `--flag value`
/// or `--flag=value`), which goose parses but does not hand back.
fn arg_value(names: &[&str]) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let mut value = None;
    for (i, arg) in args.iter().enumerate() {
        for name in names {
            if let Some(v) = arg.strip_prefix(&format!("{name}=")) {
                value = Some(v.to_owned());
            } else if arg == name && i + 1 < args.len() {
                value = Some(args[i + 1].clone());
            }
        }
    }
    value
}

/// Checks consistency until it holds or the settle timeout passes.
async fn settle(
    http: &reqwest::Client,
    users_host: &str,
    settings: &Settings,
) -> Result<consistency::Consistency> {
    let deadline = Instant::now() + settings.settle_timeout;
    loop {
        let started = Instant::now();
        let result = consistency::check(http, users_host, &settings.notifications_host).await?;
        if result.in_sync() || Instant::now() >= deadline {
            return Ok(result);
        }
        eprintln!(
            "not converged yet (missing {}, stale {}, extra {}); checking again",
            result.missing, result.stale, result.extra
        );
        // A check reads both whole stores: at most a quarter of the time,
        // so that it does not slow down the convergence it waits for.
        tokio::time::sleep((started.elapsed() * 3).max(Duration::from_secs(1))).await;
    }
}

/// A progress line every two seconds while the load runs.
async fn progress(tracker: Arc<Tracker>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.tick().await;
    loop {
        tick.tick().await;
        let writes = tracker.writes.load(Ordering::Relaxed);
        let (p50, p99) = {
            let h = lock(&tracker.propagation);
            (percentile_ms(&h, 0.5), percentile_ms(&h, 0.99))
        };
        #[allow(clippy::cast_precision_loss)]
        let rate = writes as f64 / tracker.elapsed().as_secs_f64();
        eprintln!(
            "[{:>4.0}s] writes {writes} ({rate:.0}/s)  propagation p50 {p50:.2} ms p99 {p99:.2} ms  watching {}  timeouts {}",
            tracker.elapsed().as_secs_f64(),
            tracker.in_flight.load(Ordering::Relaxed),
            tracker.timeouts.load(Ordering::Relaxed),
        );
    }
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
    let sent = Instant::now();
    let mut goose = user.request(request).await?;
    let took = sent.elapsed();
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
            let state = shared();
            if created {
                lock(&state.users).push(written.id);
            }
            state.tracker.written(written, took);
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
    // goose's `host` is user-service; the copy lives elsewhere.
    let url = format!(
        "{}/notifications/user/{id}",
        state.tracker_notifications_host()
    );
    let builder = user.client.get(&url);
    let request = GooseRequest::builder()
        .path(url.as_str())
        .set_request_builder(builder)
        .build();
    let _goose = user.request(request).await?;
    Ok(())
}

impl Shared {
    fn tracker_notifications_host(&self) -> String {
        self.tracker.notifications_host().to_owned()
    }
}
