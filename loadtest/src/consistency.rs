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
/// `timeout` still finds them apart; returns the last check.
///
/// # Errors
/// When either service does not answer with a JSON list.
pub async fn settle(
    http: &reqwest::Client,
    users_host: &str,
    notifications_host: &str,
    timeout: Duration,
) -> Result<Consistency> {
    let deadline = Instant::now() + timeout;
    loop {
        let started = Instant::now();
        let result = check(http, users_host, notifications_host).await?;
        if result.in_sync() || Instant::now() >= deadline {
            return Ok(result);
        }
        eprintln!(
            "not converged yet (missing {}, stale {}, extra {}); checking again",
            result.missing, result.stale, result.extra
        );
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
}
