//! "The copy equals the source", defined once: the drift between user-service's
//! users and notification-service's copies, on the original contract's fields
//! (`name`, `email`, `updated_at`). The drift gauge, `notification-service
//! drift` and the load test's consistency check all count with [`Drift::between`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One user's state on the contract's fields, borrowed from either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub email: &'a str,
    pub updated_at: DateTime<Utc>,
}

/// How the copy differs from the source, by users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Users in the source.
    pub checked: usize,
    /// In the source, not in the copy.
    pub missing: usize,
    /// In both, with another name, email or `updated_at`.
    pub stale: usize,
    /// In the copy, not in the source.
    pub extra: usize,
}

impl Drift {
    /// Compares every user of `source` with its copy in `copy`.
    pub fn between<'a, 'b>(
        source: impl IntoIterator<Item = Fields<'a>>,
        copy: impl IntoIterator<Item = Fields<'b>>,
    ) -> Self {
        let mut copies: HashMap<i64, Fields<'b>> =
            copy.into_iter().map(|c| (c.user_id, c)).collect();
        let mut drift = Drift::default();
        for user in source {
            drift.checked += 1;
            match copies.remove(&user.user_id) {
                None => drift.missing += 1,
                Some(c) if !c.same_as(&user) => drift.stale += 1,
                Some(_) => {}
            }
        }
        drift.extra = copies.len();
        drift
    }

    /// Users whose copy is wrong, of any kind.
    pub fn total(&self) -> usize {
        self.missing + self.stale + self.extra
    }

    /// The copy equals the source.
    pub fn in_sync(&self) -> bool {
        self.total() == 0
    }
}

impl Fields<'_> {
    /// Equal on the contract's fields (the ids are the caller's to match).
    pub fn same_as(&self, other: &Fields<'_>) -> bool {
        self.name == other.name && self.email == other.email && self.updated_at == other.updated_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn user(user_id: i64, name: &'static str, t: &str) -> Fields<'static> {
        Fields {
            user_id,
            name,
            email: "same@example.com",
            updated_at: at(t),
        }
    }

    #[test]
    fn equal_sides_have_no_drift() {
        let a = [
            user(1, "A", "2026-01-01T00:00:00Z"),
            user(2, "B", "2026-01-01T00:00:00Z"),
        ];
        let drift = Drift::between(a, a.iter().rev().copied());
        assert_eq!(
            drift,
            Drift {
                checked: 2,
                ..Drift::default()
            }
        );
        assert!(drift.in_sync());
    }

    #[test]
    fn each_kind_of_difference_is_counted() {
        let t = "2026-01-01T00:00:00Z";
        let source = [
            user(1, "A", t),
            user(2, "B", t),
            user(3, "C", t),
            user(4, "D", t),
        ];
        let mut other_email = user(4, "D", t);
        other_email.email = "other@example.com";
        let copy = [
            user(1, "A", t),                      // equal
            user(2, "B", "2026-01-01T00:00:01Z"), // stale: updated_at
            other_email,                          // stale: email
            user(9, "Z", t),                      // extra
        ];
        let drift = Drift::between(source, copy);
        assert_eq!(
            drift,
            Drift {
                checked: 4,
                missing: 1,
                stale: 2,
                extra: 1
            }
        );
        assert_eq!(drift.total(), 4);
        assert!(!drift.in_sync());
    }

    #[test]
    fn the_same_instant_in_another_offset_is_equal() {
        let source = [user(1, "A", "2026-01-01T01:00:00+01:00")];
        let copy = [user(1, "A", "2026-01-01T00:00:00Z")];
        assert!(Drift::between(source, copy).in_sync());
    }
}
