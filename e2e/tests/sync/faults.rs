use std::time::Duration;

use testkit::NatsServer;

use crate::stack::Stack;

#[tokio::test]
async fn writes_while_nats_is_stopped_all_succeed_and_all_arrive_after_it_restarts() {
    let mut nats = NatsServer::start().expect("nats-server");
    let stack = Stack::start_with_nats(nats.url()).await;
    let first = stack.create_user("Before", "before@example.com").await;
    stack.assert_converges().await;

    nats.stop();
    for n in 0..20 {
        stack
            .create_user(&format!("During {n}"), &format!("during{n}@example.com"))
            .await;
    }
    stack
        .update_user(&first["id"], "Before, renamed during", "before@example.com")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart().expect("nats-server restarts");

    let copy = stack.assert_converges().await;
    assert_eq!(copy.as_array().map(Vec::len), Some(21));
}

#[tokio::test]
async fn notification_service_stopped_during_writes_catches_up_on_restart() {
    let mut stack = Stack::start().await;
    let first = stack.create_user("Before", "before@example.com").await;
    stack.assert_converges().await;

    stack.stop_notifications().await;
    for n in 0..20 {
        stack
            .create_user(&format!("During {n}"), &format!("during{n}@example.com"))
            .await;
    }
    stack
        .update_user(
            &first["id"],
            "Renamed while the copy was down",
            "before@example.com",
        )
        .await;
    stack.restart_notifications().await;

    let copy = stack.assert_converges().await;
    assert_eq!(copy.as_array().map(Vec::len), Some(21));
}

#[tokio::test]
async fn a_user_service_restart_loses_nothing() {
    let mut stack = Stack::start().await;
    for n in 0..10 {
        stack
            .create_user(&format!("Before {n}"), &format!("before{n}@example.com"))
            .await;
    }
    stack.restart_users().await;
    for n in 0..10 {
        stack
            .create_user(&format!("After {n}"), &format!("after{n}@example.com"))
            .await;
    }
    let copy = stack.assert_converges().await;
    assert_eq!(copy.as_array().map(Vec::len), Some(20));
}
