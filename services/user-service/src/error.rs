//! The HTTP layer's errors and how each becomes a response.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use service_kit::http::error_response;

use crate::domain::InvalidInput;

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

    /// Maps a database error, naming `email` when it is the unique key that
    /// was violated.
    pub fn from_write(err: sqlx::Error, email: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                ApiError::EmailTaken(email.to_owned())
            }
            _ => Self::from(err),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                ApiError::Unavailable(err)
            }
            other => ApiError::Internal(other.into()),
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
    fn server_error_messages_say_nothing_internal() {
        let error = ApiError::Internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(error.to_string(), "internal error");
        let error = ApiError::Unavailable(sqlx::Error::PoolTimedOut);
        assert!(!error.to_string().contains("pool"), "{error}");
    }
}
