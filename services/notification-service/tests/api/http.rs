use reqwest::StatusCode;
use serde_json::{Value, json};

use testkit::http::{assert_json_error, wait_until_ready};

use crate::helpers::TestApp;

#[tokio::test]
async fn an_unknown_user_is_404_and_a_malformed_id_400_with_json_bodies() {
    let app = TestApp::spawn().await;
    for (path, status) in [
        ("/notifications/user/42", StatusCode::NOT_FOUND),
        ("/notifications/user/abc", StatusCode::BAD_REQUEST),
        ("/nowhere", StatusCode::NOT_FOUND),
    ] {
        assert_json_error(app.get(path).await, status, path).await;
    }
}

#[tokio::test]
async fn an_empty_copy_lists_as_an_empty_array() {
    let app = TestApp::spawn().await;
    let response = app.get("/notifications").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.expect("json"), json!([]));
}

#[tokio::test]
async fn after_id_and_limit_give_one_page_of_live_copies_by_user_id() {
    use events::EventType::{UserCreated, UserDeleted};

    let app = TestApp::spawn().await;
    let store = app.store().await;
    store.prepare().await.expect("prepare");
    // Applied out of order; user 3 deleted (a tombstone, not listed).
    for id in [5, 1, 4, 3, 2] {
        let name = format!("user {id}");
        store
            .apply(&crate::helpers::event(UserCreated, id, 1, &name))
            .await
            .expect("apply");
    }
    store
        .apply(&crate::helpers::event(UserDeleted, 3, 2, "user 3"))
        .await
        .expect("apply");
    let ids = |query: &'static str| {
        let app = &app;
        async move {
            let response = app.get(&format!("/notifications?{query}")).await;
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            let body: Vec<Value> = response.json().await.expect("json");
            body.iter()
                .map(|copy| copy["user_id"].as_i64().expect("user_id"))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids("").await,
        [1, 2, 4, 5],
        "no parameters: every live copy"
    );
    assert_eq!(ids("limit=2").await, [1, 2]);
    assert_eq!(ids("after_id=2&limit=2").await, [4, 5]);
    assert_eq!(
        ids("after_id=1").await,
        [2, 4, 5],
        "limit defaults to 10000"
    );
    assert_eq!(ids("after_id=5").await, Vec::<i64>::new());
    assert_eq!(ids("after_id=-7&limit=1").await, [1]);
    assert_eq!(
        ids("after_id=1&before_id=5").await,
        [2, 4],
        "a window of ids, both bounds excluded (read by key)"
    );
    assert_eq!(ids("before_id=3&limit=1").await, [1]);
    assert_eq!(ids("after_id=3&before_id=4").await, Vec::<i64>::new());
    assert_eq!(
        ids("after_id=1&before_id=20000").await,
        [2, 4, 5],
        "a window wider than 10,000 ids (read as a range)"
    );
    assert_eq!(
        ids("after_id=-2147483648&before_id=2147483647&limit=3").await,
        [1, 2, 4]
    );
    let page: Vec<Value> = app
        .get("/notifications?after_id=1&limit=1")
        .await
        .json()
        .await
        .expect("json");
    let whole: Vec<Value> = app.get("/notifications").await.json().await.expect("json");
    assert_eq!(
        page[0], whole[1],
        "a page lists copies as the whole list does"
    );

    for query in [
        "limit=0",
        "limit=10001",
        "limit=-1",
        "limit=two",
        "after_id=x",
        "after_id=99999999999",
        "after_id=4&before_id=4",
        "after_id=4&before_id=2",
        "before_id=0",
        "before_id=x",
    ] {
        let path = format!("/notifications?{query}");
        assert_json_error(app.get(&path).await, StatusCode::BAD_REQUEST, &path).await;
    }
}

#[tokio::test]
async fn health_and_readiness_answer_with_json() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let ready = wait_until_ready(&app.http, &format!("{}/readyz", app.base)).await;
    assert_eq!(ready, json!({"mongodb": true, "nats": true}));
}

#[tokio::test]
async fn metrics_show_applied_events_and_the_sync_latency_histogram_with_its_stages() {
    let app = TestApp::spawn().await;
    // The registry is the process's, shared with the tests beside this one:
    // counters only grow, so "went up" is what can be asserted.
    let series = [
        "sync_events_total{type=\"user_created\",outcome=\"applied\"}",
        "sync_latency_seconds_count",
        "sync_delivery_seconds_count",
        "sync_write_seconds_count{command=\"insert\"}",
    ];
    let mut before = Vec::new();
    for name in series {
        before.push(app.metrics().value(name).await);
    }
    app.publisher()
        .publish(&crate::helpers::event(
            events::EventType::UserCreated,
            1,
            1,
            "M",
        ))
        .await;
    app.wait_for_name(1, "M").await;
    // Recorded as the write returns, which may be just after the copy shows.
    for (name, before) in series.into_iter().zip(before) {
        app.metrics().wait_above(name, before).await;
    }
}

#[tokio::test]
async fn metrics_name_the_server_leading_the_stream_and_the_consumer_on_one_server() {
    let app = TestApp::spawn().await;
    let metrics = app.metrics();
    // One server, no cluster: NATS reports a leader for the stream and none
    // for the consumer, which lives on that same server; the dashboard's
    // leader panels need both.
    testkit::wait::eventually(
        "a leader for the stream and the consumer",
        std::time::Duration::from_secs(30),
        || async {
            let text = metrics.page().await?;
            let leads = |prefix: &str| {
                text.lines()
                    .any(|line| line.starts_with(prefix) && line.ends_with(" 1"))
            };
            if leads("nats_stream_leader{peer=") && leads("nats_consumer_leader{peer=") {
                Ok(())
            } else {
                Err("no leader series at 1 for both".to_owned())
            }
        },
    )
    .await;
}
