//! HTTP routes: each resource module owns its router; [`router`] merges them.

mod health;
mod notifications;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::store::NotificationStore;

/// The description's title; its paths and schemas come from the routes.
#[derive(OpenApi)]
#[openapi(info(
    title = "notification-service",
    version = "1.0.0",
    description = "The denormalised copy of the users (MongoDB notifications_db.user_notifications), kept in sync from user.events."
))]
struct Description;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: NotificationStore,
    pub nats: async_nats::Client,
}

/// The whole API and its OpenAPI description (served at `/openapi.json`); a
/// request taking longer than `request_timeout` gets 503.
pub fn api(request_timeout: std::time::Duration) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let routes = OpenApiRouter::with_openapi(Description::openapi())
        .merge(notifications::router())
        .merge(service_kit::health::router());
    // No body limit of its own: no route reads a body.
    service_kit::http::api(routes, request_timeout, None)
}

/// The whole API, ready to serve.
pub fn router(state: AppState, request_timeout: std::time::Duration) -> Router {
    api(request_timeout).0.with_state(state)
}
