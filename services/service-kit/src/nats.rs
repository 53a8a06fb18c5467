//! Where a service's events flow: the NATS server and the JetStream stream,
//! read from `NATS_URL`, `NATS_SUBJECT`, `NATS_STREAM` and
//! `NATS_STREAM_MAX_AGE_SECS`, and the connection made from them.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::env::Vars;

pub const DEFAULT_NATS_URL: &str = "nats://localhost:4222";
pub const DEFAULT_STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long one attempt to reach the server may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// The NATS server and the stream both services agree on.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    pub subject: String,
    pub stream: String,
    /// How long the stream keeps events (and so how far back a replay reaches).
    pub stream_max_age: Duration,
}

impl NatsConfig {
    /// Reads the `NATS_*` variables; `subject` and `stream` are the defaults
    /// for `NATS_SUBJECT` and `NATS_STREAM`.
    ///
    /// # Errors
    /// When `NATS_STREAM_MAX_AGE_SECS` is set but is not a whole number.
    pub fn from_vars(vars: &Vars, subject: &str, stream: &str) -> Result<Self> {
        Ok(Self {
            url: vars.string("NATS_URL", DEFAULT_NATS_URL),
            subject: vars.string("NATS_SUBJECT", subject),
            stream: vars.string("NATS_STREAM", stream),
            stream_max_age: Duration::from_secs(
                vars.parse("NATS_STREAM_MAX_AGE_SECS", DEFAULT_STREAM_MAX_AGE.as_secs())?,
            ),
        })
    }

    /// A client that keeps reconnecting, also when the server is down at
    /// start-up.
    ///
    /// # Errors
    /// When `NATS_URL` is not a valid address.
    pub async fn connect(&self) -> Result<async_nats::Client> {
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(CONNECTION_TIMEOUT)
            .connect(self.url.as_str())
            .await
            .context("connecting to NATS (NATS_URL)")
    }
}

/// Whether the client is connected right now (for `/readyz`).
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_override_defaults_and_unset_ones_fall_back() {
        let overridden = [
            ("NATS_URL", "nats://n:1"),
            ("NATS_SUBJECT", "t1.events"),
            ("NATS_STREAM", "T1"),
            ("NATS_STREAM_MAX_AGE_SECS", "60"),
        ];
        let cases: [(&[(&str, &str)], _); 2] = [
            (&[], ("nats://localhost:4222", "s.events", "S", 604_800)),
            (&overridden, ("nats://n:1", "t1.events", "T1", 60)),
        ];
        for (vars, expected) in cases {
            let config =
                NatsConfig::from_vars(&Vars::from_pairs(vars.iter().copied()), "s.events", "S")
                    .unwrap();
            let read = (
                config.url.as_str(),
                config.subject.as_str(),
                config.stream.as_str(),
                config.stream_max_age.as_secs(),
            );
            assert_eq!(read, expected, "with {vars:?}");
        }
    }

    #[test]
    fn a_malformed_max_age_is_an_error() {
        let vars = Vars::from_pairs([("NATS_STREAM_MAX_AGE_SECS", "a week")]);
        assert!(NatsConfig::from_vars(&vars, "s", "S").is_err());
    }
}
