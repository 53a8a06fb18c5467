//! Configuration, read once from the environment.
//!
//! | variable | default |
//! |---|---|
//! | `USER_SERVICE_ADDR` | `127.0.0.1:8080` |
//! | `DATABASE_URL` | `postgres://postgres@localhost:5432/users_db` |
//! | `DATABASE_MAX_CONNECTIONS` | `10` (the requests' pool; the relay has its own two, `startup::relay_pool`) |
//! | `DATABASE_ACQUIRE_TIMEOUT_MS` | `5000` (a request waiting longer for a connection gets 503) |
//! | `REQUEST_TIMEOUT_MS` | `10000` (a request taking longer gets 503; its transaction rolls back) |
//! | `NATS_URL` | `nats://localhost:4222` |
//! | `NATS_SUBJECT` | `user.events` |
//! | `NATS_STREAM` | `USER_EVENTS` |
//! | `NATS_STREAM_MAX_AGE_SECS` | `604800` (7 days) |
//! | `NATS_PUBLISH_TIMEOUT_MS` | `5000` (wait for a publish ack before retrying later) |
//! | `OUTBOX_SWEEP_INTERVAL_MS` | `1000` |
//! | `OUTBOX_BATCH_SIZE` | `256` |
//! | `OUTBOX_STAMP_DELAY_MS` | `100` (acknowledged hand-offs are stamped together; less than the sweep interval) |
//! | `OUTBOX_RETENTION_SECS` | `86400` (published rows kept 1 day) |

use std::{net::SocketAddr, time::Duration};

use anyhow::Result;
use service_kit::{env::Vars, nats::NatsConfig};

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/users_db";
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_BATCH_SIZE: i64 = 256;
pub const DEFAULT_STAMP_DELAY: Duration = Duration::from_millis(100);
pub const DEFAULT_OUTBOX_RETENTION: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before its 503.
    pub acquire_timeout: Duration,
    /// How long a request may take before its 503.
    pub request_timeout: Duration,
    pub nats: NatsConfig,
    pub relay: RelayConfig,
}

/// How the outbox relay works.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often unpublished rows are looked for even when nobody asked: the
    /// sweep that turns a crash, a missed hand-off or a NATS outage into a
    /// delay, not a loss. It takes rows older than this (a younger one may
    /// be in a hand-off in flight). Never `0` from the environment; tests that
    /// prove the sweep is needed set `0` here to turn it off.
    pub sweep_interval: Duration,
    pub batch_size: i64,
    /// How long the row of an acknowledged hand-off may wait for its stamp,
    /// so that one statement stamps the rows of many publishes (a batch's
    /// worth stamps at once; `0` stamps after each publish). Less than
    /// `sweep_interval`: other relays' sweeps take rows older than that.
    pub stamp_delay: Duration,
    /// How long the relay waits for JetStream to acknowledge a publish.
    pub publish_timeout: Duration,
    /// How long published rows stay in the outbox before they are deleted.
    pub retention: Duration,
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
        let sweep_interval = sweep_interval(vars)?;
        Ok(Self {
            addr: vars.parse("USER_SERVICE_ADDR", DEFAULT_ADDR.parse()?)?,
            database_url: vars.string("DATABASE_URL", DEFAULT_DATABASE_URL),
            max_connections: vars.parse("DATABASE_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)?,
            acquire_timeout: vars.millis("DATABASE_ACQUIRE_TIMEOUT_MS", DEFAULT_ACQUIRE_TIMEOUT)?,
            request_timeout: vars.millis("REQUEST_TIMEOUT_MS", DEFAULT_REQUEST_TIMEOUT)?,
            nats: NatsConfig::from_vars(vars, events::SUBJECT, events::STREAM)?,
            relay: RelayConfig {
                sweep_interval,
                stamp_delay: stamp_delay(vars, sweep_interval)?,
                batch_size: vars.parse("OUTBOX_BATCH_SIZE", DEFAULT_BATCH_SIZE)?.max(1),
                publish_timeout: vars.millis("NATS_PUBLISH_TIMEOUT_MS", DEFAULT_PUBLISH_TIMEOUT)?,
                retention: Duration::from_secs(
                    vars.parse("OUTBOX_RETENTION_SECS", DEFAULT_OUTBOX_RETENTION.as_secs())?,
                ),
            },
        })
    }
}

