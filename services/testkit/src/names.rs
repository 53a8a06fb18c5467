//! Unique names, so tests running at once never share a database, a stream or
//! a subject.

use uuid::Uuid;

/// One test's names.
#[derive(Debug, Clone)]
pub struct Names {
    pub id: String,
}

impl Names {
    pub fn new() -> Self {
        Self {
            id: Uuid::new_v4().simple().to_string()[..12].to_owned(),
        }
    }

    pub fn postgres_database(&self) -> String {
        format!("users_test_{}", self.id)
    }

    pub fn mongodb_database(&self) -> String {
        format!("notifications_test_{}", self.id)
    }

    pub fn subject(&self) -> String {
        format!("test_{}.user.events", self.id)
    }

    pub fn stream(&self) -> String {
        format!("USER_EVENTS_TEST_{}", self.id)
    }

    pub fn consumer(&self) -> String {
        format!("notification-service-test-{}", self.id)
    }
}

impl Default for Names {
    fn default() -> Self {
        Self::new()
    }
}
