//! Settings of the load test. goose owns the command line (`--host`,
//! `--users`, `--run-time`, …), so ours come from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LOADTEST_RATE` | `50` | requests per second, paced open loop (request *n* due at *n*/rate; goose's `--throttle-requests`, when given, replaces it); `0` = as fast as the goose users go; the capacity mode sets its own per step |
//! | `LOADTEST_NOTIFICATIONS_HOST` | `http://localhost:8081` | where the copy is read |
//! | `LOADTEST_CREATE_WEIGHT` | `1` | weight of `POST /users` |
//! | `LOADTEST_UPDATE_WEIGHT` | `3` | weight of `PUT /users/{id}` |
//! | `LOADTEST_READ_WEIGHT` | `0` | weight of reads of the copy (`GET /notifications/user/{id}`) |
//! | `LOADTEST_POLL_MS` | `5` | how often a write's arrival is polled (at first; then a tenth of its age, at most 100 ms) |
//! | `LOADTEST_WATCH_RATE` | `50` | new writes watched for arrival per second (a write to a user already watched joins it); the others are counted as unwatched |
//! | `LOADTEST_POLL_RATE` | `200` | reads of the copy per second, all watchers together |
//! | `LOADTEST_PROPAGATION_TIMEOUT_SECS` | `30` | a write not seen by then counts as a timeout |
//! | `LOADTEST_SETTLE_SECS` | `60` | how long the consistency check waits for convergence (capacity mode: how long the copy may take to catch up after a step that failed, before the next) |
//! | `LOADTEST_DATABASE_URL` | `postgres://postgres@localhost:5432/users_db` | for the raw-SQL baseline |
//! | `LOADTEST_BASELINE_SECS` | `10` | length of the raw-SQL baseline (`baseline.rs`); `0` skips it |
//! | `LOADTEST_BASELINE_WHEN` | `after-settle` (`after-load` with `LOADTEST_SYNC=stopped`) | when the baseline runs: `after-settle` (once the copy converged and the load's figures were read; the copy is then checked again, the baseline's writes included) or `after-load` (right after the load, before the drain and the consistency check: the sync still busy with the load's backlog, and the load's sync figures and convergence count the baseline's writes too) |
//! | `LOADTEST_SYNC` | `running` | `stopped`: notification-service is stopped for the whole run (stop it first; the run refuses to start while it answers): nothing is watched or checked, and the load and the baseline measure the write path alone, like for like; start it again afterwards and it applies the run's events from its durable consumer |
//! | `LOADTEST_WRITE_LOG` | unset | a file to log every write attempt and its fate to, one JSON line each (`write_log.rs`) |
//! | `LOADTEST_NOTIFICATIONS_METRICS` | the notifications host | comma-separated base URLs of every notification-service instance, whose `/metrics` give the service's own `sync_latency_seconds` over the run |
//! | `LOADTEST_COST_PROCESSES` | the stack's processes (`cost::DEFAULT_PROCESSES`) | `label=matcher\|…;…`: the processes whose CPU time per write is reported (`cost.rs`); `off` turns it off |
//! | `LOADTEST_OUT_DIR` | `target/loadtest` | where summary.json, the plots and the HTML reports go |
//!
//! The capacity mode (`capacity/`), instead of one run:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LOADTEST_CAPACITY` | `0` | `1` steps the offered write rate up until a step fails, then bisects once |
//! | `LOADTEST_CAPACITY_START` | `100` | the first step's offered writes (creates + updates) per second |
//! | `LOADTEST_CAPACITY_FACTOR` | `1.25` | each rising step offers this many times the one before (above 1) |
//! | `LOADTEST_CAPACITY_STEP_SECS` | `30` | length of a step |
//! | `LOADTEST_CAPACITY_SETTLE_SECS` | `5` | pause between steps |
//! | `LOADTEST_CAPACITY_P99_MS` | `1000` | a step holds only if the propagation p99 of its watched writes is at most this, and none of them timed out (`LOADTEST_PROPAGATION_TIMEOUT_SECS`) |
//! | `LOADTEST_CAPACITY_CONVERGE_SECS` | `5` | … and a consistency check begun within this long after it finds the copy equal to the source |
//! | `LOADTEST_CAPACITY_MIN_ACHIEVED` | `0.8` | … and it achieved at least this share of the offered write rate (the step's pacer offers it on time while fewer than the goose users, 64 unless `--users`, are in flight) |
//! | `LOADTEST_CAPACITY_MAX_STEPS` | `30` | rising steps at most, in case none fails |
//! | `LOADTEST_CAPACITY_RETRIES` | `2` | a failed step is run again at the same rate this many times; its rate fails only if every try fails |

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use service_kit::env::Vars;

