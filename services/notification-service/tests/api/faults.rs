use std::time::Duration;

use events::EventType::{UserCreated, UserUpdated};
use testkit::{FerretDb, NatsServer};

use crate::helpers::{TestApp, event, test_config};

#[tokio::test]
async fn mongodb_down_during_delivery_loses_nothing_once_it_is_back() {
    let mut mongo = FerretDb::start().expect("ferretdb");
    let app = TestApp::spawn_with(test_config(Some(mongo.uri()), None)).await;
    let publisher = app.publisher();
    publisher.publish(&event(UserCreated, 1, 1, "Before")).await;
    app.wait_for_name(1, "Before").await;

    let errors_before = app.metrics().value("sync_store_errors_total").await;
    mongo.stop();
    for id in 2..=21 {
        publisher
            .publish(&event(UserCreated, id, 1, &format!("During {id}")))
            .await;
    }
    publisher
        .publish(&event(UserUpdated, 1, 2, "Renamed during"))
        .await;
    // The consumer must have failed against the stopped server (and be
    // retrying) before it comes back: otherwise the fault was not tested.
    app.metrics()
        .wait_above("sync_store_errors_total", errors_before)
        .await;
    mongo.restart().expect("ferretdb restarts");

    app.wait_for_name(1, "Renamed during").await;
    for id in 2..=21 {
        app.wait_for_name(id, &format!("During {id}")).await;
    }
    publisher.wait_until_consumed().await;
}

#[tokio::test]
async fn a_consumer_stopped_during_writes_catches_up_on_restart() {
    let config = test_config(None, None);
    let app = TestApp::spawn_with(config.clone()).await;
    let publisher = app.publisher();
    publisher.publish(&event(UserCreated, 1, 1, "First")).await;
    app.wait_for_name(1, "First").await;
    app.shutdown().await;

    for id in 2..=30 {
        publisher
            .publish(&event(UserCreated, id, 1, &format!("While stopped {id}")))
            .await;
    }
    publisher
        .publish(&event(UserUpdated, 1, 2, "Updated while stopped"))
        .await;

    let app = TestApp::spawn_with(config).await;
    app.wait_for_name(1, "Updated while stopped").await;
    for id in 2..=30 {
        app.wait_for_name(id, &format!("While stopped {id}")).await;
    }
}

#[tokio::test]
async fn a_nats_restart_interrupts_nothing() {
    let mut nats = NatsServer::start().expect("nats-server");
    let app = TestApp::spawn_with(test_config(None, Some(nats.url()))).await;
    let publisher = app.publisher();
    publisher.publish(&event(UserCreated, 1, 1, "Before")).await;
    app.wait_for_name(1, "Before").await;
    nats.stop();
    nats.restart().expect("nats-server restarts");
    publisher
        .publish(&event(UserUpdated, 1, 2, "After the restart"))
        .await;
    app.wait_for_name(1, "After the restart").await;
}

#[tokio::test]
async fn the_service_starts_while_nats_is_down_and_consumes_once_it_is_up() {
    let mut nats = NatsServer::start().expect("nats-server");
    let config = test_config(None, Some(nats.url()));
    nats.stop();
    let app = TestApp::spawn_with(config).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart().expect("nats-server starts");
    app.publisher()
        .publish(&event(UserCreated, 1, 1, "Late start"))
        .await;
    app.wait_for_name(1, "Late start").await;
}
