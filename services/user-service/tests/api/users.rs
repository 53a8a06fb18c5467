use chrono::{DateTime, Utc};
use events::EventType;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn create_returns_201_with_the_demo_shape_and_publishes_user_created() {
    let app = TestApp::spawn().await;
    let user = app.create_user("John Doe", "john@example.com").await;
    assert_eq!(keys(&user), ["email", "id", "name", "updated_at"]);
    assert_eq!(user["name"], "John Doe");
    assert_eq!(user["email"], "john@example.com");
    let updated_at: DateTime<Utc> =
        serde_json::from_value(user["updated_at"].clone()).expect("RFC 3339");

    let events = app.wait_for_events(1).await;
    let event = &events[0];
    assert_eq!(event.kind, EventType::UserCreated);
    assert_eq!(event.version, 1);
    assert_eq!(
        i64::from(event.payload.id),
        user["id"].as_i64().expect("id")
    );
    assert_eq!(event.payload.name, "John Doe");
    assert_eq!(event.payload.updated_at, updated_at);
}

#[tokio::test]
async fn the_demo_readme_examples_work_verbatim() {
    let app = TestApp::spawn().await;
    let created = app
        .post_json(
            "/users",
            &json!({"name": "John Doe", "email": "john@example.com"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let id = created["id"].as_i64().expect("id");

    let updated = app
        .put_json(
            &format!("/users/{id}"),
            &json!({"name": "John Doe Updated", "email": "john.updated@example.com"}),
        )
        .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.expect("json");
    assert_eq!(updated["name"], "John Doe Updated");
    assert_eq!(updated["email"], "john.updated@example.com");
    assert_eq!(updated["id"], created["id"]);

    let listed: Value = app.get("/users").await.json().await.expect("json");
    assert_eq!(listed, json!([updated]));
}

#[tokio::test]
async fn update_bumps_the_version_and_publishes_user_updated() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let id = user["id"].as_i64().expect("id");
    for n in 1..=2 {
        let response = app
            .put_json(
                &format!("/users/{id}"),
                &json!({"name": format!("Ada {n}"), "email": "ada@example.com"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let events = app.wait_for_events(3).await;
    let versions: Vec<i64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(events[2].kind, EventType::UserUpdated);
    assert_eq!(events[2].payload.name, "Ada 2");
    assert!(
        events[1].payload.updated_at < events[2].payload.updated_at,
        "updated_at rises with the version"
    );
}

#[tokio::test]
async fn users_are_listed_in_id_order_and_fetched_one_by_one() {
    let app = TestApp::spawn().await;
    let a = app.create_user("A", "a@example.com").await;
    let b = app.create_user("B", "b@example.com").await;
    let listed: Value = app.get("/users").await.json().await.expect("json");
    assert_eq!(listed, json!([a, b]));
    let one = app.get(&format!("/users/{}", b["id"])).await;
    assert_eq!(one.status(), StatusCode::OK);
    assert_eq!(one.json::<Value>().await.expect("json"), b);
}

#[tokio::test]
async fn delete_returns_204_and_publishes_user_deleted_with_the_next_version() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Gone", "gone@example.com").await;
    let path = format!("/users/{}", user["id"]);
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path).await.status(), StatusCode::NOT_FOUND);
    let events = app.wait_for_events(2).await;
    assert_eq!(events[1].kind, EventType::UserDeleted);
    assert_eq!(events[1].version, 2);
    assert_eq!(events[1].payload.email, "gone@example.com");
    // The email is free again.
    app.create_user("Back", "gone@example.com").await;
}

#[tokio::test]
async fn concurrent_updates_of_one_user_get_distinct_consecutive_versions() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Racer", "racer@example.com").await;
    let path = format!("/users/{}", user["id"]);
    let updates = (0..100).map(|n| {
        let app = &app;
        let path = path.clone();
        async move {
            let response = app
                .put_json(
                    &path,
                    &json!({"name": format!("Racer {n}"), "email": "racer@example.com"}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
        }
    });
    futures::future::join_all(updates).await;
    let mut versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM outbox ORDER BY version")
        .fetch_all(&app.pool)
        .await
        .expect("versions");
    versions.dedup();
    assert_eq!(versions, (1..=101).collect::<Vec<i64>>());
}

#[tokio::test]
async fn include_version_adds_each_users_version_and_anything_else_is_400() {
    let app = TestApp::spawn().await;
    let a = app.create_user("A", "a@example.com").await;
    let b = app.create_user("B", "b@example.com").await;
    let path = format!("/users/{}", b["id"]);
    let response = app
        .put_json(&path, &json!({"name": "B2", "email": "b@example.com"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let b2: Value = response.json().await.expect("json");

    let listed: Value = app
        .get("/users?include=version")
        .await
        .json()
        .await
        .expect("json");
    let mut a1 = a.clone();
    a1["version"] = json!(1);
    let mut b2v = b2.clone();
    b2v["version"] = json!(2);
    assert_eq!(listed, json!([a1, b2v]));

    testkit::http::assert_json_error(
        app.get("/users?include=secrets").await,
        StatusCode::BAD_REQUEST,
        "unknown include",
    )
    .await;
    let ignored: Value = app.get("/users?page=2").await.json().await.expect("json");
    assert_eq!(ignored, json!([a, b2]), "other parameters are ignored");
}

#[tokio::test]
async fn get_users_with_after_id_and_limit_returns_one_page_by_id() {
    let app = TestApp::spawn().await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(
            app.create_user(&format!("User {i}"), &format!("u{i}@example.com"))
                .await,
        );
    }
    let id = |i: usize| users[i]["id"].as_i64().expect("id");
    let page = |query: String| {
        let app = &app;
        async move {
            let response = app.get(&format!("/users?{query}")).await;
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            response.json::<Value>().await.expect("json")
        }
    };

    assert_eq!(page("limit=2".into()).await, json!([users[0], users[1]]));
    assert_eq!(
        page(format!("after_id={}&limit=2", id(1))).await,
        json!([users[2], users[3]])
    );
    assert_eq!(
        page(format!("after_id={}&limit=2", id(3))).await,
        json!([users[4]]),
        "the last page is short"
    );
    assert_eq!(page(format!("after_id={}", id(4))).await, json!([]));
    let versioned = page(format!("after_id={}&limit=1&include=version", id(0))).await;
    assert_eq!(versioned[0]["id"], users[1]["id"]);
    assert_eq!(versioned[0]["version"], 1);

    for bad in [
        "limit=0",
        "limit=10001",
        "limit=-1",
        "limit=two",
        "after_id=x",
    ] {
        testkit::http::assert_json_error(
            app.get(&format!("/users?{bad}")).await,
            StatusCode::BAD_REQUEST,
            bad,
        )
        .await;
    }
}
