//! Micro-benchmarks of the hot paths of one write's journey: validating the
//! input, encoding the event, decoding it, building the MongoDB document, and
//! publishing it to JetStream with its ack (against a real NATS server given
//! by `BENCH_NATS_URL`; skipped with a message when unset or unreachable).
//!
//! ```sh
//! cargo bench -p bench
//! BENCH_NATS_URL=nats://127.0.0.1:4222 cargo bench -p bench -- publish
//! ```

use std::{hint::black_box, time::Duration};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events::{EventType, UserEvent, UserPayload};
use user_service::domain::UserDraft;

fn event() -> UserEvent {
    UserEvent::new(
        EventType::UserUpdated,
        UserPayload {
            id: 42,
            name: "John Doe Updated".into(),
            email: "john.updated@example.com".into(),
            updated_at: Utc::now(),
        },
        7,
        Utc::now(),
    )
}

fn codec(c: &mut Criterion) {
    let event = event();
    let bytes = event.encode();
    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| b.iter(|| black_box(&event).encode()));
    group.bench_function("decode", |b| {
        b.iter(|| UserEvent::decode(black_box(&bytes)))
    });
    group.finish();
}

fn validation(c: &mut Criterion) {
    c.bench_function("validate name and email", |b| {
        b.iter(|| {
            UserDraft::parse(
                black_box("  John Doe Updated "),
                black_box("john.updated@example.com"),
            )
        })
    });
}

fn mongo_document(c: &mut Criterion) {
    let event = event();
    c.bench_function("build the MongoDB document", |b| {
        b.iter(|| notification_service::store::to_document(black_box(&event)))
    });
}

fn publish(c: &mut Criterion) {
    let Ok(url) = std::env::var("BENCH_NATS_URL") else {
        eprintln!(
            "publish benchmark skipped: set BENCH_NATS_URL=nats://host:port to run it against a real NATS"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let setup = runtime.block_on(async {
        let client = async_nats::connect(url.as_str()).await.ok()?;
        let js = async_nats::jetstream::new(client);
        let name = format!("BENCH_{}", std::process::id());
        let subject = format!("bench_{}.user.events", std::process::id());
        let spec = events::StreamSpec {
            name: &name,
            subject: &subject,
            max_age: Duration::from_secs(600),
            replicas: 1,
        };
        events::ensure_stream(&js, &spec).await.ok()?;
        Some((js, name, subject))
    });
    let Some((js, stream, subject)) = setup else {
        eprintln!("publish benchmark skipped: no JetStream at {url}");
        return;
    };
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(1));
    group.bench_function("publish one event and await its ack", |b| {
        b.to_async(&runtime).iter(|| async {
            let event = event();
            let message = async_nats::jetstream::message::PublishMessage::build()
                .payload(event.encode().into())
                .message_id(event.event_id.to_string());
            js.send_publish(subject.clone(), message)
                .await
                .expect("sent")
                .await
                .expect("acked")
        });
    });
    group.throughput(Throughput::Elements(256));
    group.bench_function("publish a batch of 256, acks awaited together", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut acks = Vec::with_capacity(256);
            for _ in 0..256 {
                let event = event();
                let message = async_nats::jetstream::message::PublishMessage::build()
                    .payload(event.encode().into())
                    .message_id(event.event_id.to_string());
                acks.push(
                    js.send_publish(subject.clone(), message)
                        .await
                        .expect("sent"),
                );
            }
            for ack in acks {
                ack.await.expect("acked");
            }
        });
    });
    group.finish();
    runtime.block_on(async {
        let _ = js.delete_stream(&stream).await;
    });
}

criterion_group!(benches, codec, validation, mongo_document, publish);
criterion_main!(benches);
