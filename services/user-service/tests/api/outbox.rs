use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{NatsServer, http::wait_until_ready};
use user_service::{
    config::RelayConfig,
    domain::UserDraft,
    relay::{self, Inbox, Relay},
    store::UserStore,
};

use crate::helpers::{
    TestApp, stream_events, test_config, unpublished, wait_for_stream_events, wait_for_unpublished,
};

/// The store on the test's database, migrated, with no service running: as
/// if the service had committed changes and died before publishing them.
async fn migrated_store(config: &user_service::Config) -> UserStore {
    let pool = sqlx::PgPool::connect(&config.database_url)
        .await
        .expect("pool");
    user_service::startup::migrate(&pool)
        .await
        .expect("migrations");
    UserStore::new(pool)
}

#[tokio::test]
async fn events_committed_before_a_crash_are_published_at_the_next_start() {
    let config = test_config(None).await;
    // A change committed with its outbox row, and then the process died
    // before publishing: simulated by writing through the store alone.
    let store = migrated_store(&config).await;
    let draft = UserDraft::parse("Crash", "crash@example.com").expect("valid");
    let (user, _) = store.create(&draft).await.expect("committed");
    assert!(
        stream_events(&config.nats.url, &config.nats.stream)
            .await
            .is_empty()
    );

    let app = TestApp::spawn_with(config).await;
    let events = app.wait_for_events(1).await;
    assert_eq!(events[0].payload.id, user.id);
    app.wait_for_outbox_drained("the row to be stamped published")
        .await;
}

/// Writes made while NATS is down succeed; the sweep publishes them once it
/// is back, with no further write to hand an event to the relay.
#[tokio::test]
async fn writes_while_nats_is_down_all_succeed_and_are_published_when_it_returns() {
    let mut nats = NatsServer::start().expect("nats-server");
    let app = TestApp::spawn_with(test_config(Some(nats.url())).await).await;
    let first = app.create_user("Before", "before@example.com").await;
    app.wait_for_events(1).await;
    // Its row is stamped up to the stamp delay after the ack: wait for it,
    // so that the count below holds only the writes made during the fault.
    app.wait_for_outbox_drained("the first row to be stamped")
        .await;

    nats.stop();
    let errors_before = app.metrics().value("outbox_publish_errors_total").await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<Value>().await.expect("json")["nats"], false);
    for n in 0..10 {
        app.create_user(&format!("During {n}"), &format!("during{n}@example.com"))
            .await;
    }
    let response = app
        .put_json(
            &format!("/users/{}", first["id"]),
            &json!({"name": "Before, renamed", "email": "before@example.com"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.unpublished_rows().await,
        11,
        "the events wait in the outbox"
    );
    // The relay's attempts to publish these writes must have failed (the
    // fault was met), and every attempt still in flight (the stream look-up,
    // the acks: each bounded by the publish timeout) must be over, so that
    // only the sweep can publish them: no write follows to set it going.
    // Without the sweep this test fails (checked by removing it).
    app.metrics()
        .wait_above("outbox_publish_errors_total", errors_before)
        .await;
    tokio::time::sleep(app.config.relay.publish_timeout * 10).await;

    nats.restart().expect("nats-server restarts");
    let events = app.wait_for_events(12).await;
    assert_eq!(events.len(), 12, "each event stored once");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.payload.name == "Before, renamed")
            .count(),
        1
    );
    app.wait_for_outbox_drained("the outbox to drain").await;
}

#[tokio::test]
async fn a_republished_event_is_acknowledged_as_a_duplicate_and_stored_once() {
    let app = TestApp::spawn().await;
    app.create_user("Once", "once@example.com").await;
    app.wait_for_events(1).await;
    // Stamped (after the stamp delay), so that the reset below undoes it.
    app.wait_for_outbox_drained("the row to be stamped").await;
    // And nothing left in flight to stamp it behind the reset: when the
    // create landed during the start-up drain, that drain published and
    // stamped the row, and its hand-off follows, a duplicate whose stamp
    // comes up to the stamp delay later (and would stamp the reset row
    // without a republish).
    tokio::time::sleep(app.config.relay.stamp_delay * 3).await;
    let duplicates_before = app.metrics().value("outbox_duplicate_acks_total").await;
    // As if the relay crashed after the publish but before stamping the row.
    sqlx::query("UPDATE outbox SET published_at = NULL")
        .execute(&app.pool)
        .await
        .expect("reset");
    app.wait_for_outbox_drained("the row to be stamped again")
        .await;
    assert_eq!(app.stream_events(&app.config.nats.url).await.len(), 1);
    // JetStream answered `duplicate` (the Nats-Msg-Id), and it was counted.
    assert!(
        app.metrics().value("outbox_duplicate_acks_total").await > duplicates_before,
        "the republish was not acknowledged as a duplicate"
    );
}

