//! The HTTP layer's errors and how each becomes a response.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use service_kit::http::api_error_response;

use crate::{domain::InvalidInput, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(#[from] InvalidInput),
    #[error("{0}")]
    BadQuery(String),
    /// What the store refused or could not do (not found, email taken,
    /// unavailable), in the store's words.
    #[error(transparent)]
    Store(StoreError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Store(StoreError::EmailTaken(_)) => StatusCode::CONFLICT,
            ApiError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(StoreError::Database(_)) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            // The client learns only that it failed; the detail is logged.
            StoreError::Database(e) => ApiError::Internal(e.into()),
            other => ApiError::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        api_error_response(self.status_code(), &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_message() {
        let cases = [
            (ApiError::Invalid(InvalidInput("bad".into())), 422, "bad"),
            (
                ApiError::BadQuery("include: unknown variant".into()),
                400,
                "include: unknown variant",
            ),
            (StoreError::NotFound(7).into(), 404, "user 7 not found"),
            (
                StoreError::EmailTaken("a@b.co".into()).into(),
                409,
                "email \"a@b.co\" is already taken",
            ),
            (
                StoreError::Unavailable(sqlx::Error::PoolTimedOut).into(),
                503,
                "the database is unavailable",
            ),
            (
                StoreError::Database(sqlx::Error::RowNotFound).into(),
                500,
                "internal error",
            ),
        ];
        for (error, status, message) in cases {
            assert_eq!(error.status_code().as_u16(), status, "{error:?}");
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn server_error_messages_say_nothing_internal() {
        let error = ApiError::Internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(error.to_string(), "internal error");
        let error = ApiError::from(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
        assert!(!error.to_string().contains("pool"), "{error}");
    }
}
