//! The capacity mode (`LOADTEST_CAPACITY=1`): the highest write rate one
//! stack sustains. Steps of a fixed offered write rate (creates + updates per
//! second; the mix's reads, if any, come on top), rising by a
//! factor until a step fails, then one step at the midpoint between the last
//! that held and the one that failed; a failed step is run again before its
//! rate counts as failed (`LOADTEST_CAPACITY_RETRIES`). A step holds when its
//! watched writes arrived in time and the copy equalled the source soon after it
//! ([`verdict`]); `sustainable_write_rps` is the write rate achieved in the
//! highest step that held (the offered rate is reported beside it).
//!
//! Each step is one goose attack, with the same users and mix, paced by its
//! own [`Pacer`] (open loop: goose's throttle loses ticks, see `pacer.rs`),
//! its own [`Tracker`] (the same observer budget), its own cost window, and reads of
//! notification-service's metrics before and after. Between steps the copy
//! must catch up (within `LOADTEST_SETTLE_SECS`) before a pause, so that no
//! step starts behind.

pub mod report;
pub mod schedule;
pub mod verdict;

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use goose::prelude::*;

use self::{
    report::{CapacitySummary, Conditions, Step},
    schedule::{Outcome, StepKind, requests_for, sustainable},
    verdict::{Measured, why_not},
};
use crate::{
    args, consistency, cost,
    pacer::Pacer,
    propagation::{self, Tracker, lock, percentile_ms},
    settings::{Capacity, Settings},
    workload::{self, Mix},
};

/// goose users per step unless `--users` says otherwise: enough that they
/// never set the pace. The pacer sends on time while fewer than this many
/// requests are in flight, i.e. while a write takes under `USERS / rate`
/// (160 ms at 400 requests/s); a stack slower than that fails the step on
/// its propagation or its achieved rate anyway.
const USERS: usize = 64;

/// Runs the steps; whether any held.
///
/// # Errors
/// When a goose flag sets what the steps set, goose fails, or an output
/// cannot be written. (A consistency check that fails fails its step, or
/// ends the search with the reason.)
pub async fn run(settings: &Settings, plan: &Capacity) -> Result<bool> {
    let args = args::all();
    if let Some(flag) = args::pacing_flag(&args) {
        bail!(
            "{flag}: in capacity mode each step's length and rate are set by LOADTEST_CAPACITY_STEP_SECS and the schedule (see settings.rs)"
        );
    }
    let users_host = args::users_host(&args);
    let users: usize = match args::value(&args, &["--users", "-u"]) {
        Some(users) => users.parse().unwrap_or(USERS),
        None => USERS,
    };
    let mix = Mix::of(settings);
    let http = reqwest::Client::new();
    workload::init(settings, crate::tracker(settings))?;
    // Each step's check covers the users this run creates (and so updates):
    // those above the largest id before its first step.
    let checked_after_id = consistency::high_water(&http, &users_host)
        .await
        .context("reading the largest user id before the first step")?;

    let mut done: Vec<Outcome> = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut ran = Ran {
        mix,
        users,
        checked_after_id,
    };
    let ended = loop {
        let (kind, rate) = match plan.schedule.next(&done) {
            Ok(next) => next,
            Err(end) => break end.describe().to_owned(),
        };
        let number = steps.len() + 1;
        let (requests, offered) = requests_for(rate, mix.write_share());
        eprintln!(
            "step {number} ({}): offering {offered:.1} writes/s ({requests} requests/s) for {:?}",
            match kind {
                StepKind::Ramp => "rising",
                StepKind::Bisect => "bisecting",
                StepKind::Retry => "again, after it failed",
            },
            plan.step
        );
        let step = StepPlan {
            number,
            kind,
            offered,
            requests,
            users,
        };
        let Some((step, maximum_users)) =
            run_step(settings, plan, &http, &users_host, checked_after_id, step).await?
        else {
            break format!("interrupted during step {number} (not counted)");
        };
        ran.users = maximum_users;
        done.push(Outcome {
            kind,
            rate,
            held: step.held,
        });
        let in_sync = step.converged_after_s.is_some();
        steps.push(step);
        let so_far = format!("running: {number} step(s) so far");
        write_outputs(settings, plan, &steps, &done, ran, &so_far)?;
        if plan.schedule.next(&done).is_err() {
            continue; // the loop ends with the reason
        }
        if !in_sync {
            eprintln!("waiting for the copy to catch up before the next step…");
            let caught_up = consistency::settle(
                &http,
                &users_host,
                &settings.notifications_host,
                checked_after_id,
                settings.settle_timeout,
            )
            .await;
            match caught_up {
                Ok(c) if c.in_sync() => {}
                Ok(_) => {
                    break format!(
                        "the copy had not caught up {:.0} s (LOADTEST_SETTLE_SECS) after step {number}, so the next step would start behind",
                        settings.settle_timeout.as_secs_f64()
                    );
                }
                Err(e) => {
                    break format!(
                        "no consistency check succeeded in the {:.0} s (LOADTEST_SETTLE_SECS) after step {number}: {e:#}",
                        settings.settle_timeout.as_secs_f64()
                    );
                }
            }
        }
        tokio::time::sleep(plan.settle).await;
    };
    let summary = write_outputs(settings, plan, &steps, &done, ran, &ended)?;
    print!("{}", summary.to_terminal());
    println!(
        "wrote {} (summary.json, capacity.svg, capacity.html)",
        settings.out_dir.display()
    );
    Ok(summary.sustainable_write_rps.is_some())
}

