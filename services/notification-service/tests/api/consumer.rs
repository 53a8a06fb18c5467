use events::EventType::{UserCreated, UserDeleted, UserUpdated};
use mongodb::bson::doc;
use serde_json::json;

use crate::helpers::{TestApp, event};

#[tokio::test]
async fn created_and_updated_events_build_the_copy_in_the_demo_shape() {
    let app = TestApp::spawn().await;
    let publisher = app.publisher();
    publisher
        .publish(&event(UserCreated, 1, 1, "John Doe"))
        .await;
    publisher
        .publish(&event(UserUpdated, 1, 2, "John Doe Updated"))
        .await;
    let copy = app.wait_for_name(1, "John Doe Updated").await;
    assert_eq!(
        copy,
        json!({"user_id": 1, "name": "John Doe Updated", "email": "user1@example.com", "updated_at": "2025-05-25T10:00:02Z"})
    );
    let all: serde_json::Value = app.get("/notifications").await.json().await.expect("json");
    assert_eq!(all, json!([copy]));
}

#[tokio::test]
async fn a_duplicate_event_changes_nothing() {
    let app = TestApp::spawn().await;
    let publisher = app.publisher();
    publisher.publish(&event(UserCreated, 1, 1, "A")).await;
    publisher.publish(&event(UserUpdated, 1, 2, "B")).await;
    app.wait_for_name(1, "B").await;
    // The same version again (a redelivery, or a republish past the dedup
    // window), here with other content so that applying it would show.
    publisher
        .publish(&event(UserUpdated, 1, 2, "B again"))
        .await;
    publisher.wait_until_consumed().await;
    assert_eq!(app.copy_of(1).await.expect("copy")["name"], "B");
}

#[tokio::test]
async fn an_older_event_arriving_late_changes_nothing() {
    let app = TestApp::spawn().await;
    let publisher = app.publisher();
    publisher.publish(&event(UserCreated, 7, 1, "v1")).await;
    publisher.publish(&event(UserUpdated, 7, 3, "v3")).await;
    publisher.publish(&event(UserUpdated, 7, 2, "v2")).await;
    publisher.wait_until_consumed().await;
    let copy = app.copy_of(7).await.expect("copy");
    assert_eq!(copy["name"], "v3");
    assert_eq!(copy["updated_at"], "2025-05-25T10:00:03Z");
}

#[tokio::test]
async fn a_newer_event_arriving_first_is_kept_when_the_create_comes_late() {
    let app = TestApp::spawn().await;
    let publisher = app.publisher();
    publisher
        .publish(&event(UserUpdated, 3, 2, "updated"))
        .await;
    publisher
        .publish(&event(UserCreated, 3, 1, "created"))
        .await;
    publisher.wait_until_consumed().await;
    assert_eq!(app.copy_of(3).await.expect("copy")["name"], "updated");
}

#[tokio::test]
async fn a_deleted_user_is_gone_and_a_late_update_does_not_bring_it_back() {
    let app = TestApp::spawn().await;
    let publisher = app.publisher();
    publisher
        .publish(&event(UserCreated, 5, 1, "Short-lived"))
        .await;
    publisher.publish(&event(UserCreated, 6, 1, "Stays")).await;
    app.wait_for_name(5, "Short-lived").await;
    publisher
        .publish(&event(UserDeleted, 5, 3, "Short-lived"))
        .await;
    publisher.publish(&event(UserUpdated, 5, 2, "Zombie")).await;
    publisher.wait_until_consumed().await;
    assert_eq!(app.copy_of(5).await, None);
    let all: serde_json::Value = app.get("/notifications").await.json().await.expect("json");
    let ids: Vec<i64> = all
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["user_id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [6]);
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_next_event_still_applies() {
    let app = TestApp::spawn().await;
    let publisher = app.publisher();
    publisher.publish_raw(b"{not json".to_vec()).await;
    let mut unknown = serde_json::to_value(event(UserCreated, 2, 1, "x")).expect("json");
    unknown["type"] = json!("user_renamed");
    publisher
        .publish_raw(serde_json::to_vec(&unknown).expect("json"))
        .await;
    publisher
        .publish(&event(UserCreated, 2, 1, "After the poison"))
        .await;

    app.wait_for_name(2, "After the poison").await;
    publisher.wait_until_consumed().await;
    let letters = app
        .store()
        .await
        .dead_letters()
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].payload, "{not json");
    for letter in &letters {
        assert!(!letter.reason.is_empty(), "{letter:?}");
    }
    assert!(letters[1].reason.contains("user_renamed"), "{letters:?}");
}

#[tokio::test]
async fn documents_of_the_original_demo_are_taken_over_by_the_first_event() {
    let config = crate::helpers::test_config(None, None);
    let client = mongodb::Client::with_uri_str(&config.mongodb_uri)
        .await
        .expect("client");
    client
        .database(&config.database)
        .collection::<mongodb::bson::Document>("user_notifications")
        .insert_one(
            doc! {"user_id": 9_i64, "name": "Legacy", "email": "legacy@example.com",
            "updated_at": mongodb::bson::DateTime::from_millis(1_748_167_200_000)},
        )
        .await
        .expect("legacy document");
    let app = TestApp::spawn_with(config).await;
    assert_eq!(
        app.copy_of(9).await.expect("legacy copy is served")["name"],
        "Legacy"
    );
    app.publisher()
        .publish(&event(UserUpdated, 9, 1, "Synced"))
        .await;
    app.wait_for_name(9, "Synced").await;
}
