//! Prometheus metrics: one recorder per process, rendered at `GET /metrics`,
//! and a middleware counting HTTP requests by method, matched route and status.

use std::{sync::OnceLock, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::IntoResponse,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds: about 1.5x apart from 0.25 ms to 15 s, fine
/// enough to read p50 and p99 anywhere between 0.5 ms and 10 s.
pub fn latency_buckets() -> Vec<f64> {
    let mut buckets = Vec::new();
    let mut b = 0.000_25;
    while b < 15.0 {
        buckets.push((b * 1e6_f64).round() / 1e6);
        b *= 1.5;
    }
    buckets
}

/// The process-wide recorder, installed on first use. Tests start several
/// services in one process; they share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency_buckets())
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (only possible in embedding
                // programs): keep a private one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Prometheus metrics.
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
pub async fn render() -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        handle().render(),
    )
}

/// Middleware: `http_requests_total` and `http_request_duration_seconds`,
/// labelled by the matched route (never the raw path, which would make one
/// series per user id).
pub async fn track_http(req: Request, next: Next) -> impl IntoResponse {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_half_a_millisecond_to_ten_seconds_finely() {
        let b = latency_buckets();
        assert!(b[0] <= 0.0005 && *b.last().unwrap() >= 10.0, "{b:?}");
        for pair in b.windows(2) {
            assert!(pair[1] > pair[0] && pair[1] / pair[0] <= 1.51, "{pair:?}");
        }
    }
}
