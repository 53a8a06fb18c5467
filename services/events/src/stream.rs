//! The JetStream stream both services create at start-up.

use std::time::Duration;

use async_nats::jetstream::{
    Context,
    context::CreateStreamError,
    stream::{Config, StorageType, Stream},
};

/// How long the stream remembers event ids to drop republished events.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The stream both services agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec<'a> {
    pub name: &'a str,
    pub subject: &'a str,
    /// How long events are kept (how far back a replay reaches).
    pub max_age: Duration,
    /// How many servers of a cluster keep a copy (1 on a single server).
    pub replicas: usize,
}

/// Returns the stream `spec.name`, creating it to capture `spec.subject` if
/// it does not exist. Both services call this at start-up, so either may
/// start first. An existing stream keeps its settings (an operator may have
/// tuned them), except that one with fewer replicas than `spec.replicas` is
/// raised to that many in place: JetStream copies its messages to the new
/// replicas while it keeps serving.
///
/// A new stream keeps events for `max_age` and drops a republished event
/// whose `Nats-Msg-Id` it saw within [`DUPLICATE_WINDOW`]; older duplicates
/// are dropped by the consumer's version guard.
///
/// # Errors
/// When JetStream is unreachable or refuses to create or raise the stream
/// (for example because another stream already captures `subject`, or the
/// caller may not manage streams).
pub async fn ensure_stream(
    js: &Context,
    spec: &StreamSpec<'_>,
) -> Result<Stream, CreateStreamError> {
    if let Ok(mut stream) = js.get_stream(spec.name).await {
        let config = &stream.cached_info().config;
        if config.num_replicas >= spec.replicas {
            return Ok(stream);
        }
        let raised = Config {
            num_replicas: spec.replicas,
            ..config.clone()
        };
        js.update_stream(&raised).await?;
        // Read back, so the caller sees the new replica set.
        let _ = stream.info().await;
        return Ok(stream);
    }
    let created = js
        .create_stream(Config {
            name: spec.name.to_owned(),
            subjects: vec![spec.subject.to_owned()],
            storage: StorageType::File,
            max_age: spec.max_age,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: spec.replicas,
            ..Default::default()
        })
        .await;
    match created {
        Ok(stream) => Ok(stream),
        // Created by the other service meanwhile.
        Err(e) => js.get_stream(spec.name).await.map_err(|_| e),
    }
}
