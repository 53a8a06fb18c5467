//! `/users`: the original demo's API plus `GET` and `DELETE` of one user.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
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

#[tracing::instrument(skip_all)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(state.users.list().await?))
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
