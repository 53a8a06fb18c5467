//! HTTP routes: each resource module owns its router; [`router`] merges them.

mod health;
mod notifications;

use axum::Router;

use crate::store::NotificationStore;

/// The OpenAPI description of this API, served at `/openapi.json`; the
/// `openapi` tests hold it and the router to each other.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: NotificationStore,
    pub nats: async_nats::Client,
}

/// The whole API; a request taking longer than `request_timeout` gets 503.
pub fn router(state: AppState, request_timeout: std::time::Duration) -> Router {
    let routes = Router::new()
        .merge(notifications::router())
        .merge(health::router());
    // No body limit of its own: no route reads a body.
    service_kit::http::api(routes, OPENAPI, request_timeout, None).with_state(state)
}
