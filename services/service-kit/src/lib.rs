//! Plumbing shared by user-service and notification-service: tracing set-up,
//! the Prometheus recorder and HTTP metrics, JSON error bodies and the
//! shutdown signal. Nothing here knows about users or events.

pub mod env;
pub mod http;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
