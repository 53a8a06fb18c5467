//! How the service's pools take connections (`startup::pool_options`): no
//! ping before a connection that has just been used, a ping (and a fresh
//! connection if it fails) before one that idled past `PING_IF_IDLE_FOR`.

use std::time::Duration;

use sqlx::PgPool;
use testkit::{Names, shared, wait::eventually};
use user_service::{
    startup::{PING_IF_IDLE_FOR, pool_options},
    store::StoreError,
};

const PATIENCE: Duration = Duration::from_secs(10);

/// A pool of one connection, idle in the pool, whose backend another
/// session then terminates. Returns the pool and the dead backend's pid.
async fn pool_with_a_killed_idle_connection() -> (PgPool, i32) {
    let url = shared::fresh_postgres(&Names::new().postgres_database())
        .await
        .expect("fresh database");
    let pool = pool_options()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("pool");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("backend pid");
    // Released (and pinged on release) before it is killed.
    eventually("the connection is back in the pool", PATIENCE, || async {
        if pool.num_idle() == 1 {
            Ok(())
        } else {
            Err("in use".to_owned())
        }
    })
    .await;
    let admin = PgPool::connect(&url).await.expect("admin pool");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&admin)
        .await
        .expect("terminate");
    assert!(killed, "backend {pid} was not terminated");
    eventually("the backend is gone", PATIENCE, || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&admin)
            .await
            .map_err(|e| e.to_string())?;
        if left == 0 {
            Ok(())
        } else {
            Err(format!("backend {pid} still listed"))
        }
    })
    .await;
    (pool, pid)
}

async fn backend_pid(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
}

#[tokio::test]
async fn a_connection_used_again_at_once_is_not_pinged_first() {
    let (pool, _) = pool_with_a_killed_idle_connection().await;
    // Without a ping the statement itself meets the dead connection (here
    // PostgreSQL's 57P01 on it, or a closed socket): the round trip saved on
    // every write is what this costs after a restart, and the service
    // answers it as it answers PostgreSQL down: 503, try again.
    let err = backend_pid(&pool)
        .await
        .expect_err("a ping would have replaced the dead connection");
    let described = format!("{err:?}");
    assert!(
        matches!(StoreError::from(err), StoreError::Unavailable(_)),
        "not reported as unavailable: {described}"
    );
    // The broken connection is closed, not returned: the next one is fresh.
    let pid = backend_pid(&pool).await.expect("a fresh connection");
    assert!(pid > 0);
}

#[tokio::test]
async fn a_connection_that_idled_long_is_pinged_and_replaced_when_dead() {
    let (pool, dead) = pool_with_a_killed_idle_connection().await;
    tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(100)).await;
    let pid = backend_pid(&pool)
        .await
        .expect("the ping found the connection dead and the pool opened another");
    assert_ne!(pid, dead);
}
