//! Source against copy, using only the original contract's fields.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use events::drift::Fields;
use serde::Deserialize;

/// A user as `GET /users` returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub updated_at: DateTime<Utc>,
}

/// A copy as `GET /notifications` returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct CopiedUser {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub updated_at: DateTime<Utc>,
}

/// How the copy differs from the source: the project's one definition,
/// [`events::Drift`] (`in_sync` when nothing is missing, stale or extra).
pub type Consistency = events::Drift;

impl SourceUser {
    fn fields(&self) -> Fields<'_> {
        Fields {
            user_id: self.id,
            name: &self.name,
            email: &self.email,
            updated_at: self.updated_at,
        }
    }
}

impl CopiedUser {
    fn fields(&self) -> Fields<'_> {
        Fields {
            user_id: self.user_id,
            name: &self.name,
            email: &self.email,
            updated_at: self.updated_at,
        }
    }
}

pub fn compare(source: &[SourceUser], copy: &[CopiedUser]) -> Consistency {
    Consistency::between(
        source.iter().map(SourceUser::fields),
        copy.iter().map(CopiedUser::fields),
    )
}

/// Reads both sides over HTTP and compares them.
///
/// # Errors
/// When either service does not answer with a JSON list.
pub async fn check(
    http: &reqwest::Client,
    users_host: &str,
    notifications_host: &str,
) -> Result<Consistency> {
    let source: Vec<SourceUser> = http
        .get(format!("{users_host}/users"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("reading GET /users")?;
    let copy: Vec<CopiedUser> = http
        .get(format!("{notifications_host}/notifications"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("reading GET /notifications")?;
    Ok(compare(&source, &copy))
}

/// Checks until the copy equals the source, or until a check begun within
/// `timeout` still finds them apart; returns the last check that succeeded.
/// A check that fails (a service busy past its request timeout answers 503
/// to a read of every user) is tried again while there is time.
///
/// # Errors
/// When no check begun within `timeout` got a JSON list from both services:
/// the last check's error.
pub async fn settle(
    http: &reqwest::Client,
    users_host: &str,
    notifications_host: &str,
    timeout: Duration,
) -> Result<Consistency> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<Consistency> = None;
    loop {
        let started = Instant::now();
        let error = match check(http, users_host, notifications_host).await {
            Ok(result) if result.in_sync() => return Ok(result),
            Ok(result) => {
                last = Some(result);
                None
            }
            Err(e) => Some(e),
        };
        if Instant::now() >= deadline {
            return match last {
                Some(result) => Ok(result),
                None => Err(error.unwrap_or_else(|| anyhow::anyhow!("no consistency check ran"))),
            };
        }
        match (&error, &last) {
            (Some(e), _) => eprintln!("the consistency check failed ({e:#}); checking again"),
            (None, Some(result)) => eprintln!(
                "not converged yet (missing {}, stale {}, extra {}); checking again",
                result.missing, result.stale, result.extra
            ),
            (None, None) => {}
        }
        // A check reads both whole stores: at most a quarter of the time,
        // so that it does not slow down the convergence it waits for (and
        // not past the deadline, where one more check decides).
        let pause = (started.elapsed() * 3).max(Duration::from_secs(1));
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(pause.min(remaining)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn user(id: i64, name: &str, t: &str) -> SourceUser {
        SourceUser {
            id,
            name: name.into(),
            email: format!("{id}@example.com"),
            updated_at: at(t),
        }
    }

    fn copy(id: i64, name: &str, t: &str) -> CopiedUser {
        CopiedUser {
            user_id: id,
            name: name.into(),
            email: format!("{id}@example.com"),
            updated_at: at(t),
        }
    }

    const T1: &str = "2025-05-25T10:00:00Z";
    const T2: &str = "2025-05-25T10:00:00.000001Z";

    #[test]
    fn equal_sides_are_consistent() {
        let result = compare(
            &[user(1, "a", T1), user(2, "b", T1)],
            &[copy(2, "b", T1), copy(1, "a", T1)],
        );
        assert_eq!(
            result,
            Consistency {
                checked: 2,
                missing: 0,
                stale: 0,
                extra: 0
            }
        );
        assert!(result.in_sync());
    }

    #[test]
    fn each_kind_of_difference_is_counted() {
        let source = [
            user(1, "a", T1),
            user(2, "b", T2),
            user(3, "c", T1),
            user(4, "d", T1),
        ];
        let copied = [
            copy(1, "a", T1),
            copy(2, "b", T1),
            copy(3, "old", T1),
            copy(9, "x", T1),
        ];
        let result = compare(&source, &copied);
        assert_eq!(
            result,
            Consistency {
                checked: 4,
                missing: 1,
                stale: 2,
                extra: 1
            }
        );
        assert!(!result.in_sync());
    }

    #[tokio::test]
    async fn a_check_that_fails_is_tried_again_within_the_budget_and_its_error_kept_after() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // The copy answers 503 twice (busy past its request timeout), then
        // the same single user as the source.
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&reads);
        let user = r#"{"name":"A","email":"1@example.com","updated_at":"2026-12-02T10:00:00Z""#;
        let base = crate::test_server::serve(move |line| {
            if line.starts_with("GET /users ") {
                ("200 OK", format!("[{user},\"id\":1}}]"))
            } else if counted.fetch_add(1, Ordering::SeqCst) < 2 {
                (
                    "503 Service Unavailable",
                    r#"{"error":"timeout"}"#.to_owned(),
                )
            } else {
                ("200 OK", format!("[{user},\"user_id\":1}}]"))
            }
        })
        .await;
        let http = reqwest::Client::new();
        let settled = settle(&http, &base, &base, Duration::from_secs(5))
            .await
            .expect("the third check succeeds");
        assert!(settled.in_sync(), "{settled:?}");
        assert_eq!(reads.load(Ordering::SeqCst), 3);

        // One check finds a user missing, every later one fails: past the
        // budget that check is the answer, not the error.
        let checks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&checks);
        let behind = crate::test_server::serve(move |line| {
            if line.starts_with("GET /users ") {
                ("200 OK", format!("[{user},\"id\":1}}]"))
            } else if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                ("200 OK", "[]".to_owned())
            } else {
                ("503 Service Unavailable", String::new())
            }
        })
        .await;
        let last = settle(&http, &behind, &behind, Duration::from_millis(1_500))
            .await
            .expect("one check succeeded");
        assert_eq!((last.missing, last.checked), (1, 1), "{last:?}");
        assert!(checks.load(Ordering::SeqCst) >= 2, "it checked again");

        // Nothing but 503s: past the budget the last error is returned.
        let busy = crate::test_server::serve(|_| ("503 Service Unavailable", String::new())).await;
        let error = settle(&http, &busy, &busy, Duration::from_millis(200))
            .await
            .expect_err("no check succeeded");
        assert!(format!("{error:#}").contains("503"), "{error:#}");
    }
}
