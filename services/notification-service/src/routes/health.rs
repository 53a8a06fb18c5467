//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use axum::{Json, Router, extract::State, http::StatusCode};
use serde_json::Value;
use service_kit::{health, nats::is_connected};

use super::AppState;

pub fn router() -> Router<AppState> {
    health::router(readyz)
}

/// 200 when MongoDB answers and NATS is connected, else 503 naming which.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mongodb = state.store.ping().await.is_ok();
    health::readiness([("mongodb", mongodb), ("nats", is_connected(&state.nats))])
}
