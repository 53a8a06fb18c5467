//! HTTP routes: each resource module owns its router; [`router`] merges them.

mod health;
mod users;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit, middleware, routing::get};
use sqlx::PgPool;
use tokio::sync::Notify;
use tower_http::trace::TraceLayer;

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
    Router::new()
        .merge(users::router())
        .merge(health::router())
        .route("/metrics", get(service_kit::metrics::render))
        .route(
            "/openapi.json",
            get(|| async { service_kit::http::json_document(OPENAPI) }),
        )
        .fallback(service_kit::http::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            request_timeout,
            service_kit::http::request_timeout,
        ))
        .layer(middleware::from_fn(service_kit::metrics::track_http))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
