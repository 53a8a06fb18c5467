//! Source against copy, using only the original contract's fields.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use events::drift::Fields;
use serde::{Deserialize, de::DeserializeOwned};

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

/// The largest page either service gives (`?limit=`).
const PAGE: usize = 10_000;

/// The copy is read in windows of this many user ids
/// (`GET /notifications?after_id=&before_id=`), which notification-service
/// reads as the list of their keys, at a cost that does not grow with the
/// copy: a page from `after_id` on decodes every copy above it on FerretDB
/// (which sorts in Go), past the service's request timeout at about 100,000
/// copies. FerretDB's filter compares each copy of a window with every key,
/// so small windows cost less per copy: a window of 10,000 took 3.3 to 3.7 s
/// in FerretDB's bench (0.33 ms a copy or more), windows of 1,000 read
/// 108,141 copies through `GET /notifications` in 22.6 s (0.21 ms a copy).
const WINDOW: i64 = 1_000;

/// Reads both sides over HTTP, a page at a time, and compares them: every
/// user whose id is above `after_id` (0: every user) and its copy. A run
/// checks the users above the [`high_water`] mark it read before its first
/// write: every user it created (ids are allocated in order) and so every
/// user it updated, without reading a source that earlier runs filled.
///
/// # Errors
/// When either service does not answer with a JSON list.
pub async fn check(
    http: &reqwest::Client,
    users_host: &str,
    notifications_host: &str,
    after_id: i64,
) -> Result<Consistency> {
    let source: Vec<SourceUser> = read_pages(
        http,
        &format!("{users_host}/users"),
        after_id,
        |u: &SourceUser| u.id,
    )
    .await
    .context("reading GET /users")?;
    let url = format!("{notifications_host}/notifications");
    // Windows up to the source's last id (before_id is 32-bit, as user ids
    // are), then pages above it: copies the source does not have.
    let last = source
        .last()
        .map_or(after_id, |u| u.id)
        .min(i64::from(i32::MAX) - 1);
    let mut copy: Vec<CopiedUser> = Vec::new();
    let mut low = after_id;
    while low < last {
        let high = (low + WINDOW).min(last);
        let window: Vec<CopiedUser> = read(
            http,
            &format!("{url}?after_id={low}&before_id={}&limit={PAGE}", high + 1),
        )
        .await
        .context("reading GET /notifications")?;
        copy.extend(window);
        low = high;
    }
    let above: Vec<CopiedUser> = read_pages(http, &url, low, |c: &CopiedUser| c.user_id)
        .await
        .context("reading GET /notifications")?;
    copy.extend(above);
    Ok(compare(&source, &copy))
}

