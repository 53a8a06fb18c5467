use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn assert_json_error(response: reqwest::Response, status: StatusCode, case: &str) {
    assert_eq!(response.status(), status, "{case}");
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{case}: not JSON: {e}"));
    assert!(
        body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{case}: {body}"
    );
}

#[tokio::test]
async fn an_unknown_user_is_404_and_a_malformed_id_400_with_json_bodies() {
    let app = TestApp::spawn().await;
    assert_json_error(
        app.get("/notifications/user/42").await,
        StatusCode::NOT_FOUND,
        "unknown user",
    )
    .await;
    assert_json_error(
        app.get("/notifications/user/abc").await,
        StatusCode::BAD_REQUEST,
        "abc",
    )
    .await;
    assert_json_error(
        app.get("/nowhere").await,
        StatusCode::NOT_FOUND,
        "unknown route",
    )
    .await;
}

#[tokio::test]
async fn an_empty_copy_lists_as_an_empty_array() {
    let app = TestApp::spawn().await;
    let response = app.get("/notifications").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.expect("json"), json!([]));
}

#[tokio::test]
async fn health_and_readiness_answer_with_json() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    // The NATS connection is made in the background: ready soon, not at once.
    let ready =
        testkit::wait::eventually("readiness", std::time::Duration::from_secs(30), || async {
            let response = app.get("/readyz").await;
            let status = response.status();
            let body: Value = response.json().await.map_err(|e| e.to_string())?;
            if status == StatusCode::OK {
                Ok(body)
            } else {
                Err(format!("{status} {body}"))
            }
        })
        .await;
    assert_eq!(ready, json!({"mongodb": true, "nats": true}));
}

#[tokio::test]
async fn metrics_show_applied_events_and_the_sync_latency_histogram() {
    let app = TestApp::spawn().await;
    app.publisher()
        .publish(&crate::helpers::event(
            events::EventType::UserCreated,
            1,
            1,
            "M",
        ))
        .await;
    app.wait_for_name(1, "M").await;
    let text = app.get("/metrics").await.text().await.expect("text");
    assert!(
        text.contains("sync_events_total{type=\"user_created\",outcome=\"applied\"}"),
        "{text}"
    );
    assert!(text.contains("sync_latency_seconds_bucket"), "{text}");
}