#[tokio::test]
async fn health_and_readiness_answer_with_json() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let ready = wait_until_ready(&app.http, &format!("{}/readyz", app.base)).await;
    assert_eq!(ready, json!({"postgres": true, "nats": true}));
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route() {
    let app = TestApp::spawn().await;
    // The registry is the process's, shared with the tests running beside
    // this one: counters only grow, so "went up" is what can be asserted.
    let requests = "http_requests_total{method=\"POST\",route=\"/users\",status=\"201\"}";
    let writes = "user_writes_total{type=\"user_created\"}";
    let (requests_before, writes_before) = (
        app.metrics().value(requests).await,
        app.metrics().value(writes).await,
    );
    app.create_user("Metric", "metric@example.com").await;
    assert!(
        app.metrics().value(requests).await > requests_before,
        "{requests}"
    );
    assert!(
        app.metrics().value(writes).await > writes_before,
        "{writes}"
    );
}

#[tokio::test]
async fn graceful_shutdown_publishes_what_was_committed() {
    let app = TestApp::spawn().await;
    let url = app.config.nats.url.clone();
    let stream = app.config.nats.stream.clone();
    app.create_user("Last", "last@example.com").await;
    app.shutdown().await;
    assert_eq!(stream_events(&url, &stream).await.len(), 1);
}

/// Two instances' relays draining one outbox at once: each row is claimed by
/// one of them, so none is published twice (without `SKIP LOCKED` both read
/// the same oldest rows and one of them gets `duplicate` acks for most).
#[tokio::test]
async fn two_relays_draining_one_outbox_publish_each_row_once() {
    let config = test_config(None).await;
    let store = migrated_store(&config).await;
    let pool = store.pool().clone();
    const ROWS: usize = 600;
    for n in 0..ROWS {
        let draft = UserDraft::parse("Waiting", &format!("waiting{n}@example.com")).expect("valid");
        store.create(&draft).await.expect("committed");
    }
    let relay = || async {
        let client = async_nats::connect(config.nats.url.as_str())
            .await
            .expect("nats");
        let js = async_nats::jetstream::new(client);
        let mut relay = Relay::new(
            pool.clone(),
            js,
            config.nats.clone(),
            RelayConfig {
                batch_size: 64,
                ..config.relay.clone()
            },
            relay::handoff(1).1,
        );
        relay.drain().await.expect("drained")
    };
    let (a, b) = tokio::join!(relay(), relay());
    assert_eq!(
        (a.duplicates, b.duplicates),
        (0, 0),
        "a row was published by both relays"
    );
    assert_eq!(a.published + b.published, ROWS, "{a:?} {b:?}");
    assert_eq!(
        stream_events(&config.nats.url, &config.nats.stream)
            .await
            .len(),
        ROWS
    );
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(unpublished, 0);
}

/// A relay on `pool`, publishing to the NATS at `nats_url` with the test's
/// stream and the test config's publish timeout, taking hand-offs from
/// `inbox`.
async fn relay_on(
    pool: &sqlx::PgPool,
    config: &user_service::Config,
    nats_url: &str,
    inbox: Inbox,
) -> Relay {
    let client = async_nats::connect(nats_url).await.expect("nats");
    let js = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(config.relay.publish_timeout)
        .build(client);
    Relay::new(
        pool.clone(),
        js,
        config.nats.clone(),
        config.relay.clone(),
        inbox,
    )
}

async fn synchronous_commit(conn: &mut sqlx::PgConnection) -> String {
    sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(conn)
        .await
        .expect("show")
}

/// The claim stamps its rows in the statement that locks them; a drain whose
/// events JetStream never acknowledges must leave every one unpublished.
#[tokio::test]
async fn a_drain_jetstream_does_not_acknowledge_leaves_every_row_unpublished() {
    let mut nats = NatsServer::start().expect("nats-server");
    let config = test_config(Some(nats.url())).await;
    let store = migrated_store(&config).await;
    for n in 0..5 {
        let draft = UserDraft::parse("Held", &format!("held{n}@example.com")).expect("valid");
        store.create(&draft).await.expect("committed");
    }
    let mut relay = relay_on(store.pool(), &config, &nats.url(), relay::handoff(1).1).await;
    nats.stop();
    assert!(relay.drain().await.is_err(), "nothing was acknowledged");
    assert_eq!(unpublished(store.pool()).await, 5);
}

