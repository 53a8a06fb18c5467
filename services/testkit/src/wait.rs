//! Waiting for a condition that becomes true eventually.

use std::{future::Future, time::Duration};

/// How long `eventually` waits by default: generous, because CI machines are
/// slow and shared; a passing test returns as soon as the condition holds.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` every 50 ms until it returns `Some`, or panics after
/// `patience` with `what` and the last value seen.
pub async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => {
                if tokio::time::Instant::now() >= deadline {
                    panic!("timed out after {patience:?} waiting for {what}; last seen: {last}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
