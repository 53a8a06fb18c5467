//! notification-service against real NATS JetStream and a MongoDB-wire
//! server (FerretDB in CI): events are published by the test itself, so each
//! case controls order, duplicates and garbage exactly.

mod consumer;
mod faults;
mod helpers;
mod http;
mod openapi;
mod store;
