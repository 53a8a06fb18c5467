//! HTTP routes: each resource module owns its router; [`router`] merges them.

mod health;
mod notifications;

use axum::{Router, middleware, routing::get};
use tower_http::trace::TraceLayer;

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
    Router::new()
        .merge(notifications::router())
        .merge(health::router())
        .route("/metrics", get(service_kit::metrics::render))
        .route(
            "/openapi.json",
            get(|| async { service_kit::http::json_document(OPENAPI) }),
        )
        .fallback(service_kit::http::not_found)
        .layer(middleware::from_fn_with_state(
            request_timeout,
            service_kit::http::request_timeout,
        ))
        .layer(middleware::from_fn(service_kit::metrics::track_http))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
