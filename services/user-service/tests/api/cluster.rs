//! user-service on a three-node NATS cluster: the stream kept on three
//! servers, and the relay through the loss of the one leading it.

use std::time::Duration;

use async_nats::jetstream;
use events::StreamSpec;
use testkit::{NatsCluster, wait::eventually};

use crate::helpers::{TestApp, stream_events, test_config};

async fn cluster_client(cluster: &NatsCluster) -> jetstream::Context {
    let servers: Vec<String> = cluster.url().split(',').map(str::to_owned).collect();
    let client = async_nats::ConnectOptions::new()
        .connect(servers)
        .await
        .expect("nats cluster");
    jetstream::new(client)
}

/// `ensure_stream` until the cluster has elected its JetStream meta leader.
async fn ensure(js: &jetstream::Context, spec: &StreamSpec<'_>) -> jetstream::stream::Stream {
    eventually(
        "the cluster to take the stream",
        Duration::from_secs(30),
        || async {
            events::ensure_stream(js, spec)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await
}

#[tokio::test]
async fn an_existing_one_replica_stream_is_raised_to_three_in_place() {
    let cluster = NatsCluster::start().expect("nats cluster");
    let js = cluster_client(&cluster).await;
    let names = testkit::Names::new();
    let (stream_name, subject) = (names.stream(), names.subject());
    let mut spec = StreamSpec {
        name: &stream_name,
        subject: &subject,
        max_age: Duration::from_secs(600),
        replicas: 1,
    };
    let mut stream = ensure(&js, &spec).await;
    assert_eq!(stream.info().await.expect("info").config.num_replicas, 1);
    for n in 0..5 {
        js.publish(subject.clone(), format!("event {n}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    spec.replicas = 3;
    let mut stream = ensure(&js, &spec).await;
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(info.state.messages, 5, "the events stay");
    eventually(
        "two more servers to hold a current copy",
        Duration::from_secs(30),
        || async {
            let mut stream = js
                .get_stream(&stream_name)
                .await
                .map_err(|e| e.to_string())?;
            let info = stream.info().await.map_err(|e| e.to_string())?;
            let cluster = info.cluster.clone().unwrap_or_default();
            let current = cluster.replicas.iter().filter(|r| r.current).count();
            if cluster.leader.is_some() && current == 2 {
                Ok(())
            } else {
                Err(format!("{cluster:?}"))
            }
        },
    )
    .await;
    // Asking again for three changes nothing.
    ensure(&js, &spec).await;
}

/// Writes go on while the node leading the stream is killed: JetStream stops
/// taking publishes until the other two elect a leader (4 to 9 s), the
/// relay's publishes fail and are retried from the outbox, and in the end
/// the stream holds every committed event exactly once.
#[tokio::test]
async fn the_stream_leaders_death_loses_and_duplicates_no_event() {
    let mut cluster = NatsCluster::start().expect("nats cluster");
    let mut config = test_config(Some(cluster.url())).await;
    config.nats.stream_replicas = 3;
    let js = cluster_client(&cluster).await;
    ensure(&js, &config.nats.stream_spec()).await;
    let app = TestApp::spawn_with(config.clone()).await;

    let mut written = 0;
    for n in 0..40 {
        app.create_user(&format!("Before {n}"), &format!("before{n}@example.com"))
            .await;
        written += 1;
    }
    let mut stream = js.get_stream(&config.nats.stream).await.expect("stream");
    let leader = stream
        .info()
        .await
        .expect("info")
        .cluster
        .clone()
        .and_then(|c| c.leader)
        .expect("the stream has a leader");
    cluster.kill(&leader);
    // Through the election and after it.
    for n in 0..120 {
        app.create_user(&format!("During {n}"), &format!("during{n}@example.com"))
            .await;
        written += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.restart(&leader).expect("the node restarts");
    app.wait_for_outbox_drained("every committed event published")
        .await;
    let events = stream_events(&config.nats.url, &config.nats.stream).await;
    let distinct: std::collections::HashSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(app.outbox_rows().await, written);
    assert_eq!(
        events.len(),
        written as usize,
        "one message per committed event"
    );
    assert_eq!(distinct.len(), events.len(), "none stored twice");
}
