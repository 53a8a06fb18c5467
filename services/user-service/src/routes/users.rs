//! `/users`: the original demo's API plus `GET` and `DELETE` of one user.
//!
//! Each request's span and the line a create writes are at `debug`: at the
//! default `info` a busy service logs only what an operator acts on
//! (start-up, shutdown, warnings, errors). An `info` line and span per write
//! cost 8% of the write rate at six unlimited writers (the line is formatted,
//! written to a pipe and read by the supervisor); `RUST_LOG=debug` brings them
//! back.

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use service_kit::http::{
    ErrorBody, JsonBody, PathParam,
    documented::{BadRequest, BodyRefused, NotFound, Unavailable},
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use crate::{
    domain::{User, UserDraft},
    error::ApiError,
};

/// The `{id}` of a path (read with `PathParam<i32>`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "describes the parameter; PathParam reads it")]
struct UserId {
    /// the user's id
    id: i32,
}

/// The routes and, from their `#[utoipa::path]`s, their OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
}

/// What a write refuses after reading its body (for the OpenAPI description:
/// `ApiError` answers these).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "describes responses; ApiError builds them")]
enum Refused {
    #[response(status = 409, description = "email already taken")]
    EmailTaken(ErrorBody),
    #[response(status = 422, description = "invalid name or email")]
    Invalid(ErrorBody),
}

/// The body of `POST /users` and `PUT /users/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "John Doe", "email": "john@example.com"}))]
pub struct UserRequest {
    /// trimmed; no control characters
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// local@domain.tld
    #[schema(max_length = 255)]
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `version` adds each user's version
    #[param(inline)]
    include: Option<Include>,
    /// with `limit`, one page: users whose id is above this (default 0)
    after_id: Option<i32>,
    /// one page of at most this many users, by id (with `after_id`; default 10000)
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// The largest page `GET /users?limit=` gives.
pub const MAX_PAGE: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Include {
    Version,
}

/// A user as `GET /users` lists it: the demo's shape, plus its version when
/// asked for with `?include=version`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedUser {
    #[serde(flatten)]
    user: User,
    /// only with `?include=version`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    version: Option<i64>,
}

/// Every user, by id (or one page of them).
#[utoipa::path(
    get, path = "/users", operation_id = "listUsers", params(ListQuery),
    responses((status = 200, description = "the users", body = [ListedUser]), BadRequest, Unavailable)
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ListedUser>>, ApiError> {
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
    let with_version = query.include == Some(Include::Version);
    Ok(Json(
        users
            .into_iter()
            .map(|user| ListedUser {
                version: with_version.then_some(user.version),
                user,
            })
            .collect(),
    ))
}

/// One user.
#[utoipa::path(
    get, path = "/users/{id}", operation_id = "getUser", params(UserId),
    responses((status = 200, description = "the user", body = User), BadRequest, NotFound, Unavailable)
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = id))]
async fn show(
    State(state): State<AppState>,
    PathParam(id): PathParam<i32>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.users.get(id).await?))
}

/// Creates a user; emits user_created.
#[utoipa::path(
    post, path = "/users", operation_id = "createUser", request_body = UserRequest,
    responses((status = 201, description = "created", body = User), BadRequest, BodyRefused, Refused, Unavailable)
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<UserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let draft = body.parse()?;
    let (user, event) = state.users.create(&draft).await?;
    state.relay.committed(event);
    tracing::debug!(user_id = user.id, "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

/// Replaces name and email; emits user_updated.
#[utoipa::path(
    put, path = "/users/{id}", operation_id = "updateUser", params(UserId), request_body = UserRequest,
    responses((status = 200, description = "updated", body = User), BadRequest, NotFound, BodyRefused, Refused, Unavailable)
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = id))]
async fn update(
    State(state): State<AppState>,
    PathParam(id): PathParam<i32>,
    JsonBody(body): JsonBody<UserRequest>,
) -> Result<Json<User>, ApiError> {
    let draft = body.parse()?;
    let (user, event) = state.users.update(id, &draft).await?;
    state.relay.committed(event);
    Ok(Json(user))
}

/// Deletes a user; emits user_deleted.
#[utoipa::path(
    delete, path = "/users/{id}", operation_id = "deleteUser", params(UserId),
    responses((status = 204, description = "deleted"), BadRequest, NotFound, Unavailable)
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = id))]
async fn remove(
    State(state): State<AppState>,
    PathParam(id): PathParam<i32>,
) -> Result<StatusCode, ApiError> {
    let event = state.users.delete(id).await?;
    state.relay.committed(event);
    Ok(StatusCode::NO_CONTENT)
}
