//! Drift, replay and resync against a copy corrupted by hand, with both
//! services running.

use std::time::Duration;

use mongodb::bson::{Document, doc};
use notification_service::{
    repair::{self, Drift},
    store::NotificationStore,
};
use testkit::wait::eventually;

use crate::stack::Stack;

/// Three users, synced; then one copy dropped and one edited behind the
/// service's back. Returns the copies collection.
async fn corrupted(stack: &Stack) -> mongodb::Collection<Document> {
    let a = stack.create_user("Ann", "ann@example.com").await;
    let b = stack.create_user("Bob", "bob@example.com").await;
    stack.create_user("Cid", "cid@example.com").await;
    stack
        .update_user(&b["id"], "Bob Two", "bob@example.com")
        .await;
    stack.assert_converges().await;

    let store = stack.repair_store().await;
    let copies = store
        .database()
        .collection::<Document>("user_notifications");
    copies
        .delete_one(doc! {"user_id": a["id"].as_i64().expect("id")})
        .await
        .expect("drop");
    copies
        .update_one(
            doc! {"user_id": b["id"].as_i64().expect("id")},
            doc! {"$set": {"name": "Edited by hand"}},
        )
        .await
        .expect("edit");
    copies
}

/// Adds a copy of user 9999, whom the source never had, written long before
/// any repair.
async fn insert_ghost(copies: &mongodb::Collection<Document>) {
    copies
        .insert_one(doc! {"_id": "9999", "user_id": 9999, "name": "Ghost",
        "email": "ghost@example.com", "updated_at": "2025-05-25T10:00:00Z",
        "version": 1_i64, "deleted": false,
        "synced_at": mongodb::bson::DateTime::from_millis(0)})
        .await
        .expect("extra");
}

/// What a repair command is given: an HTTP client, user-service's URL and
/// the store.
async fn repair_inputs(stack: &Stack) -> (reqwest::Client, String, NotificationStore) {
    (
        repair::http_client().expect("client"),
        stack.notifications_config().user_service_url.clone(),
        stack.repair_store().await,
    )
}

async fn drift(stack: &Stack) -> Drift {
    let (http, source, store) = repair_inputs(stack).await;
    repair::drift(&http, &source, &store).await.expect("drift")
}

async fn resync(stack: &Stack) -> repair::Report {
    let (http, source, store) = repair_inputs(stack).await;
    repair::resync(&http, &source, &store)
        .await
        .expect("resync")
}

#[tokio::test]
async fn replay_mends_dropped_and_edited_copies_while_the_service_runs() {
    let stack = Stack::start().await;
    corrupted(&stack).await;
    let found = drift(&stack).await;
    assert_eq!(
        (found.checked, found.missing, found.stale, found.extra),
        (3, 1, 1, 0),
        "checked, missing, stale, extra"
    );

    let config = stack.notifications_config();
    let nats = async_nats::connect(config.nats.url.as_str())
        .await
        .expect("nats");
    let report = repair::replay(
        &async_nats::jetstream::new(nats),
        &config.nats.stream,
        &config.nats.subject,
        &stack.repair_store().await,
    )
    .await
    .expect("replay");
    // Ann's create recreates her copy; Bob's update (same version as his
    // edited copy) mends it; the rest is unchanged.
    assert_eq!(
        (report.read, report.created, report.fixed, report.unchanged),
        (4, 1, 1, 2),
        "{report:?}"
    );
    assert_eq!(drift(&stack).await.total(), 0);
    stack.assert_converges().await;
}

#[tokio::test]
async fn resync_mends_dropped_edited_and_extra_copies_from_the_source() {
    let stack = Stack::start().await;
    let copies = corrupted(&stack).await;
    insert_ghost(&copies).await;
    let found = drift(&stack).await;
    assert_eq!(
        (found.checked, found.missing, found.stale, found.extra),
        (3, 1, 1, 1),
        "checked, missing, stale, extra"
    );

    let report = resync(&stack).await;
    assert_eq!(
        (report.read, report.created, report.fixed, report.removed),
        (3, 1, 1, 1),
        "{report:?}"
    );
    assert_eq!(drift(&stack).await.total(), 0);
    stack.assert_converges().await;

    // A second run finds nothing to do.
    let again = resync(&stack).await;
    assert_eq!((again.created, again.fixed, again.removed), (0, 0, 0));
}

#[tokio::test]
async fn the_drift_gauge_shows_a_corrupted_copy() {
    let stack = Stack::start_with_drift_check(Duration::from_millis(500)).await;
    corrupted(&stack).await;
    eventually(
        "sync_drift_users to show the drift",
        Duration::from_secs(20),
        || async {
            let metrics = testkit::http::Metrics::of(&stack.http, &stack.notifications_url(""))
                .page()
                .await?;
            let wanted = [
                "sync_drift_users{kind=\"missing\"} 1",
                "sync_drift_users{kind=\"stale\"} 1",
                "sync_drift_users{kind=\"extra\"} 0",
            ];
            if wanted
                .iter()
                .all(|line| metrics.lines().any(|l| l == *line))
            {
                Ok(())
            } else {
                Err(metrics
                    .lines()
                    .filter(|l| l.starts_with("sync_drift"))
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_paged_drift_sweep_counts_what_the_full_check_counts() {
    let stack = Stack::start().await;
    let copies = corrupted(&stack).await;
    insert_ghost(&copies).await;
    let full = drift(&stack).await;
    let http = repair::http_client().expect("client");
    let users_url = &stack.notifications_config().user_service_url;
    let store = stack.repair_store().await;
    // Three source users, two a page: the first page says nothing yet.
    let mut sweep = repair::Sweep::new(2);
    let first = sweep.next_page(&http, users_url, &store).await;
    assert_eq!(first.expect("page 1"), None, "a sweep ends on a short page");
    let swept = sweep.next_page(&http, users_url, &store).await;
    let expected = Drift {
        checked: 3,
        missing: 1,
        stale: 1,
        extra: 1,
    };
    assert_eq!(swept.expect("page 2"), Some(expected));
    assert_eq!(full, expected, "the full check agrees");
    // The next sweep starts over from the first user.
    let again = sweep.next_page(&http, users_url, &store).await;
    assert_eq!(again.expect("page 1 again"), None);
}
