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
    postgres: bool,
    nats: bool,
}

/// 200 when PostgreSQL answers and NATS is connected, else 503; the body
/// says which dependency is down. Writes still succeed while NATS is down
/// (events wait in the outbox), so this is a signal, not a gate.
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
    let postgres = sqlx::query("SELECT 1").execute(state.pool()).await.is_ok();
    let nats = is_connected(&state.nats);
    (
        health::readiness([postgres, nats]),
        Json(Readiness { postgres, nats }),
    )
}
