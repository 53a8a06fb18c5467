use reqwest::StatusCode;
use serde_json::json;

use crate::stack::Stack;

#[tokio::test]
async fn create_update_and_delete_reach_the_copy_with_the_exact_shapes() {
    let stack = Stack::start().await;
    let user = stack.create_user("John Doe", "john@example.com").await;
    let id = &user["id"];
    let expected = json!({"user_id": id, "name": "John Doe", "email": "john@example.com", "updated_at": user["updated_at"]});
    stack.wait_for_copy(id, &expected).await;

    let updated = stack
        .update_user(id, "John Doe Updated", "john.updated@example.com")
        .await;
    let expected = json!({"user_id": id, "name": "John Doe Updated", "email": "john.updated@example.com", "updated_at": updated["updated_at"]});
    stack.wait_for_copy(id, &expected).await;

    stack.delete_user(id).await;
    let copy = stack.assert_converges().await;
    assert_eq!(copy, json!([]));
    let response = stack
        .http
        .get(stack.notifications_url(&format!("/notifications/user/{id}")))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_hundred_concurrent_updates_of_one_user_end_with_the_copy_equal_to_the_source() {
    let stack = &Stack::start().await;
    let user = stack.create_user("Racer", "racer@example.com").await;
    let id = &user["id"];
    let updates = (0..100).map(|n| async move {
        stack
            .update_user(id, &format!("Racer {n}"), &format!("racer{n}@example.com"))
            .await
    });
    futures::future::join_all(updates).await;
    let copy = stack.assert_converges().await;
    assert_eq!(copy.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn many_users_written_at_once_all_converge() {
    let stack = &Stack::start().await;
    let creates = (0..40).map(|n| async move {
        stack
            .create_user(&format!("User {n}"), &format!("user{n}@example.com"))
            .await
    });
    let users = futures::future::join_all(creates).await;
    let changes = users.iter().enumerate().map(|(n, user)| async move {
        for round in 0..3 {
            stack
                .update_user(
                    &user["id"],
                    &format!("User {n} r{round}"),
                    &format!("user{n}.r{round}@example.com"),
                )
                .await;
        }
        if n % 5 == 0 {
            stack.delete_user(&user["id"]).await;
        }
    });
    futures::future::join_all(changes).await;
    let copy = stack.assert_converges().await;
    assert_eq!(copy.as_array().map(Vec::len), Some(32));
}

/// Two instances of each service: writes through both user-services, the
/// events shared out between two notification-services on one durable
/// consumer, so one user's events are applied by either, in any order. Each
/// copy is replaced only by a newer version, atomically (a compare-and-set),
/// so the copy still ends equal to the source. (With a write guarded by the
/// `_id` alone, an instance that remembered an older version put it back
/// over a newer one: 32 of 60 users stale in a load test.)
#[tokio::test]
async fn two_instances_of_each_service_keep_the_copy_equal_to_the_source() {
    let stack = &Stack::start_scaled_out().await;
    let bases = stack.users_bases();
    assert_eq!(bases.len(), 2);
    let mut users = Vec::new();
    for n in 0..12 {
        users.push(
            stack
                .create_user(&format!("Scaled {n}"), &format!("scaled{n}@example.com"))
                .await,
        );
    }
    let users = &users;
    let bases = &bases;
    let writers = (0..8).map(|writer| async move {
        for round in 0..60 {
            let user = &users[(writer * 7 + round) % users.len()];
            let base = &bases[round % bases.len()];
            stack
                .update_user_at(
                    base,
                    &user["id"],
                    &format!("Scaled w{writer} r{round}"),
                    &format!("scaled.w{writer}.r{round}@example.com"),
                )
                .await;
        }
    });
    futures::future::join_all(writers).await;
    let copy = stack.assert_converges().await;
    assert_eq!(copy.as_array().map(Vec::len), Some(12));
}
