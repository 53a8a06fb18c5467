//! `/notifications`: the synchronised copy, read-only.

use axum::{Json, Router, extract::State, routing::get};
use service_kit::http::PathParam;

use super::AppState;
use crate::{error::ApiError, store::Notification};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(list))
        .route("/notifications/user/{id}", get(show))
}

#[tracing::instrument(skip_all)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<Notification>>, ApiError> {
    Ok(Json(state.store.list().await?))
}

#[tracing::instrument(skip_all, fields(user_id = id))]
async fn show(
    State(state): State<AppState>,
    PathParam(id): PathParam<i64>,
) -> Result<Json<Notification>, ApiError> {
    // User ids are 32-bit (SERIAL); a larger one cannot exist.
    let Ok(key) = i32::try_from(id) else {
        return Err(ApiError::NotFound(id));
    };
    state
        .store
        .get(key)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(id))
}