use crate::{
    baseline::{SyncState, When},
    capacity::{schedule::Schedule, verdict::Criteria},
    cost::{self, Watch},
    propagation::Budget,
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests a second, paced open loop unless goose's
    /// `--throttle-requests` is given; 0 leaves the goose users unpaced.
    pub rate: u64,
    pub notifications_host: String,
    pub create_weight: usize,
    pub update_weight: usize,
    pub read_weight: usize,
    pub poll_interval: Duration,
    pub watch: Budget,
    pub propagation_timeout: Duration,
    pub settle_timeout: Duration,
    pub database_url: String,
    pub baseline: Duration,
    pub baseline_when: When,
    /// Whether notification-service syncs during the run.
    pub sync: SyncState,
    pub out_dir: PathBuf,
    pub write_log: Option<PathBuf>,
    /// Base URLs of notification-service's `/metrics`.
    pub notifications_metrics: Vec<String>,
    /// The processes whose CPU time is measured; None when turned off.
    pub cost: Option<Vec<Watch>>,
    /// Set in capacity mode.
    pub capacity: Option<Capacity>,
}

/// How the capacity mode steps.
#[derive(Debug, Clone)]
pub struct Capacity {
    pub schedule: Schedule,
    pub criteria: Criteria,
    pub step: Duration,
    pub settle: Duration,
}

impl Settings {
    /// # Errors
    /// When a variable is set to something that does not parse.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&Vars::from_env())
    }

    /// The settings `vars` give (the variables above; unset or blank ones take
    /// their default).
    ///
    /// # Errors
    /// When a variable is set to something that does not parse.
    pub fn from_vars(vars: &Vars) -> Result<Self> {
        let secs = |name, default| vars.parse(name, default).map(Duration::from_secs);
        let write_log = vars.string("LOADTEST_WRITE_LOG", "");
        let notifications_host = vars
            .string("LOADTEST_NOTIFICATIONS_HOST", "http://localhost:8081")
            .trim_end_matches('/')
            .to_owned();
        let notifications_metrics = vars
            .string("LOADTEST_NOTIFICATIONS_METRICS", &notifications_host)
            .split(',')
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
            .collect();
        let cost = match vars.string("LOADTEST_COST_PROCESSES", cost::DEFAULT_PROCESSES) {
            off if off == "off" => None,
            spec => Some(
                cost::parse_processes(&spec)
                    .with_context(|| format!("LOADTEST_COST_PROCESSES={spec:?} is not valid"))?,
            ),
        };
        let sync = match vars.string("LOADTEST_SYNC", "running").as_str() {
            "running" => SyncState::Running,
            "stopped" => SyncState::Stopped,
            other => bail!("LOADTEST_SYNC={other:?} is not valid: running or stopped"),
        };
        // With the sync running, after the settle by default: the load's
        // sync figures and its convergence are then its own, and the
        // baseline shares the cores with the sync of its own writes only,
        // as the load did. With it stopped there is nothing to settle.
        let default_when = match sync {
            SyncState::Running => "after-settle",
            SyncState::Stopped => "after-load",
        };
        let baseline_when = match vars.string("LOADTEST_BASELINE_WHEN", default_when).as_str() {
            "after-load" | "after_load" => When::AfterLoad,
            "after-settle" | "after_settle" => When::AfterSettle,
            other => {
                bail!("LOADTEST_BASELINE_WHEN={other:?} is not valid: after-load or after-settle")
            }
        };
        let capacity = Capacity::from_vars(vars)?;
        if sync == SyncState::Stopped {
            if capacity.is_some() {
                bail!(
                    "LOADTEST_SYNC=stopped measures the writes alone, and LOADTEST_CAPACITY=1 the rate the sync keeps up with: set one of them"
                );
            }
            if baseline_when == When::AfterSettle {
                bail!(
                    "LOADTEST_SYNC=stopped leaves nothing to settle: LOADTEST_BASELINE_WHEN=after-load (the default with the sync stopped) runs the baseline right after the load, the sync still stopped"
                );
            }
        }
        Ok(Self {
            rate: vars.parse("LOADTEST_RATE", 50)?,
            notifications_host,
            create_weight: vars.parse("LOADTEST_CREATE_WEIGHT", 1)?,
            update_weight: vars.parse("LOADTEST_UPDATE_WEIGHT", 3)?,
            read_weight: vars.parse("LOADTEST_READ_WEIGHT", 0)?,
            poll_interval: vars
                .millis("LOADTEST_POLL_MS", Duration::from_millis(5))?
                .max(Duration::from_millis(1)),
            watch: Budget {
                writes_per_s: vars.parse::<u32>("LOADTEST_WATCH_RATE", 50)?.max(1),
                reads_per_s: vars.parse::<u32>("LOADTEST_POLL_RATE", 200)?.max(1),
            },
            propagation_timeout: secs("LOADTEST_PROPAGATION_TIMEOUT_SECS", 30)?,
            settle_timeout: secs("LOADTEST_SETTLE_SECS", 60)?,
            database_url: vars.string(
                "LOADTEST_DATABASE_URL",
                "postgres://postgres@localhost:5432/users_db",
            ),
            baseline: secs("LOADTEST_BASELINE_SECS", 10)?,
            baseline_when,
            sync,
            out_dir: PathBuf::from(vars.string("LOADTEST_OUT_DIR", "target/loadtest")),
            write_log: (!write_log.is_empty()).then(|| PathBuf::from(write_log)),
            notifications_metrics,
            cost,
            capacity,
        })
    }
}

