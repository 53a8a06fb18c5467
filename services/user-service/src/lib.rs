//! user-service owns the users in PostgreSQL. Every change is written together
//! with an outbox row in one transaction; the relay publishes outbox rows to
//! JetStream, so no committed change can miss its event.

pub mod config;
pub mod domain;
pub mod error;
pub mod outbox;
pub mod relay;
pub mod routes;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::build;
