//! `/notifications`: the synchronised copy, read-only.

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use serde::Deserialize;
use service_kit::http::{
    PathParam,
    documented::{BadRequest, NotFound, Unavailable},
};
use utoipa::IntoParams;
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

/// `GET /notifications`'s query. `after_id`, `before_id` and `limit` ask for
/// one page: at most `limit` copies (1 to [`MAX_PAGE`]) whose user id is
/// above `after_id` (default 0) and below `before_id` (if given), by user id,
/// as `GET /users` pages the source. A window of at most 10,000 ids
/// (`before_id - after_id - 1`) costs the same whatever the size of the
/// copy. Without them the body is the original demo's: every copy. Other
/// parameters are ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// one page: copies whose user id is above this (default 0)
    after_id: Option<i32>,
    /// one page: copies whose user id is below this (default: no bound)
    before_id: Option<i32>,
    /// one page of at most this many copies, by user id (default 10000)
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// The largest page `GET /notifications?limit=` gives (as `GET /users`).
pub const MAX_PAGE: i64 = 10_000;

/// Every user's copy, by user id (or one page of them).
#[utoipa::path(
    get, path = "/notifications", operation_id = "listNotifications", params(ListQuery),
    responses((status = 200, description = "the copies", body = [Notification]), BadRequest, Unavailable)
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let copies = match query {
        ListQuery {
            after_id: None,
            before_id: None,
            limit: None,
        } => state.store.list().await?,
        ListQuery {
            after_id,
            before_id,
            limit,
        } => {
            let limit = limit.unwrap_or(MAX_PAGE);
            if !(1..=MAX_PAGE).contains(&limit) {
                return Err(ApiError::BadQuery(format!(
                    "limit must be between 1 and {MAX_PAGE}, not {limit}"
                )));
            }
            let after_id = after_id.unwrap_or(0);
            if let Some(before_id) = before_id.filter(|&before_id| before_id <= after_id) {
                return Err(ApiError::BadQuery(format!(
                    "before_id must be above after_id ({after_id}), not {before_id}"
                )));
            }
            state.store.page(after_id, before_id, limit).await?
        }
    };
    Ok(Json(copies))
}

/// One user's copy.
#[utoipa::path(
    get, path = "/notifications/user/{id}", operation_id = "getNotification", params(UserId),
    responses((status = 200, description = "the copy", body = Notification), BadRequest, NotFound, Unavailable)
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = id))]
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
