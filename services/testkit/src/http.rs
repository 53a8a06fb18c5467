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