/// The relay's connections commit without waiting for the disk; other
/// connections to the same database (the users' writes) keep the default.
/// And the running service's relay is on those connections.
#[tokio::test]
async fn only_the_relays_connections_commit_asynchronously() {
    let app = TestApp::spawn().await;
    // The test server commits asynchronously throughout (for speed): give
    // the test's database PostgreSQL's default for new connections.
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&app.pool)
        .await
        .expect("database");
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" SET synchronous_commit = on"
    ))
    .execute(&app.pool)
    .await
    .expect("alter database");
    let pool = sqlx::PgPool::connect(&app.config.database_url)
        .await
        .expect("pool");
    let mut conn = pool.acquire().await.expect("connection");
    assert_eq!(synchronous_commit(&mut conn).await, "on");
    let relay_pool = user_service::startup::relay_pool(&app.config)
        .await
        .expect("relay pool");
    let mut relay_conn = relay_pool.acquire().await.expect("relay connection");
    assert_eq!(synchronous_commit(&mut relay_conn).await, "off");
    drop(relay_conn);
    relay_pool.close().await;

    // The service's relay works on connections of that name: their last
    // statements are the relay's (it opened them at start-up, before the
    // database's default changed).
    app.create_user("Durable", "durable@example.com").await;
    app.wait_for_outbox_drained("the relay to publish on its own pool")
        .await;
    let relay_queries: Vec<String> = sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
    )
    .bind(&database)
    .bind(user_service::startup::RELAY_APPLICATION_NAME)
    .fetch_all(&pool)
    .await
    .expect("pg_stat_activity");
    assert!(
        relay_queries
            .iter()
            .any(|q| q.contains("outbox") || q == "COMMIT" || q == "ROLLBACK"),
        "the relay's connections ran none of its statements: {relay_queries:?}"
    );
}

/// A relay stuck while it holds a claim (its transaction idle, its rows
/// locked, every other relay skipping them) is ended by PostgreSQL after
/// `relay_idle_in_transaction`: its claim rolls back and the rows are free
/// for the next drain.
#[tokio::test]
async fn a_relay_stuck_holding_its_claim_is_ended_and_its_rows_released() {
    let config = test_config(None).await;
    let store = migrated_store(&config).await;
    let draft = UserDraft::parse("Stuck", "stuck@example.com").expect("valid");
    store.create(&draft).await.expect("committed");
    let pool = user_service::startup::relay_pool(&config)
        .await
        .expect("relay pool");
    let mut stuck = pool.begin().await.expect("begin");
    let claimed = user_service::outbox::claim(&mut stuck, 10, Duration::ZERO)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let mut other = pool.begin().await.expect("begin");
    let skipped = user_service::outbox::claim(&mut other, 10, Duration::ZERO)
        .await
        .expect("claim");
    assert!(skipped.is_empty(), "another relay took a locked row");
    other.rollback().await.expect("rollback");

    let limit = user_service::startup::relay_idle_in_transaction(&config);
    tokio::time::sleep(limit + Duration::from_millis(500)).await;
    assert!(
        stuck.commit().await.is_err(),
        "the idle transaction outlived {limit:?}"
    );
    let mut next = pool.begin().await.expect("begin");
    let released = user_service::outbox::claim(&mut next, 10, Duration::ZERO)
        .await
        .expect("claim");
    assert_eq!(released.len(), 1, "the stuck claim's row is free again");
    assert_eq!(released[0].event.0.payload.email, "stuck@example.com");
}

