//! The OpenAPI description at `/openapi.json` against the running service.

use serde_json::Value;
use testkit::openapi::{check_conformance, check_snapshot};

use crate::helpers::TestApp;

#[tokio::test]
async fn every_documented_operation_answers_as_documented_and_nothing_else_is_routed() {
    let app = TestApp::spawn().await;
    let served: Value = app.get("/openapi.json").await.json().await.expect("json");
    let (_, generated) = user_service::routes::api(std::time::Duration::from_secs(1));
    assert_eq!(served, serde_json::to_value(generated).expect("JSON"));
    assert_eq!(served["openapi"], "3.1.0");

    let user = app.create_user("Described", "described@example.com").await;
    // An existing user (the PUT and DELETE change it), a missing one, a malformed id.
    for id in [
        user["id"].to_string(),
        "999999".to_owned(),
        "abc".to_owned(),
    ] {
        let checked = check_conformance(&app.http, &app.base, &served, &id)
            .await
            .unwrap_or_else(|problems| panic!("id {id}:\n{problems}"));
        assert!(checked >= 25, "only {checked} calls");
    }
}

/// The committed `openapi.json` is what the code generates (review sees API
/// changes there; `OPENAPI_UPDATE=1` rewrites it).
#[test]
fn the_committed_description_is_the_generated_one() {
    let (_, generated) = user_service::routes::api(std::time::Duration::from_secs(1));
    check_snapshot(&generated, env!("CARGO_MANIFEST_DIR")).unwrap_or_else(|e| panic!("{e}"));
}
