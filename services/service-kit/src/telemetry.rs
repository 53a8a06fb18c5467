//! Tracing set up once from the environment: `RUST_LOG` filters (default
//! `info`), `LOG_FORMAT=json` switches to one JSON object per line; and
//! [`FailuresInARow`], which tells a retried failure worth a warning from
//! one that is not.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(fmt::layer().json().flatten_event(true))
            .init();
    } else {
        registry.with(fmt::layer()).init();
    }
}

/// Failures of one retried step in a row. Only a repeated failure is worth a
/// warning: the first is often a peer still starting or restarting (the
/// stack starts the services in any order), and the retry is moments away.
#[derive(Debug, Default)]
pub struct FailuresInARow(u32);

impl FailuresInARow {
    pub fn succeeded(&mut self) {
        self.0 = 0;
    }

    /// Counts a failure; true when it is not the first in a row.
    pub fn failed(&mut self) -> bool {
        self.0 = self.0.saturating_add(1);
        self.0 > 1
    }
}

#[cfg(test)]
mod tests {
    use super::FailuresInARow;

    #[test]
    fn only_a_failure_after_a_failure_is_repeated() {
        let mut failures = FailuresInARow::default();
        assert!(!failures.failed(), "the first failure");
        assert!(failures.failed(), "the second in a row");
        assert!(failures.failed(), "the third in a row");
        failures.succeeded();
        assert!(!failures.failed(), "the first after a success");
    }
}
