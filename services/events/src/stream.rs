//! The JetStream stream both services create at start-up.

use std::time::Duration;

use async_nats::jetstream::{
    Context,
    context::CreateStreamError,
    stream::{Config, StorageType, Stream},
};

/// How long the stream remembers event ids to drop republished events.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Returns the stream `name`, creating it to capture `subject` if it does
/// not exist. Both services call this at start-up, so either may start first.
/// An existing stream is used as it is, whatever its settings (an operator
/// may have tuned them).
///
/// A new stream keeps events for `max_age` (how far back a replay reaches)
/// and drops a republished event whose `Nats-Msg-Id` it saw within
/// [`DUPLICATE_WINDOW`]; older duplicates are dropped by the consumer's
/// version guard.
///
/// # Errors
/// When JetStream is unreachable or refuses to create the stream (for
/// example because another stream already captures `subject`).
pub async fn ensure_stream(
    js: &Context,
    name: &str,
    subject: &str,
    max_age: Duration,
) -> Result<Stream, CreateStreamError> {
    if let Ok(stream) = js.get_stream(name).await {
        return Ok(stream);
    }
    let created = js
        .create_stream(Config {
            name: name.to_owned(),
            subjects: vec![subject.to_owned()],
            storage: StorageType::File,
            max_age,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await;
    match created {
        Ok(stream) => Ok(stream),
        // Created by the other service meanwhile.
        Err(e) => js.get_stream(name).await.map_err(|_| e),
    }
}
