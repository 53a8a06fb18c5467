//! notification-service keeps a denormalised copy of the users in MongoDB.
//! A durable JetStream consumer applies each event once it is newer than the
//! copy (the per-user version guard), and acknowledges it only after MongoDB
//! has it; the HTTP API serves the copy.

pub mod config;
pub mod consumer;
pub mod error;
pub mod repair;
pub mod routes;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::build;
