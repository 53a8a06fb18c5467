//! Plumbing shared by user-service and notification-service: tracing set-up,
//! the Prometheus recorder and HTTP metrics, the API's shared routes and
//! layers, health checks, NATS configuration, serving until shutdown and the
//! shutdown signal. Nothing here knows about users or events.

pub mod env;
pub mod health;
pub mod http;
pub mod metrics;
pub mod nats;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
