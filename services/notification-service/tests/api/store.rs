//! The store alone, against the real server: the version guard under both
//! write guards, re-keying of older documents, and that every per-user query
//! is one FerretDB serves from its primary key.

use events::EventType::{UserCreated, UserDeleted, UserUpdated};
use mongodb::bson::{Document, doc};
use notification_service::store::{self, NotificationStore, Outcome, WriteGuard};

use crate::helpers::{TestApp, event, test_config};

/// A fresh database on the test server, and the config naming it.
async fn fresh_database() -> (mongodb::Database, notification_service::Config) {
    let config = test_config(None, None);
    let client = mongodb::Client::with_uri_str(&config.mongodb_uri)
        .await
        .expect("client");
    (client.database(&config.database), config)
}

async fn fresh_store(guard: WriteGuard) -> NotificationStore {
    let (db, _) = fresh_database().await;
    let store = NotificationStore::new(db, guard);
    store.prepare().await.expect("prepare");
    store
}

#[tokio::test]
async fn only_a_newer_version_replaces_the_copy_under_either_guard() {
    for guard in [WriteGuard::CompareAndSet, WriteGuard::SingleWriter] {
        let store = fresh_store(guard).await;
        let applied = |outcome| assert_eq!(outcome, Outcome::Applied, "{guard:?}");
        let stale = |outcome| assert_eq!(outcome, Outcome::Stale, "{guard:?}");

        applied(store.apply(&event(UserUpdated, 4, 2, "v2")).await.unwrap());
        stale(store.apply(&event(UserCreated, 4, 1, "v1")).await.unwrap());
        stale(
            store
                .apply(&event(UserUpdated, 4, 2, "v2 again"))
                .await
                .unwrap(),
        );
        assert_eq!(store.get(4).await.unwrap().expect("copy").name, "v2");

        applied(store.apply(&event(UserUpdated, 4, 5, "v5")).await.unwrap());
        stale(store.apply(&event(UserUpdated, 4, 3, "v3")).await.unwrap());
        assert_eq!(store.get(4).await.unwrap().expect("copy").name, "v5");

        applied(store.apply(&event(UserDeleted, 4, 6, "v5")).await.unwrap());
        stale(store.apply(&event(UserUpdated, 4, 5, "v5")).await.unwrap());
        assert_eq!(store.get(4).await.unwrap(), None, "{guard:?}");
        assert!(store.list().await.unwrap().is_empty(), "{guard:?}");
    }
}

#[tokio::test]
async fn documents_keyed_by_a_number_are_rekeyed_by_the_user_id_string() {
    let (db, config) = fresh_database().await;
    let copies = db.collection::<Document>("user_notifications");
    // As the previous version of this service wrote them.
    copies
        .insert_one(
            doc! {"_id": 12, "user_id": 12, "name": "Old", "email": "old@example.com",
            "updated_at": "2025-05-25T10:00:00Z", "version": 3_i64, "deleted": false},
        )
        .await
        .expect("old document");
    let app = TestApp::spawn_with(config).await;
    let ids: Vec<_> = copies
        .distinct("_id", doc! {})
        .await
        .expect("ids")
        .into_iter()
        .map(|id| id.as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, vec![Some("12".to_owned())]);
    assert_eq!(app.copy_of(12).await.expect("copy")["name"], "Old");
    let store = app.store().await;
    assert_eq!(
        store
            .apply(&event(UserUpdated, 12, 3, "same version"))
            .await
            .unwrap(),
        Outcome::Stale,
        "the version survived the re-keying"
    );
}

/// FerretDB pushes only filters with `_id: <string>` down to SQLite (stock
/// 1.24.2: `{_id: <string>}` alone) and loads and decodes the whole
/// collection in Go for any other (about 4x slower; see
/// the README's profile). Every per-user read and write uses `{_id: key(id)}`;
/// this pins that FerretDB pushes it down.
#[tokio::test]
async fn the_per_user_filter_is_pushed_down_to_ferretdbs_storage() {
    let (db, _) = fresh_database().await;
    if WriteGuard::detect(&db).await.expect("buildInfo") != WriteGuard::SingleWriter {
        eprintln!("not FerretDB: nothing to check");
        return;
    }
    db.collection::<Document>("user_notifications")
        .insert_one(doc! {"_id": store::key(1), "user_id": 1})
        .await
        .expect("insert");
    let pushed_down = |filter: Document| {
        let db = db.clone();
        async move {
            db.run_command(doc! {
                "explain": {"find": "user_notifications", "filter": filter},
            })
            .await
            .expect("explain")
            .get_bool("filterPushdown")
            .expect("FerretDB's filterPushdown")
        }
    };
    assert!(pushed_down(doc! {"_id": store::key(1)}).await);
    assert!(
        !pushed_down(doc! {"_id": 1}).await,
        "a numeric _id is not pushed down (so this check can fail)"
    );
}

/// Pushed down is not enough: stock FerretDB 1.24.2 spells the SQLite filter
/// differently from its `_id` index (so it scans the whole table) and pushes
/// nothing down for `{_id, version}`. The FerretDB that scripts/lib/tools.sh
/// builds has tools/ferretdb/id-pushdown.patch, and serves both from the
/// index; this fails on an unpatched one.
#[tokio::test]
async fn the_per_user_filters_are_served_from_ferretdbs_id_index() {
    let (db, _) = fresh_database().await;
    if WriteGuard::detect(&db).await.expect("buildInfo") != WriteGuard::SingleWriter {
        eprintln!("not FerretDB: nothing to check");
        return;
    }
    db.collection::<Document>("user_notifications")
        .insert_one(doc! {"_id": store::key(1), "user_id": 1, "version": 1_i64})
        .await
        .expect("insert");
    for filter in [
        doc! {"_id": store::key(1)},
        doc! {"_id": store::key(1), "version": 1_i64},
    ] {
        let command_filter = filter.clone();
        let explained = db
            .run_command(doc! {
                "explain": {"find": "user_notifications", "filter": command_filter},
            })
            .await
            .expect("explain");
        // SQLite's EXPLAIN QUERY PLAN lines, or PostgreSQL's EXPLAIN.
        let plan = explained
            .get_document("queryPlanner")
            .expect("FerretDB's queryPlanner")
            .to_string();
        assert!(
            plan.contains("USING INDEX") || plan.contains("Index Scan"),
            "{filter} is not served from the _id index (an unpatched FerretDB?): {plan}"
        );
    }
}
