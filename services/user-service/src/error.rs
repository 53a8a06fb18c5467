//! The HTTP layer's errors and how each becomes a response.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use service_kit::http::error_response;

use crate::{domain::InvalidInput, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(#[from] InvalidInput),
    #[error("{0}")]
    BadQuery(String),
    #[error("user {0} not found")]
    NotFound(i32),
    #[error("email {0:?} is already taken")]
    EmailTaken(String),
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::EmailTaken(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(id) => ApiError::NotFound(id),
            StoreError::EmailTaken(email) => ApiError::EmailTaken(email),
            StoreError::Unavailable(e) => ApiError::Unavailable(e),
            StoreError::Database(e) => ApiError::Internal(e.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if status.is_server_error() {
            // The detail goes to the log; the client gets a generic message.
            tracing::error!(error = ?self, "request failed");
        }
        error_response(status, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status() {
        let cases = [
            (ApiError::Invalid(InvalidInput("bad".into())), 422),
            (ApiError::BadQuery("include: unknown variant".into()), 400),
            (ApiError::NotFound(1), 404),
            (ApiError::EmailTaken("a@b.co".into()), 409),
            (ApiError::Unavailable(sqlx::Error::PoolTimedOut), 503),
            (ApiError::Internal(anyhow::anyhow!("secret detail")), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status_code().as_u16(), status, "{error:?}");
        }
    }

    #[test]
    fn each_store_error_becomes_its_status() {
        let cases = [
            (StoreError::NotFound(7), 404, "user 7 not found"),
            (
                StoreError::EmailTaken("a@b.co".into()),
                409,
                "email \"a@b.co\" is already taken",
            ),
            (
                StoreError::Unavailable(sqlx::Error::PoolTimedOut),
                503,
                "the database is unavailable",
            ),
            (
                StoreError::Database(sqlx::Error::RowNotFound),
                500,
                "internal error",
            ),
        ];
        for (error, status, message) in cases {
            let error = ApiError::from(error);
            assert_eq!(error.status_code().as_u16(), status, "{error:?}");
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn server_error_messages_say_nothing_internal() {
        let error = ApiError::Internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(error.to_string(), "internal error");
        let error = ApiError::Unavailable(sqlx::Error::PoolTimedOut);
        assert!(!error.to_string().contains("pool"), "{error}");
    }
}
