//! Configuration, read once from the environment.
//!
//! | variable | default |
//! |---|---|
//! | `NOTIFICATION_SERVICE_ADDR` | `127.0.0.1:8081` |
//! | `MONGODB_URI` | `mongodb://localhost:27017` |
//! | `MONGODB_DATABASE` | `notifications_db` |
//! | `REQUEST_TIMEOUT_MS` | `10000` (a request taking longer gets 503) |
//! | `USER_SERVICE_URL` | `http://localhost:8080` (the source, for `drift` and `resync`) |
//! | `DRIFT_CHECK_INTERVAL_SECS` | `60` (`sync_drift_users` checks one page of 1,000 users per interval; `0` never) |
//! | `NATS_URL` | `nats://localhost:4222` |
//! | `NATS_SUBJECT` | `user.events` |
//! | `NATS_STREAM` | `USER_EVENTS` |
//! | `NATS_STREAM_MAX_AGE_SECS` | `604800` (7 days) |
//! | `NATS_CONSUMER` | `notification-service` |
//! | `CONSUMER_WORKERS` | `1` (more spread the events over that many workers by user id; see [`DEFAULT_WORKERS`]) |
//! | `CONSUMER_MAX_ACK_PENDING` | `1024` |
//! | `CONSUMER_ACK_WAIT_MS` | `30000` |

use std::{net::SocketAddr, time::Duration};

use anyhow::Result;
use service_kit::{env::Vars, nats::NatsConfig};

pub const DEFAULT_ADDR: &str = "127.0.0.1:8081";
pub const DEFAULT_MONGODB_URI: &str = "mongodb://localhost:27017";
pub const DEFAULT_DATABASE: &str = "notifications_db";
pub const COLLECTION: &str = "user_notifications";
pub const DEAD_LETTER_COLLECTION: &str = "dead_letters";
/// Who does the work one instance of several should do (the drift sweep).
pub const LEASE_COLLECTION: &str = "leases";
/// One worker: its batches hold every event that arrived while it wrote the
/// last one, where N workers each write a share of them, and their commands
/// wait for each other in the database (on FerretDB all writes to the
/// collection take one lock). Measured on this stack at 931 writes/s: sync
/// latency p99 0.18 s with one worker, 0.93 s with eight
/// (docs/measurements.md, "One consumer worker"). Real MongoDB writes
/// documents in parallel; more workers may pay there, unmeasured.
pub const DEFAULT_WORKERS: usize = 1;
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1024;
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_USER_SERVICE_URL: &str = "http://localhost:8080";
pub const DEFAULT_DRIFT_CHECK_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub mongodb_uri: String,
    pub database: String,
    /// How long a request may take before its 503.
    pub request_timeout: Duration,
    /// user-service's base URL, without a trailing slash.
    pub user_service_url: String,
    /// How often the drift gauge is measured; zero: never.
    pub drift_check_interval: Duration,
    /// Where events come from.
    pub nats: NatsConfig,
    pub consumer: ConsumerConfig,
}

/// How events are consumed.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The durable consumer's name.
    pub name: String,
    pub workers: usize,
    pub max_ack_pending: i64,
    pub ack_wait: Duration,
}

impl Config {
    /// # Errors
    /// When a variable is set to a value that does not parse.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&Vars::from_env())
    }

    /// # Errors
    /// When a variable is set to a value that does not parse.
    pub fn from_vars(vars: &Vars) -> Result<Self> {
        Ok(Self {
            addr: vars.parse("NOTIFICATION_SERVICE_ADDR", DEFAULT_ADDR.parse()?)?,
            mongodb_uri: vars.string("MONGODB_URI", DEFAULT_MONGODB_URI),
            database: vars.string("MONGODB_DATABASE", DEFAULT_DATABASE),
            request_timeout: vars.millis("REQUEST_TIMEOUT_MS", DEFAULT_REQUEST_TIMEOUT)?,
            user_service_url: vars
                .string("USER_SERVICE_URL", DEFAULT_USER_SERVICE_URL)
                .trim_end_matches('/')
                .to_owned(),
            drift_check_interval: Duration::from_secs(vars.parse(
                "DRIFT_CHECK_INTERVAL_SECS",
                DEFAULT_DRIFT_CHECK_INTERVAL.as_secs(),
            )?),
            nats: NatsConfig::from_vars(vars, events::SUBJECT, events::STREAM)?,
            consumer: ConsumerConfig {
                name: vars.string("NATS_CONSUMER", events::CONSUMER),
                workers: vars.parse("CONSUMER_WORKERS", DEFAULT_WORKERS)?.max(1),
                max_ack_pending: vars
                    .parse("CONSUMER_MAX_ACK_PENDING", DEFAULT_MAX_ACK_PENDING)?
                    .max(1),
                ack_wait: vars.millis("CONSUMER_ACK_WAIT_MS", DEFAULT_ACK_WAIT)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_original_demos() {
        let config = Config::from_vars(&Vars::from_pairs([])).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8081");
        assert_eq!(config.mongodb_uri, "mongodb://localhost:27017");
        assert_eq!(config.database, "notifications_db");
        assert_eq!(config.nats.subject, "user.events");
        assert_eq!(config.consumer.name, "notification-service");
    }

    #[test]
    fn zero_workers_means_one() {
        let config = Config::from_vars(&Vars::from_pairs([("CONSUMER_WORKERS", "0")])).unwrap();
        assert_eq!(config.consumer.workers, 1);
    }
}
