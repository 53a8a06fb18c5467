//! `/users`: the original demo's API plus `GET` and `DELETE` of one user.

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use service_kit::http::{JsonBody, PathParam};

use super::AppState;
use crate::{
    domain::{User, UserDraft},
    error::ApiError,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(show).put(update).delete(remove))
}

/// The body of `POST /users` and `PUT /users/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    pub name: String,
    pub email: String,
}

impl UserRequest {
    fn parse(&self) -> Result<UserDraft, ApiError> {
        Ok(UserDraft::parse(&self.name, &self.email)?)
    }
}

/// `GET /users` options. `include=version` adds each user's version (of
/// its last change; events carry it too), which `notification-service
/// resync` needs. `after_id` and `limit` ask for one page: at most `limit`
/// users (1 to [`MAX_PAGE`]) whose id is above `after_id` (default 0), by id;
/// the drift gauge reads the source a page at a time. Without them the body is
/// the original demo's: every user. Other parameters are ignored, as the
/// original demo ignored them.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    include: Option<Include>,
    after_id: Option<i32>,
    limit: Option<i64>,
}

/// The largest page `GET /users?limit=` gives.
pub const MAX_PAGE: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Include {
    Version,
}

/// A user with its version, for `GET /users?include=version`.
#[derive(Debug, serde::Serialize)]
struct VersionedUser<'a> {
    #[serde(flatten)]
    user: &'a User,
    version: i64,
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let users = match (query.after_id, query.limit) {
        (None, None) => state.users.list().await?,
        (after_id, limit) => {
            let limit = limit.unwrap_or(MAX_PAGE);
            if !(1..=MAX_PAGE).contains(&limit) {
                return Err(ApiError::BadQuery(format!(
                    "limit must be between 1 and {MAX_PAGE}, not {limit}"
                )));
            }
            state.users.page(after_id.unwrap_or(0), limit).await?
        }
    };
    Ok(match query.include {
        None => Json(users).into_response(),
        Some(Include::Version) => Json(
            users
                .iter()
                .map(|user| VersionedUser {
                    user,
                    version: user.version,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
    })
}

#[tracing::instrument(skip_all, fields(user_id = id))]
async fn show(
    State(state): State<AppState>,
    PathParam(id): PathParam<i32>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.users.get(id).await?))
}

#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<UserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let draft = body.parse()?;
    let (user, _event) = state.users.create(&draft).await?;
    state.relay_wake.notify_one();
    tracing::info!(user_id = user.id, "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

#[tracing::instrument(skip_all, fields(user_id = id))]
async fn update(
    State(state): State<AppState>,
    PathParam(id): PathParam<i32>,
    JsonBody(body): JsonBody<UserRequest>,
) -> Result<Json<User>, ApiError> {
    let draft = body.parse()?;
    let (user, _event) = state.users.update(id, &draft).await?;
    state.relay_wake.notify_one();
    Ok(Json(user))
}

#[tracing::instrument(skip_all, fields(user_id = id))]
async fn remove(
    State(state): State<AppState>,
    PathParam(id): PathParam<i32>,
) -> Result<StatusCode, ApiError> {
    state.users.delete(id).await?;
    state.relay_wake.notify_one();
    Ok(StatusCode::NO_CONTENT)
}
