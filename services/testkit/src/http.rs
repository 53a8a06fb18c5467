//! HTTP assertions both services' tests use.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::wait::eventually;

/// Asserts a response is an error with `status` and a JSON `{"error": "..."}`
/// body with a message.
pub async fn assert_json_error(response: Response, status: StatusCode, case: &str) {
    assert_eq!(response.status(), status, "{case}");
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{case}: body is not JSON: {e}"));
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: no error message in {body}"));
    assert!(!message.is_empty(), "{case}: empty error message");
}

/// Waits until `GET url` answers 200 and returns its JSON body. Services
/// connect to NATS in the background: ready soon, not at once.
pub async fn wait_until_ready(http: &reqwest::Client, url: &str) -> Value {
    eventually("readiness", Duration::from_secs(30), || async {
        let response = http.get(url).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await
}

/// A service's `/metrics` page, read one series at a time.
pub struct Metrics {
    http: reqwest::Client,
    url: String,
}

impl Metrics {
    /// The page of the service at `base` (`http://host:port`).
    pub fn of(http: &reqwest::Client, base: &str) -> Self {
        Self {
            http: http.clone(),
            url: format!("{base}/metrics"),
        }
    }

    /// The value of one series, named exactly as the page writes it
    /// (`name{label="value",...}`); 0 when the series is absent.
    pub async fn value(&self, series: &str) -> f64 {
        let text = self.page().await.unwrap_or_else(|e| panic!("{e}"));
        series_value(&text, series)
    }

    /// The whole page, or why it could not be read (for [`eventually`]).
    pub async fn page(&self) -> Result<String, String> {
        self.http
            .get(&self.url)
            .send()
            .await
            .and_then(Response::error_for_status)
            .map_err(|e| format!("GET {}: {e}", self.url))?
            .text()
            .await
            .map_err(|e| format!("reading {}: {e}", self.url))
    }

    /// Waits until `series` exceeds `above`, and returns it.
    pub async fn wait_above(&self, series: &str, above: f64) -> f64 {
        eventually(
            &format!("{series} above {above}"),
            Duration::from_secs(30),
            || async {
                let value = self.value(series).await;
                if value > above {
                    Ok(value)
                } else {
                    Err(format!("{value}"))
                }
            },
        )
        .await
    }
}

/// The value of `series` in a Prometheus text page (0 when absent).
pub fn series_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::series_value;

    #[test]
    fn a_series_value_is_read_by_its_exact_name_and_labels() {
        let page = "# TYPE a counter\na{type=\"x\"} 3\na{type=\"xy\"} 5\nab 7\na 1.5\n";
        assert!((series_value(page, "a{type=\"x\"}") - 3.0).abs() < f64::EPSILON);
        assert!((series_value(page, "a{type=\"xy\"}") - 5.0).abs() < f64::EPSILON);
        assert!((series_value(page, "a") - 1.5).abs() < f64::EPSILON);
        assert!(series_value(page, "b").abs() < f64::EPSILON, "absent is 0");
    }
}
