//! The load test: goose drives writes at user-service while acknowledged
//! writes are watched until notification-service returns them; the CPU each
//! process of the stack spends per write is sampled from /proc; then the raw
//! SQL rate of the same writes is measured against the same PostgreSQL, and
//! the copy is checked against the source.
//!
//! ```sh
//! cargo run --release -p loadtest -- --users 16 --run-time 60s
//! LOADTEST_CAPACITY=1 target/release/loadtest    # the highest write rate that holds
//! ```
//!
//! goose's flags (`--host`, `--users`, `--hatch-rate`, `--run-time`,
//! `--throttle-requests`, `--report-file`, …) work as documented by goose;
//! this tool's own settings are environment variables (see `settings.rs`).
//! Only the original contract's endpoints and fields are used, so any
//! implementation of it can be measured the same way.
//!
//! With `LOADTEST_SYNC=stopped` (notification-service stopped beforehand)
//! nothing is watched or checked: the load and the raw SQL baseline measure
//! the write path alone.
//!
//! Exit status: 0 when the copy equals the source (in capacity mode: when a
//! step held; with the sync stopped: when the run finished), 1 otherwise, 2
//! when the test itself failed.

mod args;
mod baseline;
mod capacity;
mod consistency;
mod cost;
mod pacer;
mod propagation;
mod report;
mod service_metrics;
mod settings;
#[cfg(test)]
mod test_server;
mod workload;
mod write_log;

use std::{
    path::Path,
    process::ExitCode,
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use baseline::SyncState;
use goose::prelude::*;
use propagation::{Tracker, lock, percentile_ms};
use report::{BaselineSync, HttpMs, PropagationMs, ServiceSync, Summary};
use service_metrics::SyncHistograms;
use settings::Settings;
use workload::Mix;

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
    match &settings.capacity {
        Some(capacity) => capacity::run(&settings, capacity).await,
        None => one_run(&settings).await,
    }
}

/// A tracker for the settings' observer (one that watches no write when the
/// sync is stopped).
fn tracker(settings: &Settings) -> Arc<Tracker> {
    let mut budget = settings.watch;
    if settings.sync == SyncState::Stopped {
        budget.writes_per_s = 0;
    }
    Tracker::new(
        settings.notifications_host.clone(),
        settings.poll_interval,
        settings.propagation_timeout,
        budget,
    )
}

/// With `LOADTEST_SYNC=stopped`, makes sure notification-service is stopped:
/// a run that says so while it syncs would report figures of another
/// condition. Anything but a successful answer to `/healthz` (refused, no
/// answer within 2 s, a load balancer's 503 with no instance behind it)
/// counts as stopped.
///
/// # Errors
/// When it answers.
async fn ensure_sync_stopped(http: &reqwest::Client, host: &str) -> Result<()> {
    let url = format!("{host}/healthz");
    let answer = http
        .get(&url)
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await;
    if let Ok(response) = answer
        && response.status().is_success()
    {
        // process-compose's own default port is user-service's 8080: name the
        // stack's, as ./scripts/up and the dev shell set it.
        let port = std::env::var("PC_PORT_NUM").unwrap_or_else(|_| "8090".into());
        bail!(
            "LOADTEST_SYNC=stopped, but notification-service answers {url}: stop it first (`PC_PORT_NUM={port} process-compose process stop notification-service`; in the cluster profile both instances), or unset LOADTEST_SYNC"
        );
    }
    Ok(())
}

/// A goose attack running the write mix, with this tool's defaults (goose's
/// flags override them).
///
/// # Errors
/// When goose refuses the command line or a default.
fn attack(settings: &Settings) -> Result<GooseAttack> {
    Ok(*GooseAttack::initialize()?
        .register_scenario(workload::scenario(Mix::of(settings))?)
        .set_default(GooseDefault::Host, "http://localhost:8080")?
        .set_default(GooseDefault::Users, 8)?
        .set_default(GooseDefault::HatchRate, "8")?
        // Loopback only: no telnet or WebSocket controllers.
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?)
}

/// Reads notification-service's sync histograms from every instance; None
/// (with a warning) when one cannot be read.
async fn read_service_metrics(
    http: &reqwest::Client,
    settings: &Settings,
) -> Option<Vec<SyncHistograms>> {
    match service_metrics::read(http, &settings.notifications_metrics).await {
        Ok(buckets) => Some(buckets),
        Err(e) => {
            eprintln!("notification-service's sync latency skipped: {e:#}");
            None
        }
    }
}

