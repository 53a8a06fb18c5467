//! Where a service's events flow: the NATS servers and the JetStream stream,
//! read from `NATS_URL`, `NATS_USER`, `NATS_PASSWORD`, `NATS_SUBJECT`,
//! `NATS_STREAM`, `NATS_STREAM_MAX_AGE_SECS` and `NATS_STREAM_REPLICAS`, and
//! the connection made from them.

use std::{fmt, time::Duration};

use anyhow::{Context, Result, bail};
use async_nats::{ConnectOptions, ServerAddr};

use crate::env::Vars;

pub const DEFAULT_NATS_URL: &str = "nats://localhost:4222";
pub const DEFAULT_STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_STREAM_REPLICAS: usize = 1;
/// How long one attempt to reach a server may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// The NATS servers and the stream both services agree on.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `NATS_URL`: one server, or several separated by commas (the nodes of a
    /// cluster; the client picks one and moves to another when it fails).
    pub url: String,
    /// `NATS_USER` and `NATS_PASSWORD`, when the servers ask for them.
    pub credentials: Option<Credentials>,
    pub subject: String,
    pub stream: String,
    /// How long the stream keeps events (and so how far back a replay reaches).
    pub stream_max_age: Duration,
    /// How many servers keep a copy of the stream (1, or 3 on a cluster); an
    /// existing stream with fewer is raised to this many.
    pub stream_replicas: usize,
}

/// A user name and password for NATS. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl NatsConfig {
    /// Reads the `NATS_*` variables; `subject` and `stream` are the defaults
    /// for `NATS_SUBJECT` and `NATS_STREAM`.
    ///
    /// # Errors
    /// When `NATS_URL` is not a list of server addresses, only one of
    /// `NATS_USER` and `NATS_PASSWORD` is set, or `NATS_STREAM_MAX_AGE_SECS`
    /// or `NATS_STREAM_REPLICAS` is not a whole number (replicas: 1 to 5).
    pub fn from_vars(vars: &Vars, subject: &str, stream: &str) -> Result<Self> {
        let url = vars.string("NATS_URL", DEFAULT_NATS_URL);
        servers(&url).with_context(|| format!("NATS_URL={url:?} is not valid"))?;
        let credentials = match (
            vars.string("NATS_USER", ""),
            vars.string("NATS_PASSWORD", ""),
        ) {
            (user, password) if user.is_empty() && password.is_empty() => None,
            (user, password) if user.is_empty() || password.is_empty() => {
                bail!("NATS_USER and NATS_PASSWORD go together: set both or neither")
            }
            (user, password) => Some(Credentials { user, password }),
        };
        let stream_replicas = vars.parse("NATS_STREAM_REPLICAS", DEFAULT_STREAM_REPLICAS)?;
        if !(1..=5).contains(&stream_replicas) {
            bail!(
                "NATS_STREAM_REPLICAS={stream_replicas} is not valid: JetStream keeps 1 to 5 replicas"
            );
        }
        Ok(Self {
            url,
            credentials,
            subject: vars.string("NATS_SUBJECT", subject),
            stream: vars.string("NATS_STREAM", stream),
            stream_max_age: Duration::from_secs(
                vars.parse("NATS_STREAM_MAX_AGE_SECS", DEFAULT_STREAM_MAX_AGE.as_secs())?,
            ),
            stream_replicas,
        })
    }

    /// The servers of `NATS_URL`.
    ///
    /// # Errors
    /// When `NATS_URL` is not a list of server addresses.
    pub fn servers(&self) -> Result<Vec<ServerAddr>> {
        servers(&self.url).with_context(|| format!("NATS_URL={:?} is not valid", self.url))
    }

    /// The stream as `events::ensure_stream` makes sure of it.
    pub fn stream_spec(&self) -> events::StreamSpec<'_> {
        events::StreamSpec {
            name: &self.stream,
            subject: &self.subject,
            max_age: self.stream_max_age,
            replicas: self.stream_replicas,
        }
    }

    /// Options with the credentials, if any.
    pub fn options(&self) -> ConnectOptions {
        let options = ConnectOptions::new().connection_timeout(CONNECTION_TIMEOUT);
        match &self.credentials {
            Some(c) => options.user_and_password(c.user.clone(), c.password.clone()),
            None => options,
        }
    }

    /// A client that keeps reconnecting, to any of the servers, also when
    /// none is up at start-up.
    ///
    /// # Errors
    /// When `NATS_URL` is not valid.
    pub async fn connect(&self) -> Result<async_nats::Client> {
        self.options()
            .retry_on_initial_connect()
            .connect(self.servers()?)
            .await
            .context("connecting to NATS (NATS_URL)")
    }

    /// A client for a one-off command: fails when no server answers now.
    ///
    /// # Errors
    /// When `NATS_URL` is not valid, or no server answers.
    pub async fn connect_once(&self) -> Result<async_nats::Client> {
        self.options()
            .connect(self.servers()?)
            .await
            .context("connecting to NATS (NATS_URL)")
    }
}

