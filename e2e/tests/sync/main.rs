//! The guarantee, end to end: user-service and notification-service in one
//! process against real PostgreSQL, NATS JetStream and a MongoDB-wire server;
//! whatever is written to the source ends up, exactly, in the copy.

mod faults;
mod propagation;
mod repair;
mod stack;