impl Capacity {
    /// The capacity settings, when `LOADTEST_CAPACITY` turns the mode on.
    ///
    /// # Errors
    /// When a variable does not parse or is out of its range.
    fn from_vars(vars: &Vars) -> Result<Option<Self>> {
        if !switch(vars, "LOADTEST_CAPACITY")? {
            return Ok(None);
        }
        let start: f64 = vars.parse("LOADTEST_CAPACITY_START", 100.0)?;
        let factor: f64 = vars.parse("LOADTEST_CAPACITY_FACTOR", 1.25)?;
        let step: u64 = vars.parse("LOADTEST_CAPACITY_STEP_SECS", 30)?;
        let max_p99_ms: f64 = vars.parse("LOADTEST_CAPACITY_P99_MS", 1000.0)?;
        let converge_s: f64 = vars.parse("LOADTEST_CAPACITY_CONVERGE_SECS", 5.0)?;
        let min_achieved: f64 = vars.parse("LOADTEST_CAPACITY_MIN_ACHIEVED", 0.8)?;
        let max_steps: usize = vars.parse("LOADTEST_CAPACITY_MAX_STEPS", 30)?;
        let retries: usize = vars.parse("LOADTEST_CAPACITY_RETRIES", 2)?;
        for (name, ok, range) in [
            (
                "LOADTEST_CAPACITY_START",
                start.is_finite() && start > 0.0,
                "above 0",
            ),
            (
                "LOADTEST_CAPACITY_FACTOR",
                factor.is_finite() && factor > 1.0,
                "above 1",
            ),
            ("LOADTEST_CAPACITY_STEP_SECS", step > 0, "at least 1"),
            (
                "LOADTEST_CAPACITY_P99_MS",
                max_p99_ms.is_finite() && max_p99_ms > 0.0,
                "above 0",
            ),
            (
                "LOADTEST_CAPACITY_CONVERGE_SECS",
                converge_s.is_finite() && converge_s >= 0.0,
                "0 or more",
            ),
            (
                "LOADTEST_CAPACITY_MIN_ACHIEVED",
                (0.0..=1.0).contains(&min_achieved),
                "from 0 to 1",
            ),
            ("LOADTEST_CAPACITY_MAX_STEPS", max_steps > 0, "at least 1"),
        ] {
            if !ok {
                bail!("{name} must be {range}");
            }
        }
        Ok(Some(Self {
            schedule: Schedule {
                start,
                factor,
                max_steps,
                retries,
            },
            criteria: Criteria {
                max_p99_ms,
                converge_s,
                min_achieved,
            },
            step: Duration::from_secs(step),
            settle: Duration::from_secs(vars.parse("LOADTEST_CAPACITY_SETTLE_SECS", 5)?),
        }))
    }
}

