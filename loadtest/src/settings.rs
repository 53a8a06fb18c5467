//! Settings of the load test. goose owns the command line (`--host`,
//! `--users`, `--run-time`, …), so ours come from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LOADTEST_RATE` | `50` | requests per second goose may send (its `--throttle-requests`); `0` = as fast as the goose users go |
//! | `LOADTEST_NOTIFICATIONS_HOST` | `http://localhost:8081` | where the copy is read |
//! | `LOADTEST_CREATE_WEIGHT` | `1` | weight of `POST /users` |
//! | `LOADTEST_UPDATE_WEIGHT` | `3` | weight of `PUT /users/{id}` |
//! | `LOADTEST_READ_WEIGHT` | `0` | weight of reads of the copy (`GET /notifications/user/{id}`) |
//! | `LOADTEST_POLL_MS` | `5` | how often a write's arrival is polled (at first; then a tenth of its age, at most 100 ms) |
//! | `LOADTEST_WATCH_RATE` | `50` | new writes watched for arrival per second (a write to a user already watched joins it); the others are counted as unwatched |
//! | `LOADTEST_POLL_RATE` | `200` | reads of the copy per second, all watchers together |
//! | `LOADTEST_PROPAGATION_TIMEOUT_SECS` | `30` | a write not seen by then counts as a timeout |
//! | `LOADTEST_SETTLE_SECS` | `60` | how long the consistency check waits for convergence |
//! | `LOADTEST_DATABASE_URL` | `postgres://postgres@localhost:5432/users_db` | for the raw-SQL baseline |
//! | `LOADTEST_BASELINE_SECS` | `10` | length of the baseline; `0` skips it |
//! | `LOADTEST_WRITE_LOG` | unset | a file to log every write attempt and its fate to, one JSON line each (`write_log.rs`) |
//! | `LOADTEST_OUT_DIR` | `target/loadtest` | where summary.json, the plot and goose's report go |

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use service_kit::env::Vars;

use crate::propagation::Budget;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Default of goose's `--throttle-requests`; 0 leaves goose unthrottled.
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
    pub out_dir: PathBuf,
    pub write_log: Option<PathBuf>,
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
        Ok(Self {
            rate: vars.parse("LOADTEST_RATE", 50)?,
            notifications_host: vars
                .string("LOADTEST_NOTIFICATIONS_HOST", "http://localhost:8081")
                .trim_end_matches('/')
                .to_owned(),
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
            out_dir: PathBuf::from(vars.string("LOADTEST_OUT_DIR", "target/loadtest")),
            write_log: (!write_log.is_empty()).then(|| PathBuf::from(write_log)),
        })
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
