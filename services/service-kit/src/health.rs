//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer);
//! each service says what "its dependencies answer" means, with its own
//! `#[utoipa::path]`-documented `readyz`.

use axum::{Json, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// `/healthz`, answered by [`healthz`]; a service adds its `/readyz`.
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new().routes(routes!(healthz))
}

/// The body of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Alive {
    /// Always `ok`.
    pub status: &'static str,
}

/// `GET /healthz`: always `{"status": "ok"}`.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    summary = "The process is alive.",
    responses((status = 200, description = "alive", body = Alive))
)]
pub async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
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
}