/// How the steps ran, for `summary.json`'s conditions.
#[derive(Debug, Clone, Copy)]
struct Ran {
    mix: Mix,
    /// goose users of the last step.
    users: usize,
    /// The checks covered the users above this id.
    checked_after_id: i64,
}

/// What one step offers.
struct StepPlan {
    number: usize,
    kind: StepKind,
    /// Offered writes per second.
    offered: f64,
    /// Requests per second (reads included).
    requests: usize,
    users: usize,
}

/// Runs one step: the load, the consistency check within the budget, the
/// drain of the watched writes. The step's row and goose's user count; None
/// when the attack was interrupted (Ctrl-C), which leaves no full step.
async fn run_step(
    settings: &Settings,
    plan: &Capacity,
    http: &reqwest::Client,
    users_host: &str,
    checked_after_id: i64,
    step: StepPlan,
) -> Result<Option<(Step, usize)>> {
    let tracker: Arc<Tracker> = crate::tracker(settings);
    workload::track_with(Arc::clone(&tracker));
    let pacer = Arc::new(Pacer::new(step.requests as f64));
    workload::pace_with(Some(Arc::clone(&pacer)));
    let metrics_before = crate::read_service_metrics(http, settings).await;
    let progress = tokio::spawn(propagation::progress(Arc::clone(&tracker)));
    let meter = settings.cost.as_deref().map(cost::Meter::start);
    let started = Instant::now();
    let goose = crate::attack(settings)?
        .set_default(GooseDefault::Users, step.users)?
        .set_default(GooseDefault::HatchRate, step.users.to_string().as_str())?
        .set_default(
            GooseDefault::RunTime,
            usize::try_from(plan.step.as_secs()).unwrap_or(usize::MAX),
        )?
        // One table per step would bury the steps' table.
        .set_default(GooseDefault::NoPrintMetrics, true)?
        // Goose installs its logger at the first attack. Every later one
        // fails to, after setting the log level from its own settings, and
        // says so at INFO: quiet (WARN) from the second step on, unless the
        // command line asks for a level (`-v`, `--quiet`).
        .set_default(GooseDefault::Quiet, usize::from(step.number > 1))?
        .execute()
        .await?;
    // From the first paced request, not from goose's start-up.
    let load_time = pacer.started().unwrap_or(started).elapsed();
    workload::pace_with(None);
    let writes = tracker.writes.load(Ordering::Relaxed);
    let cost = meter.map(|m| m.stop(writes)).unwrap_or_default();
    workload::flush_write_log()?;
    if goose::is_killswitch_triggered() {
        progress.abort();
        return Ok(None);
    }
    let load_ended = Instant::now();

    // A check that never succeeds fails the step; it does not end the search.
    let consistency = consistency::settle(
        http,
        users_host,
        &settings.notifications_host,
        checked_after_id,
        Duration::from_secs_f64(plan.criteria.converge_s),
    )
    .await
    .map_err(|e| format!("{e:#}"));
    let converged_after_s = consistency
        .as_ref()
        .is_ok_and(consistency::Consistency::in_sync)
        .then(|| load_ended.elapsed().as_secs_f64());
    tracker.drain().await;
    progress.abort();
    let metrics_after = crate::read_service_metrics(http, settings).await;

    #[allow(clippy::cast_precision_loss)]
    let achieved = writes as f64 / load_time.as_secs_f64();
    let watched = writes.saturating_sub(tracker.unwatched.load(Ordering::Relaxed));
    let timeouts = tracker.timeouts.load(Ordering::Relaxed);
    let (p50, p99, max, write_p50) = {
        let h = lock(&tracker.propagation);
        #[allow(clippy::cast_precision_loss)]
        let max = h.max() as f64 / 1e3;
        let w = lock(&tracker.write_latency);
        (
            percentile_ms(&h, 0.5),
            percentile_ms(&h, 0.99),
            max,
            percentile_ms(&w, 0.5),
        )
    };
    let reasons = why_not(
        &plan.criteria,
        &Measured {
            offered_write_rps: step.offered,
            achieved_write_rps: achieved,
            watched,
            p99_ms: p99,
            timeouts,
            consistency,
            converged_after_s,
        },
    );
    let row = Step {
        step: step.number,
        kind: step.kind,
        offered_write_rps: step.offered,
        achieved_write_rps: achieved,
        requests_per_s: step.requests,
        writes,
        duration_s: load_time.as_secs_f64(),
        propagation_p50_ms: p50,
        propagation_p99_ms: p99,
        propagation_max_ms: max,
        watched,
        observer_reads: tracker.reads.load(Ordering::Relaxed),
        timeouts,
        converged_after_s,
        held: reasons.is_empty(),
        why_not: (!reasons.is_empty()).then(|| reasons.join("; ")),
        write_p50_ms: write_p50,
        service_sync_latency_ms: crate::service_sync(
            metrics_before.as_deref(),
            metrics_after.as_deref(),
            false,
        ),
        cost,
    };
    let stolen = row.cost.machine_cpu.map_or_else(String::new, |m| {
        format!(
            ", {:.0}% of the CPU time stolen by the hypervisor",
            m.steal_share * 100.0
        )
    });
    eprintln!(
        "step {}: achieved {:.1} writes/s, p99 {:.1} ms, {} timeouts{stolen}: {}",
        row.step,
        row.achieved_write_rps,
        row.propagation_p99_ms,
        row.timeouts,
        row.why_not.as_deref().unwrap_or("held")
    );
    Ok(Some((row, goose.maximum_users.max(1))))
}

