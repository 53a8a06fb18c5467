//! user-service against real PostgreSQL and NATS JetStream: each test gets
//! its own database, subject and stream.

mod cluster;
mod errors;
mod helpers;
mod openapi;
mod outbox;
mod pool;
mod users;
