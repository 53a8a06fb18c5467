//! HTTP routes: each resource module owns its router; [`router`] merges them.

mod health;
mod users;

use axum::Router;
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{relay::Handoff, store::UserStore};

/// Request bodies larger than this are answered with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The description's title; its paths and schemas come from the routes.
#[derive(OpenApi)]
#[openapi(info(
    title = "user-service",
    version = "1.0.0",
    description = "Owns the users (PostgreSQL). Every change is published on user.events through a transactional outbox."
))]
struct Description;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub users: UserStore,
    /// Takes each committed event to the outbox relay.
    pub relay: Handoff,
    pub nats: async_nats::Client,
}

impl AppState {
    pub fn pool(&self) -> &PgPool {
        self.users.pool()
    }
}

/// The whole API and its OpenAPI description (served at `/openapi.json`); a
/// request taking longer than `request_timeout` gets 503.
pub fn api(request_timeout: std::time::Duration) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let routes = OpenApiRouter::with_openapi(Description::openapi())
        .merge(users::router())
        .merge(service_kit::health::router());
    service_kit::http::api(routes, request_timeout, Some(MAX_BODY_BYTES))
}

/// The whole API, ready to serve.
pub fn router(state: AppState, request_timeout: std::time::Duration) -> Router {
    api(request_timeout).0.with_state(state)
}