/// The service's sync percentiles between two reads, if both succeeded and
/// it applied events in between, with its stages.
fn service_sync(
    before: Option<&[SyncHistograms]>,
    after: Option<&[SyncHistograms]>,
    includes_baseline_writes: bool,
) -> Option<ServiceSync> {
    let (before, after) = (before?, after?);
    Some(ServiceSync {
        ms: service_metrics::stage(before, after, |h| &h.latency)?,
        delivery_ms: service_metrics::stage(before, after, |h| &h.delivery),
        write_command_ms: service_metrics::stage(before, after, |h| &h.write),
        includes_baseline_writes,
    })
}

/// Waits for the copy of the users above `after_id` to equal the source
/// (at most `LOADTEST_SETTLE_SECS`); with the seconds from `since` to the
/// check that found it so, if one did.
async fn settle_since(
    http: &reqwest::Client,
    users_host: &str,
    settings: &Settings,
    after_id: i64,
    since: Instant,
) -> Result<(consistency::Consistency, Option<f64>)> {
    let consistency = consistency::settle(
        http,
        users_host,
        &settings.notifications_host,
        after_id,
        settings.settle_timeout,
    )
    .await?;
    let converged_after_s = consistency.in_sync().then(|| since.elapsed().as_secs_f64());
    Ok((consistency, converged_after_s))
}