/// A request hands its committed event to the relay, which publishes that
/// event without reading the outbox: a row committed by other means (as if
/// its request had been cancelled between its commit and its hand-off) is
/// left for the sweep, which is off here. A relay that drained the outbox on
/// every write would publish it too.
#[tokio::test]
async fn a_handed_over_event_is_published_without_reading_the_outbox() {
    let mut config = test_config(None).await;
    config.relay.sweep_interval = Duration::ZERO;
    let app = TestApp::spawn_with(config).await;
    let first = app.create_user("First", "first@example.com").await;
    // Published: the relay is past its start-up drain.
    app.wait_for_events(1).await;
    let store = UserStore::new(app.pool.clone());
    let missed = UserDraft::parse("Missed", "missed@example.com").expect("valid");
    store.create(&missed).await.expect("committed");
    let last = app.create_user("Last", "last@example.com").await;

    let events = app.wait_for_events(2).await;
    let published: Vec<i64> = events.iter().map(|e| i64::from(e.payload.id)).collect();
    assert_eq!(
        published,
        [&first, &last].map(|user| user["id"].as_i64().expect("id")),
        "only the handed-over events are published"
    );
    wait_for_unpublished(&app.pool, 1, "only the missed row left").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.unpublished_rows().await, 1, "the missed row waits");
}

/// The sweep publishes a committed change nobody handed over, once it is
/// older than one sweep interval (without the sweep this cannot pass: see
/// the test above).
#[tokio::test]
async fn a_change_nobody_handed_over_is_published_by_the_sweep() {
    let app = TestApp::spawn().await;
    app.create_user("First", "first@example.com").await;
    app.wait_for_events(1).await;
    let store = UserStore::new(app.pool.clone());
    let missed = UserDraft::parse("Missed", "missed@example.com").expect("valid");
    let (user, _) = store.create(&missed).await.expect("committed");

    let events = app.wait_for_events(2).await;
    assert_eq!(events[1].payload.id, user.id);
    app.wait_for_outbox_drained("the swept row to be stamped")
        .await;
    // Not before it was one sweep interval old (a younger row may be in a
    // hand-off in flight).
    let waited: bool = sqlx::query_scalar(
        "SELECT published_at - created_at >= make_interval(secs => $1) \
         FROM outbox WHERE user_id = $2",
    )
    .bind(app.config.relay.sweep_interval.as_secs_f64())
    .bind(user.id)
    .fetch_one(&app.pool)
    .await
    .expect("the swept row");
    assert!(waited, "the sweep took a row younger than its interval");
}

/// When the hand-offs outrun the relay (more than it holds), the ones it
/// cannot take are left to the outbox and the relay drains it at once, not
/// at the next sweep (off here).
#[tokio::test]
async fn hand_offs_beyond_the_relays_capacity_are_drained_from_the_outbox() {
    let mut config = test_config(None).await;
    config.relay.sweep_interval = Duration::ZERO;
    let store = migrated_store(&config).await;
    let (handoff, inbox) = relay::handoff(1);
    let relay = relay_on(store.pool(), &config, &config.nats.url, inbox).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    let (nats, stream) = (config.nats.url.as_str(), config.nats.stream.as_str());
    let draft = UserDraft::parse("First", "first@example.com").expect("valid");
    let (_, first) = store.create(&draft).await.expect("committed");
    handoff.committed(first);
    wait_for_stream_events(nats, stream, 1).await;

    let mut events = Vec::new();
    for n in 0..3 {
        let draft = UserDraft::parse("Burst", &format!("burst{n}@example.com")).expect("valid");
        events.push(store.create(&draft).await.expect("committed").1);
    }
    // No await between them: the relay (on this test's one thread) takes
    // none until all are handed over, so one fits and two overflow.
    for event in events {
        handoff.committed(event);
    }
    assert_eq!(wait_for_stream_events(nats, stream, 4).await.len(), 4);
    wait_for_unpublished(store.pool(), 0, "every row stamped").await;
    stop.send(()).expect("the relay runs");
    running.await.expect("the relay stops");
}

/// A relay taking hand-offs on `config`, running until the returned sender
/// is used (or dropped); the handle ends when it has stopped. Returns once
/// its start-up drain is over (it would take the hand-offs' rows, and drop
/// the hand-offs): a row committed before the start is in the stream.
async fn running_relay(
    store: &UserStore,
    config: &user_service::Config,
) -> (
    relay::Handoff,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let draft = UserDraft::parse("Before", "before@example.com").expect("valid");
    store.create(&draft).await.expect("committed");
    let (handoff, inbox) = relay::handoff(16);
    let relay = relay_on(store.pool(), config, &config.nats.url, inbox).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    wait_for_stream_events(&config.nats.url, &config.nats.stream, 1).await;
    (handoff, stop, running)
}

