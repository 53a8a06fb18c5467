//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use service_kit::{health, nats::is_connected};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    health::router().routes(routes!(readyz))
}

/// Whether each dependency answers.
#[derive(Debug, Serialize, ToSchema)]
struct Readiness {
    mongodb: bool,
    nats: bool,
}

/// 200 when MongoDB answers and NATS is connected, else 503 naming which.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    summary = "Dependencies answer: 200, else 503 saying which is down.",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "not ready", body = Readiness),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mongodb = state.store.ping().await.is_ok();
    let nats = is_connected(&state.nats);
    (
        health::readiness([mongodb, nats]),
        Json(Readiness { mongodb, nats }),
    )
}
