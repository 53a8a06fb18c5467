//! Test support shared by the integration tests: the servers `./scripts/test`
//! starts (found through `TEST_*` variables), private servers a test can stop
//! and restart, fresh database and stream names, and polling helpers.

pub mod names;
pub mod process;
pub mod shared;
pub mod wait;

pub use names::Names;
pub use process::{FerretDb, NatsServer};
