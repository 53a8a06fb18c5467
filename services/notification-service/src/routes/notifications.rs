//! `/notifications`: the synchronised copy, read-only.

use axum::{Json, extract::State};
use service_kit::http::{
    PathParam,
    documented::{BadRequest, NotFound, Unavailable},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use crate::{error::ApiError, store::Notification};

/// The `{id}` of a path (read with `PathParam<i64>`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "describes the parameter; PathParam reads it")]
struct UserId {
    /// the user's id
    id: i64,
}

/// The routes and, from their `#[utoipa::path]`s, their OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
}

/// Every user's copy, by user id.
#[utoipa::path(
    get, path = "/notifications", operation_id = "listNotifications",
    responses((status = 200, description = "the copies", body = [Notification]), Unavailable)
)]
#[tracing::instrument(skip_all)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<Notification>>, ApiError> {
    Ok(Json(state.store.list().await?))
}

/// One user's copy.
#[utoipa::path(
    get, path = "/notifications/user/{id}", operation_id = "getNotification", params(UserId),
    responses((status = 200, description = "the copy", body = Notification), BadRequest, NotFound, Unavailable)
)]
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
