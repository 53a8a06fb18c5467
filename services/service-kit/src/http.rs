//! JSON error bodies and a JSON body extractor whose rejections are JSON too.

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

/// The body of every error response: `{"error": "..."}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: String,
}

/// A response with `status` and body `{"error": message}`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

/// A JSON document compiled into the binary (an OpenAPI description).
pub fn json_document(document: &'static str) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document,
    )
        .into_response()
}

/// Fallback for unknown routes: 404 with a JSON body.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such route")
}

/// Answers 503 with a JSON body when the rest of the stack takes longer than
/// `limit` (the request's work is dropped: an open transaction rolls back).
/// Use with `axum::middleware::from_fn_with_state(limit, request_timeout)`.
pub async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took longer than {} ms", limit.as_millis()),
        ),
    }
}

/// Like [`axum::Json`], but a body that cannot be read is answered with a JSON
/// error: 400 for malformed JSON, wrong types or missing fields, 413 for a
/// body over the limit, 415 for a missing JSON content type.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> Response {
    let status = match rejection {
        JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => {
            StatusCode::BAD_REQUEST
        }
        other => other.status(),
    };
    error_response(status, rejection.body_text())
}

/// Like [`axum::extract::Path`], but a segment that does not parse is answered
/// with 400 and a JSON body.
pub struct PathParam<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(error_response(rejection.status(), rejection.body_text())),
        }
    }
}
