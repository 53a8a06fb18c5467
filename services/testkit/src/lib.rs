//! Test support shared by the integration tests: the servers `./scripts/test`
//! starts (found through `TEST_*` variables), private servers a test can stop
//! and restart, fresh database and stream names, polling helpers, and a
//! service spawned in the test's process.

pub mod http;
pub mod names;
pub mod openapi;
pub mod process;
pub mod running;
pub mod shared;
pub mod skip;
pub mod wait;

pub use names::Names;
pub use process::{FerretDb, NatsCluster, NatsServer};
pub use running::Running;

/// Shows the services' logs in a test's output, filtered by `RUST_LOG`
/// (default: warnings). Safe to call from every test.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
