//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use axum::{Json, Router, extract::State, http::StatusCode};
use serde_json::Value;
use service_kit::{health, nats::is_connected};

use super::AppState;

pub fn router() -> Router<AppState> {
    health::router(readyz)
}

/// 200 when PostgreSQL answers and NATS is connected, else 503; the body
/// says which dependency is down. Writes still succeed while NATS is down
/// (events wait in the outbox), so this is a signal, not a gate.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let postgres = sqlx::query("SELECT 1").execute(state.pool()).await.is_ok();
    health::readiness([("postgres", postgres), ("nats", is_connected(&state.nats))])
}
