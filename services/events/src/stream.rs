//! The JetStream stream both services create at start-up.

/// Creates the JetStream stream that captures `subject` unless it exists.
/// Both services call this at start-up, so either may start first.
///
/// The stream keeps events for `max_age` (how far back a replay reaches) and
/// drops a republished event whose `Nats-Msg-Id` it saw in the last two
/// minutes; older duplicates are dropped by the consumer's version guard.
///
/// # Errors
/// When JetStream is unreachable or a stream of that name has an
/// incompatible configuration.
pub async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    subject: &str,
    max_age: std::time::Duration,
) -> Result<async_nats::jetstream::stream::Stream, async_nats::jetstream::context::CreateStreamError>
{
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: name.to_owned(),
        subjects: vec![subject.to_owned()],
        storage: async_nats::jetstream::stream::StorageType::File,
        max_age,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await
}

/// How long the stream remembers event ids to drop republished events.
pub const DUPLICATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);