/// Splits a comma-separated list of server URLs (async-nats itself takes
/// only one per string).
fn servers(list: &str) -> Result<Vec<ServerAddr>> {
    let servers = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ServerAddr>()
                .with_context(|| format!("{s:?} is not a server address"))
        })
        .collect::<Result<Vec<_>>>()?;
    if servers.is_empty() {
        bail!("no server address");
    }
    Ok(servers)
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
            ("NATS_STREAM_REPLICAS", "3"),
        ];
        let cases: [(&[(&str, &str)], _); 2] = [
            (&[], ("nats://localhost:4222", "s.events", "S", 604_800, 1)),
            (&overridden, ("nats://n:1", "t1.events", "T1", 60, 3)),
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
                config.stream_replicas,
            );
            assert_eq!(read, expected, "with {vars:?}");
        }
    }

    #[test]
    fn nats_url_is_a_comma_separated_list_of_servers() {
        let vars = Vars::from_pairs([(
            "NATS_URL",
            "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224",
        )]);
        let config = NatsConfig::from_vars(&vars, "s", "S").unwrap();
        let ports: Vec<u16> = config
            .servers()
            .unwrap()
            .iter()
            .map(ServerAddr::port)
            .collect();
        assert_eq!(ports, [4222, 4223, 4224]);
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (
                &[("NATS_STREAM_MAX_AGE_SECS", "a week")],
                "NATS_STREAM_MAX_AGE_SECS",
            ),
            (&[("NATS_URL", "nats://a:1,nats://b:port")], "NATS_URL"),
            (&[("NATS_URL", " , ")], "NATS_URL"),
            (&[("NATS_STREAM_REPLICAS", "0")], "NATS_STREAM_REPLICAS"),
            (&[("NATS_STREAM_REPLICAS", "three")], "NATS_STREAM_REPLICAS"),
            (&[("NATS_USER", "user-service")], "NATS_PASSWORD"),
        ];
        for (vars, named) in cases {
            let err = NatsConfig::from_vars(&Vars::from_pairs(vars.iter().copied()), "s", "S")
                .expect_err(&format!("{vars:?} must be refused"));
            let message = format!("{err:#}");
            assert!(message.contains(named), "{vars:?}: {message}");
        }
    }

    #[test]
    fn credentials_are_read_together_and_the_password_never_shows() {
        let vars = Vars::from_pairs([("NATS_USER", "user-service"), ("NATS_PASSWORD", "s3cret")]);
        let config = NatsConfig::from_vars(&vars, "s", "S").unwrap();
        assert_eq!(
            config.credentials.as_ref().map(|c| c.user.as_str()),
            Some("user-service")
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let none = NatsConfig::from_vars(&Vars::from_pairs([]), "s", "S").unwrap();
        assert_eq!(none.credentials, None);
    }
}
