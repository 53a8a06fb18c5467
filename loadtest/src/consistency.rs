//! Source against copy, using only the original contract's fields.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// How the copy differs from the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Consistency {
    /// Users in the source.
    pub checked: usize,
    /// In the source, not in the copy.
    pub missing: usize,
    /// In both, with another name, email or updated_at.
    pub stale: usize,
    /// In the copy, not in the source.
    pub extra: usize,
}

impl Consistency {
    pub fn is_consistent(&self) -> bool {
        self.missing == 0 && self.stale == 0 && self.extra == 0
    }
}

pub fn compare(source: &[SourceUser], copy: &[CopiedUser]) -> Consistency {
    let copies: BTreeMap<i64, &CopiedUser> = copy.iter().map(|c| (c.user_id, c)).collect();
    let mut result = Consistency {
        checked: source.len(),
        ..Consistency::default()
    };
    for user in source {
        match copies.get(&user.id) {
            None => result.missing += 1,
            Some(c)
                if c.name != user.name
                    || c.email != user.email
                    || c.updated_at != user.updated_at =>
            {
                result.stale += 1;
            }
            Some(_) => {}
        }
    }
    let ids: std::collections::BTreeSet<i64> = source.iter().map(|u| u.id).collect();
    result.extra = copy.iter().filter(|c| !ids.contains(&c.user_id)).count();
    result
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
        assert!(result.is_consistent());
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
        assert!(!result.is_consistent());
    }
}
