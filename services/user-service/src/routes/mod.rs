//! HTTP routes: each resource module owns its router; [`router`] merges them.

mod health;
mod users;

use std::sync::Arc;

use axum::Router;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::store::UserStore;

/// Request bodies larger than this are answered with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The OpenAPI description of this API, served at `/openapi.json`; the
/// `openapi` tests hold it and the router to each other.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub users: UserStore,
    /// Wakes the outbox relay after a commit.
    pub relay_wake: Arc<Notify>,
    pub nats: async_nats::Client,
}

impl AppState {
    pub fn pool(&self) -> &PgPool {
        self.users.pool()
    }
}

/// The whole API; a request taking longer than `request_timeout` gets 503.
pub fn router(state: AppState, request_timeout: std::time::Duration) -> Router {
    let routes = Router::new().merge(users::router()).merge(health::router());
    service_kit::http::api(routes, OPENAPI, request_timeout, Some(MAX_BODY_BYTES)).with_state(state)
}