/// One JSON list.
async fn read<T: DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<Vec<T>> {
    Ok(http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Every item of a list that `?after_id=&limit=` pages by id, from the one
/// above `after_id` on.
async fn read_pages<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    mut after_id: i64,
    id_of: impl Fn(&T) -> i64,
) -> Result<Vec<T>> {
    let mut all = Vec::new();
    loop {
        let page: Vec<T> = read(http, &format!("{url}?after_id={after_id}&limit={PAGE}")).await?;
        let full = page.len() == PAGE;
        match page.last() {
            Some(last) => after_id = id_of(last),
            None => return Ok(all),
        }
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// The largest user id in the source now (0 when there is none), found by
/// bisection with one-user pages of `GET /users?after_id=` (about 31 reads
/// of one indexed row each, whatever the table holds).
///
/// # Errors
/// When user-service does not answer with a JSON list.
pub async fn high_water(http: &reqwest::Client, users_host: &str) -> Result<i64> {
    #[derive(Deserialize)]
    struct Id {
        id: i64,
    }
    // The largest id is in lo..=hi: lo is 0 or an id seen, no id is above hi.
    let (mut lo, mut hi) = (0_i64, i64::from(i32::MAX));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let above: Vec<Id> = read(http, &format!("{users_host}/users?after_id={mid}&limit=1"))
            .await
            .context("reading GET /users?after_id=&limit=1")?;
        match above.first() {
            Some(user) if user.id > mid => lo = user.id,
            Some(user) => anyhow::bail!(
                "GET /users?after_id={mid} answered user {}, not one above {mid}",
                user.id
            ),
            None => hi = mid,
        }
    }
    Ok(lo)
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
    after_id: i64,
    timeout: Duration,
) -> Result<Consistency> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<Consistency> = None;
    loop {
        let started = Instant::now();
        let error = match check(http, users_host, notifications_host, after_id).await {
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
        // A check reads both stores (the users in scope): at most a quarter of the time,
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

    /// `after_id`, `before_id` (if any) and `limit` of a request line's query.
    fn page_of(line: &str) -> (i64, Option<i64>, usize) {
        let query = line.split(['?', ' ']).nth(2).unwrap_or_default();
        let value = |key: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_default()
                .to_owned()
        };
        (
            value("after_id").parse().unwrap(),
            value("before_id").parse().ok(),
            value("limit").parse().unwrap(),
        )
    }

    /// A server paging `ids` for both services as they page (the copy
    /// leaves out `missing`); counts the reads.
    async fn paging(
        ids: Vec<i64>,
        missing: i64,
        reads: Arc<std::sync::atomic::AtomicUsize>,
    ) -> String {
        crate::test_server::serve(move |line| {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (after_id, before_id, limit) = page_of(line);
            let copy = !line.starts_with("GET /users?");
            assert!(copy || before_id.is_none(), "GET /users has no before_id");
            let page: Vec<String> = ids
                .iter()
                .filter(|&&id| id > after_id && before_id.is_none_or(|b| id < b))
                .filter(|&&id| !(copy && id == missing))
                .take(limit)
                .map(|id| {
                    let key = if copy { "user_id" } else { "id" };
                    format!(
                        r#"{{"{key}":{id},"name":"u{id}","email":"{id}@example.com","updated_at":"2026-12-02T10:00:00Z"}}"#
                    )
                })
                .collect();
            ("200 OK", format!("[{}]", page.join(",")))
        })
        .await
    }

    #[tokio::test]
    async fn a_check_reads_every_page_above_its_mark_and_no_further() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let reads = Arc::new(AtomicUsize::new(0));
        let ids: Vec<i64> = (1..=25_007).collect();
        let base = paging(ids, 20_000, Arc::clone(&reads)).await;
        let http = reqwest::Client::new();

        let all = check(&http, &base, &base, 0).await.expect("check");
        assert_eq!(
            (all.checked, all.missing, all.extra),
            (25_007, 1, 0),
            "{all:?}"
        );
        // 25 007 users: pages of 10 000, 10 000 and 5 007 of the source;
        // 26 windows of the copy (25 of 1 000 ids, one of 7) and one read
        // above the last user.
        assert_eq!(reads.swap(0, Ordering::SeqCst), 3 + 26 + 1);

        let above = check(&http, &base, &base, 20_000).await.expect("check");
        assert_eq!((above.checked, above.missing), (5_007, 0), "{above:?}");
        assert_eq!(reads.swap(0, Ordering::SeqCst), 1 + 6 + 1);

        let past_the_end = check(&http, &base, &base, 30_000).await.expect("check");
        assert_eq!(past_the_end.checked, 0, "{past_the_end:?}");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    /// A copy the source does not have, above its last user or between two
    /// windows' users, is found.
    #[tokio::test]
    async fn copies_above_the_source_and_between_its_users_are_extra() {
        let http = reqwest::Client::new();
        let source = crate::test_server::serve(|line| {
            let body = if line.contains("after_id=0&") {
                r#"[{"id":5,"name":"u5","email":"5@example.com","updated_at":"2026-12-02T10:00:00Z"},{"id":2500,"name":"u2500","email":"2500@example.com","updated_at":"2026-12-02T10:00:00Z"}]"#
            } else {
                "[]"
            };
            ("200 OK", body.to_owned())
        })
        .await;
        let ids = vec![5, 1_700, 2_500, 2_501, 90_000];
        let copy = paging(ids, 0, Arc::new(std::sync::atomic::AtomicUsize::new(0))).await;
        let result = check(&http, &source, &copy, 0).await.expect("check");
        assert_eq!((result.checked, result.extra), (2, 3), "{result:?}");
    }

    #[tokio::test]
    async fn the_high_water_mark_is_the_largest_id_in_a_few_dozen_reads() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let http = reqwest::Client::new();
        for ids in [
            vec![],
            vec![1],
            vec![3, 17, 40],
            vec![5, 2_147_483_647],
            (1..=100_000).collect(),
        ] {
            let reads = Arc::new(AtomicUsize::new(0));
            let largest = ids.last().copied().unwrap_or(0);
            let base = paging(ids, 0, Arc::clone(&reads)).await;
            assert_eq!(high_water(&http, &base).await.expect("high water"), largest);
            assert!(
                reads.load(Ordering::SeqCst) <= 32,
                "{} reads",
                reads.load(Ordering::SeqCst)
            );
        }
        // A service that ignores after_id is not believed.
        let ignoring = crate::test_server::serve(|_| {
            ("200 OK", r#"[{"id":1,"name":"a","email":"a@example.com","updated_at":"2026-12-02T10:00:00Z"}]"#.to_owned())
        })
        .await;
        let error = high_water(&http, &ignoring)
            .await
            .expect_err("not a page above");
        assert!(format!("{error:#}").contains("not one above"), "{error:#}");
    }

    #[tokio::test]
    async fn a_check_that_fails_is_tried_again_within_the_budget_and_its_error_kept_after() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // The copy's window answers 503 twice (busy past its request
        // timeout), then the same single user as the source; nothing above
        // the source's last user (the read without before_id).
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&reads);
        let user = r#"{"name":"A","email":"1@example.com","updated_at":"2026-12-02T10:00:00Z""#;
        let base = crate::test_server::serve(move |line| {
            if line.starts_with("GET /users?") {
                ("200 OK", format!("[{user},\"id\":1}}]"))
            } else if !line.contains("before_id") {
                ("200 OK", "[]".to_owned())
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
        let settled = settle(&http, &base, &base, 0, Duration::from_secs(5))
            .await
            .expect("the third check succeeds");
        assert!(settled.in_sync(), "{settled:?}");
        assert_eq!(reads.load(Ordering::SeqCst), 3);

        // One check finds a user missing, every later one fails: past the
        // budget that check is the answer, not the error.
        let checks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&checks);
        let behind = crate::test_server::serve(move |line| {
            if line.starts_with("GET /users?") {
                ("200 OK", format!("[{user},\"id\":1}}]"))
            } else if !line.contains("before_id") || counted.fetch_add(1, Ordering::SeqCst) == 0 {
                // Nothing above the source's last user; the first window
                // empty.
                ("200 OK", "[]".to_owned())
            } else {
                ("503 Service Unavailable", String::new())
            }
        })
        .await;
        let last = settle(&http, &behind, &behind, 0, Duration::from_millis(1_500))
            .await
            .expect("one check succeeded");
        assert_eq!((last.missing, last.checked), (1, 1), "{last:?}");
        assert!(checks.load(Ordering::SeqCst) >= 2, "it checked again");

        // Nothing but 503s: past the budget the last error is returned.
        let busy = crate::test_server::serve(|_| ("503 Service Unavailable", String::new())).await;
        let error = settle(&http, &busy, &busy, 0, Duration::from_millis(200))
            .await
            .expect_err("no check succeeded");
        assert!(format!("{error:#}").contains("503"), "{error:#}");
    }
}
