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

use anyhow::{Context, Result};

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

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn number(name: &str, default: u64) -> Result<u64> {
    let value = var(name, &default.to_string());
    value
        .trim()
        .parse()
        .with_context(|| format!("{name}={value:?} is not a whole number"))
}

impl Settings {
    /// # Errors
    /// When a variable is set to something that is not a whole number.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            rate: number("LOADTEST_RATE", 50)?,
            notifications_host: var("LOADTEST_NOTIFICATIONS_HOST", "http://localhost:8081")
                .trim_end_matches('/')
                .to_owned(),
            create_weight: usize::try_from(number("LOADTEST_CREATE_WEIGHT", 1)?)?,
            update_weight: usize::try_from(number("LOADTEST_UPDATE_WEIGHT", 3)?)?,
            read_weight: usize::try_from(number("LOADTEST_READ_WEIGHT", 0)?)?,
            poll_interval: Duration::from_millis(number("LOADTEST_POLL_MS", 5)?.max(1)),
            watch: Budget {
                writes_per_s: u32::try_from(number("LOADTEST_WATCH_RATE", 50)?.max(1))?,
                reads_per_s: u32::try_from(number("LOADTEST_POLL_RATE", 200)?.max(1))?,
            },
            propagation_timeout: Duration::from_secs(number(
                "LOADTEST_PROPAGATION_TIMEOUT_SECS",
                30,
            )?),
            settle_timeout: Duration::from_secs(number("LOADTEST_SETTLE_SECS", 60)?),
            database_url: var(
                "LOADTEST_DATABASE_URL",
                "postgres://postgres@localhost:5432/users_db",
            ),
            baseline: Duration::from_secs(number("LOADTEST_BASELINE_SECS", 10)?),
            out_dir: PathBuf::from(var("LOADTEST_OUT_DIR", "target/loadtest")),
            write_log: std::env::var_os("LOADTEST_WRITE_LOG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        })
    }
}