/// Writes `contents` to `dir/name`, returning the path.
///
/// # Errors
/// When the file cannot be written.
fn write_out(dir: &Path, name: &str, contents: &[u8]) -> Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// One load of goose's run time: its summary, plot and goose's report.
/// Whether the copy ended equal to the source.
async fn one_run(settings: &Settings) -> Result<bool> {
    let args = args::all();
    let tracker = tracker(settings);
    workload::init(settings, Arc::clone(&tracker))?;
    let http = reqwest::Client::new();
    let sync = settings.sync;
    if sync == SyncState::Stopped {
        ensure_sync_stopped(&http, &settings.notifications_host).await?;
    }
    let users_host = args::users_host(&args);
    // The check covers the users this run creates (and so updates): those
    // above the largest id before its first write.
    let checked_after_id = consistency::high_water(&http, &users_host)
        .await
        .context("reading the largest user id before the load")?;
    let metrics_before = match sync {
        SyncState::Running => read_service_metrics(&http, settings).await,
        SyncState::Stopped => None,
    };

    let report_file = settings.out_dir.join("report.html");
    let progress = tokio::spawn(propagation::progress(Arc::clone(&tracker)));
    let meter = settings.cost.as_deref().map(cost::Meter::start);
    let started = Instant::now();
    let goose_throttle = args::value(&args, &["--throttle-requests"])
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&r| r > 0);
    // `LOADTEST_RATE` paces open loop, as the capacity mode's steps do:
    // goose's throttle under-delivers (see `pacer`). goose's own
    // `--throttle-requests`, when given, is goose's, as goose documents it.
    let pacer = (goose_throttle.is_none() && settings.rate > 0).then(|| {
        Arc::new(pacer::Pacer::new(f64::from(
            u32::try_from(settings.rate).unwrap_or(u32::MAX),
        )))
    });
    workload::pace_with(pacer);
    let rate_limit = goose_throttle.or((settings.rate > 0).then_some(settings.rate));
    let metrics = attack(settings)?
        .set_default(GooseDefault::RunTime, 50)?
        .set_default(
            GooseDefault::ReportFile,
            report_file.to_string_lossy().as_ref(),
        )?
        .execute()
        .await?;
    workload::pace_with(None);
    let load_time = started.elapsed();
    let writes = tracker.writes.load(Ordering::Relaxed);
    let cost = meter.map(|m| m.stop(writes)).unwrap_or_default();
    workload::flush_write_log()?;

    let concurrency = metrics.maximum_users.max(1);
    let baseline = |when| {
        let settings = settings.clone();
        async move {
            if settings.baseline.is_zero() || settings.baseline_when != when {
                return None;
            }
            eprintln!(
                "measuring the raw SQL baseline for {:?} with {concurrency} connections…",
                settings.baseline
            );
            match baseline::run(
                &settings.database_url,
                concurrency,
                settings.create_weight,
                settings.update_weight,
                settings.baseline,
            )
            .await
            {
                Ok(raw) => Some(raw),
                Err(e) => {
                    eprintln!("baseline skipped: {e:#}");
                    None
                }
            }
        }
    };
    let mut raw = baseline(baseline::When::AfterLoad).await;
    let writes_ended = Instant::now();

    let (consistency, converged_after_s, metrics_after) = match sync {
        SyncState::Running => {
            eprintln!("waiting for the last writes to arrive…");
            tracker.drain().await;
            progress.abort();
            let (consistency, converged_after_s) =
                settle_since(&http, &users_host, settings, checked_after_id, writes_ended).await?;
            (
                Some(consistency),
                converged_after_s,
                read_service_metrics(&http, settings).await,
            )
        }
        SyncState::Stopped => {
            progress.abort();
            (None, None, None)
        }
    };
    let includes_baseline_writes = raw.is_some();
    let mut baseline_sync = None;
    if raw.is_none() {
        raw = baseline(baseline::When::AfterSettle).await;
        if raw.is_some() {
            // The baseline's writes are relayed and synced too: wait for
            // them, so that the run leaves the stack idle and its exit
            // status covers them.
            eprintln!("waiting for the baseline's writes to arrive…");
            let (consistency, converged_after_s) = settle_since(
                &http,
                &users_host,
                settings,
                checked_after_id,
                Instant::now(),
            )
            .await?;
            baseline_sync = Some(BaselineSync {
                converged_after_s,
                consistency,
            });
        }
    }

    // With the sync stopped there is nothing to check: the run succeeded.
    let in_sync = consistency.as_ref().is_none_or(events::Drift::in_sync)
        && baseline_sync
            .as_ref()
            .is_none_or(|b| b.consistency.in_sync());
    #[allow(clippy::cast_precision_loss)]
    let write_rps = writes as f64 / load_time.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let observer_reads_per_s =
        tracker.reads.load(Ordering::Relaxed) as f64 / load_time.as_secs_f64();
    let summary = {
        let propagation = lock(&tracker.propagation);
        let http_latency = lock(&tracker.write_latency);
        let http_p50 = percentile_ms(&http_latency, 0.5);
        Summary {
            writes,
            write_rps,
            http_ms: HttpMs {
                p50: http_p50,
                p99: percentile_ms(&http_latency, 0.99),
            },
            write_p50_ms: http_p50,
            propagation_ms: PropagationMs {
                p50: percentile_ms(&propagation, 0.5),
                p90: percentile_ms(&propagation, 0.9),
                p99: percentile_ms(&propagation, 0.99),
                p999: percentile_ms(&propagation, 0.999),
                #[allow(clippy::cast_precision_loss)]
                max: propagation.max() as f64 / 1e3,
            },
            service_sync_latency_ms: service_sync(
                metrics_before.as_deref(),
                metrics_after.as_deref(),
                includes_baseline_writes,
            ),
            propagation_timeouts: tracker.timeouts.load(Ordering::Relaxed),
            converged_after_s,
            baseline_sync,
            unwatched_writes: tracker.unwatched.load(Ordering::Relaxed),
            observer_reads: tracker.reads.load(Ordering::Relaxed),
            sync,
            consistency,
            checked_after_id,
            write_efficiency: raw.map(|r| write_rps / r.rps),
            write_efficiency_conditions: raw.map(|r| {
                baseline::Conditions::new(
                    (settings.baseline_when, sync),
                    concurrency,
                    (settings.create_weight, settings.update_weight),
                    &r,
                    (rate_limit, observer_reads_per_s),
                )
            }),
            raw_sql_rps: raw.map(|r| r.rps),
            raw_sql_write_p50_ms: raw.map(|r| r.p50_ms),
            users: concurrency,
            rate_limit,
            duration_s: load_time.as_secs_f64(),
            cost,
        }
    };
    let summary_path = write_out(
        &settings.out_dir,
        "summary.json",
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    let series = report::series(&lock(&tracker.write_times), &lock(&tracker.samples));
    let title = format!(
        "user-sync: {} writes at {:.0}/s, propagation p50 {:.1} ms, p99 {:.1} ms",
        summary.writes, summary.write_rps, summary.propagation_ms.p50, summary.propagation_ms.p99
    );
    let plot_path = write_out(
        &settings.out_dir,
        "propagation.svg",
        report::svg(&series, &title).as_bytes(),
    )?;
    print!("{}", summary.to_terminal());
    println!(
        "wrote {}, {} and {}",
        summary_path.display(),
        plot_path.display(),
        report_file.display()
    );
    Ok(in_sync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sync_counts_as_stopped_unless_notification_service_answers() {
        let http = reqwest::Client::new();
        let up = test_server::serve(|line| {
            if line.starts_with("GET /healthz ") {
                ("200 OK", "{}".into())
            } else {
                ("404 Not Found", "{}".into())
            }
        })
        .await;
        let error = ensure_sync_stopped(&http, &up)
            .await
            .expect_err("it answers");
        let message = format!("{error:#}");
        assert!(
            message.contains("process-compose process stop notification-service"),
            "{message}"
        );
        assert!(message.contains("PC_PORT_NUM="), "{message}");
        let no_instance = test_server::serve(|_| ("503 Service Unavailable", "{}".into())).await;
        ensure_sync_stopped(&http, &no_instance)
            .await
            .expect("a balancer with no instance behind it");
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            format!("http://{}", listener.local_addr().expect("its address"))
        };
        ensure_sync_stopped(&http, &closed)
            .await
            .expect("nothing listening");
    }
}