/// An on/off variable: `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`.
///
/// # Errors
/// When it is set to something else.
fn switch(vars: &Vars, name: &str) -> Result<bool> {
    match vars.string(name, "0").to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => bail!("{name}={other:?} is not valid: 1 or 0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_take_the_documented_defaults() {
        let settings = Settings::from_vars(&Vars::from_pairs([])).expect("defaults");
        assert_eq!(settings.rate, 50);
        assert_eq!(settings.notifications_host, "http://localhost:8081");
        assert_eq!(
            (
                settings.create_weight,
                settings.update_weight,
                settings.read_weight
            ),
            (1, 3, 0)
        );
        assert_eq!(settings.poll_interval, Duration::from_millis(5));
        assert_eq!(
            (settings.watch.writes_per_s, settings.watch.reads_per_s),
            (50, 200)
        );
        assert_eq!(settings.propagation_timeout, Duration::from_secs(30));
        assert_eq!(settings.settle_timeout, Duration::from_secs(60));
        assert_eq!(settings.baseline, Duration::from_secs(10));
        assert_eq!(settings.out_dir, PathBuf::from("target/loadtest"));
        assert_eq!(settings.write_log, None);
        assert_eq!(settings.baseline_when, When::AfterSettle);
        assert_eq!(settings.notifications_metrics, ["http://localhost:8081"]);
        let labels: Vec<String> = settings
            .cost
            .expect("on by default")
            .into_iter()
            .map(|w| w.label)
            .collect();
        assert!(labels.contains(&"postgres".to_owned()) && labels.contains(&"loadtest".to_owned()));
        assert!(settings.capacity.is_none(), "off by default");
    }

    #[test]
    fn the_capacity_mode_takes_the_documented_defaults() {
        let settings =
            Settings::from_vars(&Vars::from_pairs([("LOADTEST_CAPACITY", "1")])).expect("settings");
        let capacity = settings.capacity.expect("on");
        assert_eq!(
            capacity.schedule,
            Schedule {
                start: 100.0,
                factor: 1.25,
                max_steps: 30,
                retries: 2
            }
        );
        assert_eq!(
            capacity.criteria,
            Criteria {
                max_p99_ms: 1000.0,
                converge_s: 5.0,
                min_achieved: 0.8
            }
        );
        assert_eq!(capacity.step, Duration::from_secs(30));
        assert_eq!(capacity.settle, Duration::from_secs(5));
    }

    #[test]
    fn capacity_variables_override_and_bad_ones_are_named() {
        let vars = Vars::from_pairs([
            ("LOADTEST_CAPACITY", "yes"),
            ("LOADTEST_CAPACITY_START", "250"),
            ("LOADTEST_CAPACITY_FACTOR", "1.5"),
            ("LOADTEST_CAPACITY_STEP_SECS", "20"),
            ("LOADTEST_CAPACITY_SETTLE_SECS", "0"),
            ("LOADTEST_CAPACITY_P99_MS", "500"),
            ("LOADTEST_CAPACITY_CONVERGE_SECS", "10"),
            ("LOADTEST_CAPACITY_MIN_ACHIEVED", "0.7"),
            ("LOADTEST_CAPACITY_MAX_STEPS", "4"),
            ("LOADTEST_CAPACITY_RETRIES", "0"),
        ]);
        let capacity = Settings::from_vars(&vars)
            .expect("settings")
            .capacity
            .expect("on");
        assert_eq!(
            capacity.schedule,
            Schedule {
                start: 250.0,
                factor: 1.5,
                max_steps: 4,
                retries: 0
            }
        );
        assert_eq!(
            capacity.criteria,
            Criteria {
                max_p99_ms: 500.0,
                converge_s: 10.0,
                min_achieved: 0.7
            }
        );
        assert_eq!(
            (capacity.step, capacity.settle),
            (Duration::from_secs(20), Duration::ZERO)
        );
        for (name, value) in [
            ("LOADTEST_CAPACITY", "maybe"),
            ("LOADTEST_CAPACITY_START", "0"),
            ("LOADTEST_CAPACITY_START", "fast"),
            ("LOADTEST_CAPACITY_FACTOR", "1"),
            ("LOADTEST_CAPACITY_FACTOR", "NaN"),
            ("LOADTEST_CAPACITY_STEP_SECS", "0"),
            ("LOADTEST_CAPACITY_STEP_SECS", "-1"),
            ("LOADTEST_CAPACITY_SETTLE_SECS", "soon"),
            ("LOADTEST_CAPACITY_P99_MS", "0"),
            ("LOADTEST_CAPACITY_CONVERGE_SECS", "-1"),
            ("LOADTEST_CAPACITY_MIN_ACHIEVED", "1.5"),
            ("LOADTEST_CAPACITY_MAX_STEPS", "0"),
        ] {
            let mut pairs = vec![(name, value)];
            if name != "LOADTEST_CAPACITY" {
                pairs.push(("LOADTEST_CAPACITY", "1"));
            }
            let error = Settings::from_vars(&Vars::from_pairs(pairs))
                .expect_err(&format!("{name}={value}"));
            assert!(
                format!("{error:#}").contains(name),
                "{name}={value}: {error:#}"
            );
        }
        let off = Vars::from_pairs([("LOADTEST_CAPACITY", "0"), ("LOADTEST_CAPACITY_START", "0")]);
        assert!(
            Settings::from_vars(&off)
                .expect("settings")
                .capacity
                .is_none(),
            "capacity settings are not read when it is off"
        );
    }

    #[test]
    fn cost_metrics_and_baseline_settings_override_and_bad_ones_are_named() {
        let vars = Vars::from_pairs([
            ("LOADTEST_NOTIFICATIONS_HOST", "http://lb:9"),
            (
                "LOADTEST_NOTIFICATIONS_METRICS",
                "http://a:1/, http://b:2 ,",
            ),
            ("LOADTEST_COST_PROCESSES", "db=comm:postgres;me=self"),
            ("LOADTEST_BASELINE_WHEN", "after-load"),
        ]);
        let settings = Settings::from_vars(&vars).expect("settings");
        assert_eq!(settings.notifications_metrics, ["http://a:1", "http://b:2"]);
        assert_eq!(settings.cost.expect("on").len(), 2);
        assert_eq!(settings.baseline_when, When::AfterLoad);
        let off = Vars::from_pairs([("LOADTEST_COST_PROCESSES", "off")]);
        assert!(Settings::from_vars(&off).expect("settings").cost.is_none());
        for (name, value) in [
            ("LOADTEST_COST_PROCESSES", "postgres"),
            ("LOADTEST_BASELINE_WHEN", "later"),
        ] {
            let error = Settings::from_vars(&Vars::from_pairs([(name, value)]))
                .expect_err(&format!("{name}={value}"));
            assert!(
                format!("{error:#}").contains(name),
                "{name}={value}: {error:#}"
            );
        }
    }

    #[test]
    fn the_sync_is_running_unless_said_stopped_and_stopped_excludes_what_needs_it() {
        assert_eq!(
            Settings::from_vars(&Vars::from_pairs([]))
                .expect("settings")
                .sync,
            SyncState::Running
        );
        let stopped = Vars::from_pairs([("LOADTEST_SYNC", "stopped")]);
        assert_eq!(
            Settings::from_vars(&stopped).expect("settings").sync,
            SyncState::Stopped
        );
        // The baseline's default moment follows: after the settle while the
        // sync runs, right after the load when there is nothing to settle.
        assert_eq!(
            Settings::from_vars(&Vars::from_pairs([]))
                .expect("settings")
                .baseline_when,
            When::AfterSettle
        );
        assert_eq!(
            Settings::from_vars(&stopped)
                .expect("settings")
                .baseline_when,
            When::AfterLoad
        );
        let after_load = Vars::from_pairs([("LOADTEST_BASELINE_WHEN", "after-load")]);
        assert_eq!(
            Settings::from_vars(&after_load)
                .expect("settings")
                .baseline_when,
            When::AfterLoad
        );
        for (pairs, named) in [
            (vec![("LOADTEST_SYNC", "paused")], "LOADTEST_SYNC"),
            (
                vec![("LOADTEST_SYNC", "stopped"), ("LOADTEST_CAPACITY", "1")],
                "LOADTEST_CAPACITY",
            ),
            (
                vec![
                    ("LOADTEST_SYNC", "stopped"),
                    ("LOADTEST_BASELINE_WHEN", "after-settle"),
                ],
                "LOADTEST_BASELINE_WHEN",
            ),
        ] {
            let error = Settings::from_vars(&Vars::from_pairs(pairs.clone()))
                .expect_err(&format!("{pairs:?}"));
            assert!(format!("{error:#}").contains(named), "{pairs:?}: {error:#}");
        }
    }

    #[test]
    fn set_variables_override_and_bad_ones_are_named() {
        let vars = Vars::from_pairs([
            ("LOADTEST_RATE", "0"),
            ("LOADTEST_NOTIFICATIONS_HOST", "http://copy:9/"),
            ("LOADTEST_POLL_MS", "0"),
            ("LOADTEST_WATCH_RATE", "0"),
            ("LOADTEST_WRITE_LOG", "writes.jsonl"),
        ]);
        let settings = Settings::from_vars(&vars).expect("settings");
        assert_eq!(settings.rate, 0);
        assert_eq!(settings.notifications_host, "http://copy:9");
        assert_eq!(
            settings.poll_interval,
            Duration::from_millis(1),
            "at least 1 ms"
        );
        assert_eq!(settings.watch.writes_per_s, 1, "at least 1");
        assert_eq!(settings.write_log, Some(PathBuf::from("writes.jsonl")));
        let error = Settings::from_vars(&Vars::from_pairs([("LOADTEST_SETTLE_SECS", "soon")]))
            .expect_err("not a number");
        assert!(
            format!("{error:#}").contains("LOADTEST_SETTLE_SECS"),
            "{error:#}"
        );
    }
}
