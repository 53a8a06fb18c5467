//! JSON error bodies and a JSON body extractor whose rejections are JSON too.

use std::time::Duration;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Serialize, de::DeserializeOwned};
use tower_http::trace::TraceLayer;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

/// The body of every error response: `{"error": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: String,
}

/// The error answers the services share, for their operations'
/// `#[utoipa::path(responses(...))]`; each body is an [`ErrorBody`].
pub mod documented {
    use utoipa::IntoResponses;

    use super::ErrorBody;

    /// 400: a path, query or JSON body that does not parse.
    #[derive(IntoResponses)]
    #[response(status = 400, description = "malformed request")]
    pub struct BadRequest(pub ErrorBody);

    /// 404.
    #[derive(IntoResponses)]
    #[response(status = 404, description = "no such user")]
    pub struct NotFound(pub ErrorBody);

    /// 503: a database is unavailable, or the request took too long.
    #[derive(IntoResponses)]
    #[response(
        status = 503,
        description = "database unavailable or request timed out"
    )]
    pub struct Unavailable(pub ErrorBody);

    /// What [`JsonBody`](super::JsonBody) refuses before the handler runs.
    #[derive(IntoResponses)]
    pub enum BodyRefused {
        #[response(
            status = 413,
            description = "body over the limit (user-service: 1 MiB)"
        )]
        TooLarge(ErrorBody),
        #[response(status = 415, description = "not a JSON content type")]
        NotJson(ErrorBody),
    }
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

/// The response for an API error: `status` and `{"error": <its message>}`.
/// A server error (5xx) is also logged with its detail, which the client does
/// not get (each service's messages for those say nothing internal).
pub fn api_error_response<E: std::error::Error>(status: StatusCode, error: &E) -> Response {
    if status.is_server_error() {
        tracing::error!(error = ?error, "request failed");
    }
    error_response(status, error.to_string())
}

/// Fallback for unknown routes: 404 with a JSON body.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such route")
}

/// The service's OpenAPI description, as served (shared, not copied, by
/// each request).
#[derive(Clone)]
struct Description(Bytes);

/// This description (OpenAPI 3.1, generated from the code).
#[utoipa::path(
    get, path = "/openapi.json", operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi_json(Extension(Description(document)): Extension<Description>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document,
    )
        .into_response()
}

/// The routes [`api`] adds to every service, for its OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(openapi_json, crate::metrics::render),
    components(schemas(ErrorBody))
)]
struct SharedRoutes;

/// Completes a service's API: `routes` plus `GET /metrics`, `GET /openapi.json`
/// and a JSON 404 for anything else; around them, a body limit of
/// `max_body_bytes` (axum's default when `None`), a 503 after `timeout`, the
/// HTTP metrics and request tracing. The OpenAPI description is generated from
/// `routes` (their `#[utoipa::path]`s and the types those name) and the shared
/// routes; it is returned as well as served.
pub fn api<S>(
    routes: OpenApiRouter<S>,
    timeout: Duration,
    max_body_bytes: Option<usize>,
) -> (Router<S>, utoipa::openapi::OpenApi)
where
    S: Clone + Send + Sync + 'static,
{
    let (routes, mut description) = routes.split_for_parts();
    description.merge(SharedRoutes::openapi());
    let served = Description(Bytes::from(description.to_json().unwrap_or_else(|e| {
        format!(r#"{{"error":"the description did not serialize: {e}"}}"#)
    })));
    let mut router = routes
        .route("/metrics", get(crate::metrics::render))
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found);
    if let Some(max) = max_body_bytes {
        router = router.layer(DefaultBodyLimit::max(max));
    }
    let router = router
        .layer(Extension(served))
        .layer(middleware::from_fn_with_state(timeout, request_timeout))
        .layer(middleware::from_fn(crate::metrics::track_http))
        .layer(TraceLayer::new_for_http());
    (router, description)
}

/// Answers 503 with a JSON body when the rest of the stack takes longer than
/// `limit` (the request's work is dropped: an open transaction rolls back).
/// Use with `axum::middleware::from_fn_with_state(limit, request_timeout)`.
pub async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
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

#[cfg(test)]
mod tests {
    use axum::{body::Body, routing::post};
    use tower::ServiceExt;

    use super::*;

    async fn call(app: &Router, request: Request) -> (StatusCode, String) {
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn request(method: &str, uri: &str, body: Body) -> Request {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .expect("request")
    }

    #[tokio::test]
    async fn api_adds_the_shared_routes_to_the_router_and_its_description() {
        let (app, description) = api(OpenApiRouter::new(), Duration::from_secs(1), None);
        let (status, body) = call(&app, request("GET", "/openapi.json", Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        let served: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(served, serde_json::to_value(&description).expect("JSON"));
        assert_eq!(served["openapi"], "3.1.0");
        for path in ["/metrics", "/openapi.json"] {
            assert!(served["paths"][path]["get"].is_object(), "{path}: {body}");
        }
        let (status, _) = call(&app, request("GET", "/metrics", Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = call(&app, request("GET", "/nowhere", Body::empty())).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::NOT_FOUND, r#"{"error":"no such route"}"#)
        );
    }

    #[tokio::test]
    async fn an_api_error_is_its_status_and_message_in_json() {
        let not_found = std::io::Error::other("user 7 not found");
        let response = api_error_response(StatusCode::NOT_FOUND, &not_found);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(&body[..], br#"{"error":"user 7 not found"}"#);
    }

    #[tokio::test]
    async fn api_limits_bodies_and_time() {
        let routes = OpenApiRouter::new()
            .route("/echo", post(|body: String| async move { body }))
            .route(
                "/slow",
                get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }),
            );
        let (app, _) = api(routes, Duration::from_millis(50), Some(4));
        let (status, _) = call(&app, request("POST", "/echo", Body::from("four"))).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call(&app, request("POST", "/echo", Body::from("fives"))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, body) = call(&app, request("GET", "/slow", Body::empty())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
}