/// Writes `summary.json`, `capacity.svg` and `capacity.html` for the steps
/// so far (after each step, so that an interrupted search leaves them).
///
/// # Errors
/// When a file cannot be written.
fn write_outputs(
    settings: &Settings,
    plan: &Capacity,
    steps: &[Step],
    done: &[Outcome],
    ran: Ran,
    ended: &str,
) -> Result<CapacitySummary> {
    let Ran {
        mix,
        users,
        checked_after_id,
    } = ran;
    let best = sustainable(done).and_then(|(i, _)| steps.get(i));
    let summary = CapacitySummary {
        mode: "capacity",
        sustainable_write_rps: best.map(|s| s.achieved_write_rps),
        sustainable_offered_write_rps: best.map(|s| s.offered_write_rps),
        ended: ended.to_owned(),
        conditions: Conditions {
            p99_ms: plan.criteria.max_p99_ms,
            converge_s: plan.criteria.converge_s,
            min_achieved: plan.criteria.min_achieved,
            propagation_timeout_s: settings.propagation_timeout.as_secs_f64(),
            start_write_rps: plan.schedule.start,
            factor: plan.schedule.factor,
            retries: plan.schedule.retries,
            step_s: plan.step.as_secs_f64(),
            settle_s: plan.settle.as_secs_f64(),
            users,
            create_weight: mix.create,
            update_weight: mix.update,
            read_weight: mix.read,
            checked_after_id,
        },
        capacity_steps: steps.to_vec(),
        cost: best.map(|s| s.cost.clone()).unwrap_or_default(),
    };
    let title = match summary.sustainable_write_rps {
        Some(rate) => format!("user-sync capacity: sustainable {rate:.0} writes/s"),
        None => "user-sync capacity: no step held".to_owned(),
    };
    let plot = report::svg(steps, &plan.criteria, &title);
    crate::write_out(
        &settings.out_dir,
        "summary.json",
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    crate::write_out(&settings.out_dir, "capacity.svg", plot.as_bytes())?;
    crate::write_out(
        &settings.out_dir,
        "capacity.html",
        report::html(&summary, &plot).as_bytes(),
    )?;
    Ok(summary)
}