/// `OUTBOX_SWEEP_INTERVAL_MS`, which may not be 0: without the sweep, a
/// change whose request ended between its commit and its hand-off would wait
/// for the next start.
fn sweep_interval(vars: &Vars) -> Result<Duration> {
    let interval = vars.millis("OUTBOX_SWEEP_INTERVAL_MS", DEFAULT_SWEEP_INTERVAL)?;
    anyhow::ensure!(
        !interval.is_zero(),
        "OUTBOX_SWEEP_INTERVAL_MS must be at least 1: the sweep publishes the changes no request handed over"
    );
    Ok(interval)
}

/// `OUTBOX_STAMP_DELAY_MS`, less than the sweep interval: a row published
/// but not yet stamped when it is a sweep interval old is taken by the
/// sweeps of other instances and published again (a duplicate, dropped, but
/// work for nothing).
fn stamp_delay(vars: &Vars, sweep_interval: Duration) -> Result<Duration> {
    let delay = vars.millis("OUTBOX_STAMP_DELAY_MS", DEFAULT_STAMP_DELAY)?;
    anyhow::ensure!(
        delay < sweep_interval,
        "OUTBOX_STAMP_DELAY_MS ({} ms) must be less than OUTBOX_SWEEP_INTERVAL_MS ({} ms): \
         other instances' sweeps take rows older than that, stamped or not",
        delay.as_millis(),
        sweep_interval.as_millis()
    );
    Ok(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_original_demos() {
        let config = Config::from_vars(&Vars::from_pairs([])).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.database_url,
            "postgres://postgres@localhost:5432/users_db"
        );
        assert_eq!(config.nats.url, "nats://localhost:4222");
        assert_eq!(config.nats.subject, "user.events");
    }

    #[test]
    fn variables_override_defaults() {
        let config = Config::from_vars(&Vars::from_pairs([
            ("USER_SERVICE_ADDR", "0.0.0.0:9000"),
            ("NATS_SUBJECT", "t1.user.events"),
            ("OUTBOX_SWEEP_INTERVAL_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(config.addr.port(), 9000);
        assert_eq!(config.nats.subject, "t1.user.events");
        assert_eq!(config.relay.sweep_interval, Duration::from_millis(250));
    }

    #[test]
    fn the_stamp_delay_must_be_shorter_than_the_sweep_interval() {
        let config = Config::from_vars(&Vars::from_pairs([])).unwrap();
        assert_eq!(config.relay.stamp_delay, Duration::from_millis(100));
        let config =
            Config::from_vars(&Vars::from_pairs([("OUTBOX_STAMP_DELAY_MS", "0")])).unwrap();
        assert!(config.relay.stamp_delay.is_zero(), "0 stamps at once");
        let err = Config::from_vars(&Vars::from_pairs([
            ("OUTBOX_SWEEP_INTERVAL_MS", "500"),
            ("OUTBOX_STAMP_DELAY_MS", "500"),
        ]))
        .expect_err("a delay as long as the sweep interval is refused");
        assert!(
            err.to_string().contains(
                "OUTBOX_STAMP_DELAY_MS (500 ms) must be less than OUTBOX_SWEEP_INTERVAL_MS (500 ms)"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_sweep_cannot_be_turned_off_from_the_environment() {
        let err = Config::from_vars(&Vars::from_pairs([("OUTBOX_SWEEP_INTERVAL_MS", "0")]))
            .expect_err("0 is refused");
        assert!(
            err.to_string().contains("OUTBOX_SWEEP_INTERVAL_MS"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_address_is_an_error() {
        assert!(
            Config::from_vars(&Vars::from_pairs([("USER_SERVICE_ADDR", "localhost")])).is_err()
        );
    }
}
