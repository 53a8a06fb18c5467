//! A user as stored and as returned by the API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Email, InvalidInput, UserName};

/// A user row, serialized exactly as the original demo's API returns it (its
/// OpenAPI schema is derived from this type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: i32,
    pub name: String,
    pub email: String,
    pub updated_at: DateTime<Utc>,
    /// Per-user version; carried by events, not part of the API response.
    #[serde(skip)]
    pub version: i64,
}

impl User {
    /// The event payload for this state.
    pub fn payload(&self) -> events::UserPayload {
        events::UserPayload {
            id: self.id,
            name: self.name.clone(),
            email: self.email.clone(),
            updated_at: self.updated_at,
        }
    }
}

/// A validated create or update: both fields, as the original API takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDraft {
    pub name: UserName,
    pub email: Email,
}

impl UserDraft {
    /// # Errors
    /// When the name or the email is invalid; the name is checked first.
    pub fn parse(name: &str, email: &str) -> Result<Self, InvalidInput> {
        Ok(Self {
            name: UserName::parse(name)?,
            email: Email::parse(email)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_to_the_demo_shape_without_the_version() {
        let user = User {
            id: 1,
            name: "John Doe".into(),
            email: "john@example.com".into(),
            updated_at: DateTime::parse_from_rfc3339("2025-05-25T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            version: 3,
        };
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            json!({"id": 1, "name": "John Doe", "email": "john@example.com", "updated_at": "2025-05-25T10:00:00Z"})
        );
    }

    #[test]
    fn a_draft_needs_a_valid_name_and_email() {
        assert!(UserDraft::parse("Ada", "ada@example.com").is_ok());
        assert!(UserDraft::parse("", "ada@example.com").is_err());
        assert!(UserDraft::parse("Ada", "ada").is_err());
    }
}
