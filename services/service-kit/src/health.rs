//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer);
//! each service says what "its dependencies answer" means.

use axum::{Json, Router, handler::Handler, http::StatusCode, routing::get};
use serde_json::{Map, Value, json};

/// `/healthz` answered by [`healthz`] and `/readyz` by the service's own `readyz`.
pub fn router<S, H, T>(readyz: H) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    H: Handler<T, S>,
    T: 'static,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `GET /healthz`: always `{"status": "ok"}`.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The `/readyz` answer for named checks: 200 when all pass, else 503; the
/// body maps each name to whether it passed.
pub fn readiness<'a>(
    checks: impl IntoIterator<Item = (&'a str, bool)>,
) -> (StatusCode, Json<Value>) {
    let body: Map<String, Value> = checks
        .into_iter()
        .map(|(name, ok)| (name.to_owned(), Value::Bool(ok)))
        .collect();
    let status = if body.values().all(|ok| ok == &Value::Bool(true)) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Value::Object(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        let (status, Json(body)) = readiness([("postgres", true), ("nats", true)]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"postgres": true, "nats": true}));

        let (status, Json(body)) = readiness([("mongodb", true), ("nats", false)]);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({"mongodb": true, "nats": false}));
    }
}
