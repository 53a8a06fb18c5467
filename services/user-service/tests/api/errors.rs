use reqwest::StatusCode;
use serde_json::{Value, json};

use testkit::http::assert_json_error;

use crate::helpers::TestApp;

/// Every rejected request must leave the users and the outbox as they were.
async fn assert_nothing_changed(
    app: &TestApp,
    users_before: &Value,
    outbox_before: i64,
    case: &str,
) {
    let users: Value = app.get("/users").await.json().await.expect("json");
    assert_eq!(&users, users_before, "{case}: users changed");
    assert_eq!(
        app.outbox_rows().await,
        outbox_before,
        "{case}: an event was recorded"
    );
}

#[tokio::test]
async fn bad_bodies_are_rejected_with_a_json_error_and_change_nothing() {
    let app = TestApp::spawn().await;
    let existing = app.create_user("Taken", "taken@example.com").await;
    let id = existing["id"].as_i64().expect("id");
    let users_before: Value = app.get("/users").await.json().await.expect("json");
    let outbox_before = app.outbox_rows().await;

    let cases: Vec<(&str, &str, String, StatusCode)> = vec![
        (
            "malformed JSON",
            "POST",
            "{\"name\": ".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not an object",
            "POST",
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "name is a number",
            "POST",
            r#"{"name": 5, "email": "n@example.com"}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "email missing",
            "POST",
            r#"{"name": "N"}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown field",
            "POST",
            r#"{"name": "N", "email": "n@example.com", "admin": true}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "blank name",
            "POST",
            r#"{"name": "  ", "email": "n@example.com"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "name too long",
            "POST",
            format!(
                r#"{{"name": "{}", "email": "n@example.com"}}"#,
                "x".repeat(256)
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "invalid email",
            "POST",
            r#"{"name": "N", "email": "not-an-email"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "duplicate email",
            "POST",
            r#"{"name": "N", "email": "taken@example.com"}"#.into(),
            StatusCode::CONFLICT,
        ),
        (
            "duplicate email in other case",
            "POST",
            r#"{"name": "N", "email": "TAKEN@Example.com"}"#.into(),
            StatusCode::CONFLICT,
        ),
        (
            "update with malformed JSON",
            "PUT",
            "nope".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "update with invalid email",
            "PUT",
            r#"{"name": "N", "email": "a@"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (case, method, body, status) in cases {
        let request = match method {
            "POST" => app.http.post(app.url("/users")),
            _ => app.http.put(app.url(&format!("/users/{id}"))),
        };
        let response = request
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_json_error(response, status, case).await;
        assert_nothing_changed(&app, &users_before, outbox_before, case).await;
    }
}

#[tokio::test]
async fn update_to_an_email_another_user_has_is_409() {
    let app = TestApp::spawn().await;
    app.create_user("A", "a@example.com").await;
    let b = app.create_user("B", "b@example.com").await;
    let users_before: Value = app.get("/users").await.json().await.expect("json");
    let outbox_before = app.outbox_rows().await;
    let response = app
        .put_json(
            &format!("/users/{}", b["id"]),
            &json!({"name": "B", "email": "A@example.com"}),
        )
        .await;
    assert_json_error(response, StatusCode::CONFLICT, "taking a's email").await;
    assert_nothing_changed(&app, &users_before, outbox_before, "taking a's email").await;
}

#[tokio::test]
async fn unknown_ids_are_404_and_malformed_ids_400() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "N", "email": "n@example.com"});
    for (response, status, what) in [
        (
            app.get("/users/999999").await,
            StatusCode::NOT_FOUND,
            "GET unknown",
        ),
        (
            app.put_json("/users/999999", &body).await,
            StatusCode::NOT_FOUND,
            "PUT unknown",
        ),
        (
            app.delete("/users/999999").await,
            StatusCode::NOT_FOUND,
            "DELETE unknown",
        ),
        (
            app.get("/users/abc").await,
            StatusCode::BAD_REQUEST,
            "GET abc",
        ),
        (
            app.put_json("/users/99999999999", &body).await,
            StatusCode::BAD_REQUEST,
            "PUT huge id",
        ),
        (
            app.get("/nowhere").await,
            StatusCode::NOT_FOUND,
            "unknown route",
        ),
    ] {
        assert_json_error(response, status, what).await;
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413() {
    let app = TestApp::spawn().await;
    let body = format!(
        r#"{{"name": "{}", "email": "big@example.com"}}"#,
        "x".repeat(1024 * 1024)
    );
    let response = app
        .http
        .post(app.url("/users"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_json_error(response, StatusCode::PAYLOAD_TOO_LARGE, "1 MiB name").await;
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_415() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/users"))
        .body(r#"{"name": "N", "email": "n@example.com"}"#)
        .send()
        .await
        .expect("request");
    assert_json_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "no content type",
    )
    .await;
}

#[tokio::test]
async fn a_blocked_database_gives_503_json_errors_not_a_hang_and_changes_nothing() {
    let mut config = crate::helpers::test_config(None).await;
    config.max_connections = 1;
    config.acquire_timeout = std::time::Duration::from_millis(300);
    config.request_timeout = std::time::Duration::from_millis(1500);
    let app = TestApp::spawn_with(config).await;
    let users_before: Value = app.get("/users").await.json().await.expect("json");
    let outbox_before = app.outbox_rows().await;

    // Another client holds a lock every statement on users waits for.
    let mut blocker = app.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    // The write takes the service's only connection and waits on the lock;
    // the read then finds the pool exhausted.
    let body = json!({"name": "Blocked", "email": "blocked@example.com"});
    let both = async {
        tokio::join!(app.post_json("/users", &body), async {
            // Read only once the write is seen waiting on the lock.
            testkit::wait::eventually(
                "the write to wait on the lock",
                std::time::Duration::from_secs(5),
                || async {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    )
                    .fetch_one(&app.pool)
                    .await
                    .map_err(|e| e.to_string())?;
                    if waiting > 0 {
                        Ok(())
                    } else {
                        Err("none waiting".into())
                    }
                },
            )
            .await;
            app.get("/users").await
        })
    };
    let (write, read) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
        .await
        .expect("answers, not a hang");
    // Each 503 for its own reason: the read found the pool exhausted, the
    // write ran out of time waiting on the lock.
    let read: Value = error_body(read, "pool exhausted").await;
    assert_eq!(read["error"], "the database is unavailable", "{read}");
    let write: Value = error_body(write, "request timeout").await;
    assert!(
        write["error"]
            .as_str()
            .is_some_and(|e| e.contains("took longer than 1500 ms")),
        "{write}"
    );

    blocker.rollback().await.expect("rollback");
    assert_nothing_changed(&app, &users_before, outbox_before, "timed-out write").await;
}

/// Asserts a 503 with a JSON error body, and returns the body.
async fn error_body(response: reqwest::Response, case: &str) -> Value {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{case}");
    response.json().await.expect("a JSON body")
}
