//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when MongoDB answers and NATS is connected, else 503 naming which.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mongodb = state.store.ping().await.is_ok();
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let status = if mongodb && nats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"mongodb": mongodb, "nats": nats})))
}
