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
