//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer);
//! each service says what "its dependencies answer" means by implementing
//! [`Dependencies`] for its state.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc};

use axum::{
    Json,
    extract::{FromRef, State},
    http::StatusCode,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Each dependency by name, and whether it answers, once checked.
pub type Checking<'a> = Pin<Box<dyn Future<Output = Vec<(&'static str, bool)>> + Send + 'a>>;

/// What a service's `/readyz` checks.
pub trait Dependencies: Send + Sync + 'static {
    /// Each dependency by name, and whether it answers.
    fn check(&self) -> Checking<'_>;
}

/// A service's dependencies, as `/readyz` takes them from its state.
#[derive(Clone)]
pub struct Checks(Arc<dyn Dependencies>);

impl<S: Dependencies + Clone> FromRef<S> for Checks {
    fn from_ref(state: &S) -> Self {
        Self(Arc::new(state.clone()))
    }
}

/// `/healthz` and `/readyz`, documented.
pub fn router<S: Dependencies + Clone>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The body of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Alive {
    /// Always `ok`.
    pub status: &'static str,
}

/// The process is alive.
///
/// Always `{"status": "ok"}`.
#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz",
    responses((status = 200, description = "alive", body = Alive))
)]
pub async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

/// The body of `/readyz`: each dependency (user-service: `postgres` and
/// `nats`; notification-service: `mongodb` and `nats`) and whether it answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness(BTreeMap<String, bool>);

/// Dependencies answer: 200, else 503 saying which is down.
#[utoipa::path(
    get, path = "/readyz", operation_id = "readyz",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "not ready", body = Readiness),
    )
)]
async fn readyz(State(Checks(dependencies)): State<Checks>) -> (StatusCode, Json<Readiness>) {
    let checks = dependencies.check().await;
    let status = readiness(checks.iter().map(|&(_, ok)| ok));
    let body = checks
        .into_iter()
        .map(|(name, ok)| (name.to_owned(), ok))
        .collect();
    (status, Json(Readiness(body)))
}

/// The `/readyz` status for a service's checks: 200 when all pass, else 503.
pub fn readiness(checks: impl IntoIterator<Item = bool>) -> StatusCode {
    if checks.into_iter().all(|ok| ok) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        assert_eq!(readiness([true, true]), StatusCode::OK);
        assert_eq!(readiness([true, false]), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(readiness([false, true]), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[derive(Clone)]
    struct Half;

    impl Dependencies for Half {
        fn check(&self) -> Checking<'_> {
            Box::pin(async { vec![("postgres", true), ("nats", false)] })
        }
    }

    #[tokio::test]
    async fn readyz_names_each_dependency_and_is_503_until_all_answer() {
        let (status, Json(Readiness(body))) = readyz(State(Checks::from_ref(&Half))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            serde_json::to_value(body).expect("JSON"),
            serde_json::json!({"postgres": true, "nats": false})
        );
    }
}