/// Creates `n` users after the one [`running_relay`] made, handing each
/// event over and waiting until the stream has it before the next: each is a
/// publish of its own. Returns their event ids.
async fn hand_over_one_by_one(
    store: &UserStore,
    config: &user_service::Config,
    handoff: &relay::Handoff,
    n: usize,
) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for k in 0..n {
        let draft = UserDraft::parse("Stamped", &format!("stamped{k}@example.com")).expect("valid");
        let (_, event) = store.create(&draft).await.expect("committed");
        ids.push(event.event_id);
        handoff.committed(event);
        wait_for_stream_events(&config.nats.url, &config.nats.stream, k + 2).await;
    }
    ids
}

/// How many transactions last wrote the rows of `event_ids`: rows stamped
/// by one statement share its transaction id (`xmin`).
async fn stamping_transactions(pool: &sqlx::PgPool, event_ids: &[uuid::Uuid]) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM outbox WHERE event_id = ANY($1)")
        .bind(event_ids)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// The rows of hand-offs JetStream acknowledged within the stamp delay wait
/// for it, then one statement stamps them all; stamped after each publish,
/// five publishes would take five.
#[tokio::test]
async fn hand_offs_acknowledged_within_the_stamp_delay_are_stamped_by_one_statement() {
    let mut config = test_config(None).await;
    config.relay.sweep_interval = Duration::ZERO;
    config.relay.stamp_delay = Duration::from_secs(3);
    let store = migrated_store(&config).await;
    let (handoff, stop, running) = running_relay(&store, &config).await;

    let handed = hand_over_one_by_one(&store, &config, &handoff, 5).await;
    let waiting = unpublished(store.pool()).await;
    wait_for_unpublished(store.pool(), 0, "the rows stamped after the delay").await;
    assert!(waiting > 0, "no row waited for its stamp");
    assert_eq!(
        stamping_transactions(store.pool(), &handed).await,
        1,
        "the five rows were not stamped by one statement"
    );
    stop.send(()).expect("the relay runs");
    running.await.expect("the relay stops");
}

/// A batch's worth of acknowledged hand-offs is stamped at once, not after
/// the stamp delay (a minute here, longer than the wait).
#[tokio::test]
async fn a_batchs_worth_of_acknowledged_hand_offs_is_stamped_at_once() {
    let mut config = test_config(None).await;
    config.relay.sweep_interval = Duration::ZERO;
    config.relay.stamp_delay = Duration::from_secs(600);
    config.relay.batch_size = 2;
    let store = migrated_store(&config).await;
    let (handoff, stop, running) = running_relay(&store, &config).await;

    let handed = hand_over_one_by_one(&store, &config, &handoff, 2).await;
    wait_for_unpublished(store.pool(), 0, "a batch's worth stamped at once").await;
    assert_eq!(stamping_transactions(store.pool(), &handed).await, 1);
    stop.send(()).expect("the relay runs");
    running.await.expect("the relay stops");
}

/// The sweep's claim leaves rows younger than its minimum age (they may be
/// in flight in a hand-off); the stamp of a hand-off skips rows another
/// relay holds or stamped, and stamps each row once.
#[tokio::test]
async fn the_sweep_leaves_young_rows_and_a_stamp_skips_held_and_stamped_rows() {
    let config = test_config(None).await;
    let store = migrated_store(&config).await;
    let draft = UserDraft::parse("Young", "young@example.com").expect("valid");
    let (_, event) = store.create(&draft).await.expect("committed");
    let pool = store.pool();

    let mut sweep = pool.begin().await.expect("begin");
    let young = user_service::outbox::claim(&mut sweep, 10, Duration::from_secs(60))
        .await
        .expect("claim");
    assert!(
        young.is_empty(),
        "a row younger than the minimum age was claimed"
    );
    let held = user_service::outbox::claim(&mut sweep, 10, Duration::ZERO)
        .await
        .expect("claim");
    assert_eq!(held.len(), 1);
    let ids = [event.event_id];
    assert_eq!(
        user_service::outbox::stamp(pool, &ids)
            .await
            .expect("stamp"),
        0,
        "a row another relay holds was stamped"
    );
    sweep.rollback().await.expect("rollback");
    assert_eq!(
        user_service::outbox::stamp(pool, &ids)
            .await
            .expect("stamp"),
        1
    );
    assert_eq!(unpublished(pool).await, 0);
    assert_eq!(
        user_service::outbox::stamp(pool, &ids)
            .await
            .expect("stamp"),
        0
    );
}
