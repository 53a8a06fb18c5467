//! The HTTP layer's errors and how each becomes a response.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use service_kit::http::api_error_response;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no notification data for user {0}")]
    NotFound(i64),
    /// A query string it cannot read (bad `after_id` or `limit`).
    #[error("{0}")]
    BadQuery(String),
    #[error("the database is unavailable")]
    Unavailable(#[source] mongodb::error::Error),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<mongodb::error::Error> for ApiError {
    fn from(err: mongodb::error::Error) -> Self {
        ApiError::Unavailable(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        api_error_response(self.status_code(), &self)
    }
}
